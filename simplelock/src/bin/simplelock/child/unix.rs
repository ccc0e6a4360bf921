//! Running the command on Unix: start it so that the lock lasts as long as the whole command
//! tree, pass the signals sent to us on to it exactly once, and turn its end into our exit
//! status.
//!
//! # The lock lasts as long as the command tree
//!
//! A command may leave processes behind that go on working after it ended (`cmd &`, a shell
//! that was killed while its child runs). Two things keep the lock held until the last of them
//! is gone:
//!
//! - **This process waits for every descendant.** It is a *child subreaper*
//!   (`PR_SET_CHILD_SUBREAPER`): a process of the command tree whose parent ends is re-parented
//!   to us, not to init, so after the command itself ended we reap children until there are
//!   none left, and only then release the lock. This is the same for every backend, and it is
//!   what `status` and the holder record see: the lock held by this process.
//! - **The command inherits the lock (file backend).** As with `flock(1)`, the command gets the
//!   locked open file description (its close-on-exec flag is cleared in the child only), and a
//!   flock lives as long as any process has it open. So if this process is killed — even with
//!   SIGKILL, which nothing can catch — the lock stays held by the processes of the tree that
//!   still have the descriptor (all of them, unless one closed it on purpose), and is released
//!   by the kernel when the last one ends. `status` then names one of them.
//!
//! The semaphore and PostgreSQL backends have no descriptor to hand down: the lock belongs to
//! this process (to its server connection, for PostgreSQL, whose session must not be shared).
//! If this process is killed with SIGKILL, the lock is released while processes of the tree may
//! still run; the command itself is killed (`PR_SET_PDEATHSIG`), but not what it left behind.
//! Any other end of this process (the command ends, SIGTERM, SIGINT, ...) waits for the whole
//! tree first.
//!
//! # Signals reach the command once
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us are passed on to the command, and a signal
//! must not reach it twice: once directly, once from us. A signal sent to our whole process
//! group (`timeout(1)`, `kill -- -PGID`, `kill 0` in a script) would reach a command in our
//! group directly too. So the command runs in a process group of its own, and every signal we
//! get is passed on once — except when we are the foreground job of a terminal: then the
//! command stays in our group, so that it can use the terminal (job control), the terminal's
//! signals (Ctrl-C) reach it directly, and only the signals a process sent to us are passed on.
//! A sender that signals us and our group (`timeout(1)` does) makes the signal come to us twice,
//! microseconds apart: the same signal from the same process within 100 ms is passed on once.
//! A signal sent to every process of a cgroup (systemd's `KillMode=control-group`, the default)
//! reaches every process of the tree directly, and us: the command then gets it twice — use
//! `KillMode=mixed` for services run under `simplelock`.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::{prctl, wait};
use nix::unistd::{self, Pid};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;

use crate::args::exit;
use crate::say_error;

/// A signal that comes again from the same sender within this time is the same signal, sent
/// to us and to our process group at once.
const SAME_SIGNAL: Duration = Duration::from_millis(100);

/// The signals passed on to the command (SIGINT, SIGTERM, SIGHUP, SIGQUIT), and SIGCHLD, which
/// tells of its end.
const CAUGHT: [i32; 5] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD];

/// The open file the command inherits: the locked one, whose flock then lasts as long as any
/// process of the command tree has it open.
pub(crate) type Inherited = RawFd;

/// What the command is to inherit of the file lock `lock`: its descriptor.
pub(crate) fn inheritable(lock: &impl AsFd) -> Option<Inherited> {
    Some(lock.as_fd().as_raw_fd())
}

/// [`super::run`], with `env` added to the command's environment (the PostgreSQL backend's
/// `SIMPLELOCK_FENCING_TOKEN`).
///
/// One thread does it all: the signals to pass on and the command's end (SIGCHLD) come
/// through one self-pipe of signal-hook, and this thread reads it until the command has ended.
/// The handlers are the process's, so a signal is caught whichever thread the kernel gives it
/// to (a backend may have started threads of its own, which do not block these signals).
pub(crate) fn run_with_env(
    command: &[OsString],
    inherited: Option<RawFd>,
    previous_holder: &str,
    env: &[(&str, String)],
) -> i32 {
    // Catch the signals before the command exists, so that none ends us in between and its end
    // cannot come unseen. Our SIGCHLD handler also replaces an inherited SIG_IGN, under which
    // the kernel would reap the command by itself and we could never learn its exit status.
    let mut signals = match SignalsInfo::<WithOrigin>::new(CAUGHT) {
        Ok(signals) => signals,
        Err(err) => {
            say_error(&format!("cannot catch signals: {err}"));
            return exit::SOFTWARE;
        }
    };
    let own_group = !foreground_of_a_terminal();
    if let Err(err) = become_subreaper() {
        say_error(&format!(
            "cannot wait for the processes the command leaves behind (PR_SET_CHILD_SUBREAPER): \
             {err}"
        ));
        return exit::SOFTWARE;
    }

    let mut cmd = command_for(command, inherited, previous_holder, env, own_group);
    match cmd.spawn() {
        Ok(mut child) => {
            // Pass signals on until the command has ended, without reaping it: the pid of a
            // reaped child can be reused at once, and a signal passed on after that would go
            // to that other process.
            forward_until_ended(&mut signals, child.id() as i32, own_group);
            let code = match child.wait() {
                Ok(status) => exit_code(status),
                Err(err) => {
                    say_error(&format!("waiting for the command: {err}"));
                    exit::SOFTWARE
                }
            };
            // The lock is released only when the whole command tree is gone.
            reap_descendants();
            code
        }
        Err(err) => super::cannot_run(command, &err),
    }
}

/// Passes each signal `signals` gets on to the command `pid`, once, until it has ended (it is
/// left a zombie: `Child::wait` reaps it). A signal that came before the command started was
/// kept by the self-pipe and is passed on now.
fn forward_until_ended(signals: &mut SignalsInfo<WithOrigin>, pid: i32, own_group: bool) {
    let mut last: Option<(i32, Option<i32>, Instant)> = None;
    for origin in signals.forever() {
        if origin.signal == SIGCHLD {
            // Any child's end or stop (the processes the command left behind are ours too, as
            // their subreaper), and several ends may come as one SIGCHLD: ask about the
            // command itself.
            if ended(pid) {
                return;
            }
            continue;
        }
        // A signal from the terminal (Ctrl-C) reached the command already if it shares our
        // process group; only signals a process sent to us need passing on then.
        if origin.process.is_none() && !own_group {
            continue;
        }
        // One sender's signal to us and to our group (timeout(1) does both) comes twice
        // within microseconds: it is one signal, passed on once.
        let sender = origin.process.map(|process| process.pid);
        let now = Instant::now();
        let repeated = last.is_some_and(|(signal, from, at)| {
            signal == origin.signal && from == sender && now.duration_since(at) < SAME_SIGNAL
        });
        last = Some((origin.signal, sender, now));
        if !repeated {
            send(pid, origin.signal);
        }
    }
}

/// The command to start: in a process group of its own if `own_group`, with the locked file
/// `inherited` open, killed if we die, told how the previous holder let go.
fn command_for(
    command: &[OsString],
    inherited: Option<RawFd>,
    previous_holder: &str,
    env: &[(&str, String)],
    own_group: bool,
) -> Command {
    let mut cmd = super::command(command, previous_holder, env);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2),
    // fcntl(2) and getppid(2), which are async-signal-safe, and touches no memory but its own
    // copies of `parent` and `inherited`.
    unsafe {
        cmd.pre_exec(move || {
            // The locked open file description, for the command to inherit (in this child
            // only: our own descriptor stays close-on-exec).
            if let Some(fd) = inherited
                && libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // We may have died before the line above took effect.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other(
                    "simplelock ended before the command started",
                ));
            }
            Ok(())
        })
    };
    if own_group {
        cmd.process_group(0);
    }
    cmd
}

/// Whether we are the foreground job of a terminal (of one of our standard streams): then the
/// command shares our process group, for job control.
fn foreground_of_a_terminal() -> bool {
    let ours = unistd::getpgrp();
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let streams = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    // A stream that is closed or not a terminal only makes these fail.
    streams.into_iter().any(|stream| {
        unistd::isatty(stream).unwrap_or(false)
            && unistd::tcgetpgrp(stream).is_ok_and(|pgrp| pgrp == ours)
    })
}

/// Makes the processes of the command tree whose parent ends our children, so that we can
/// wait for them.
fn become_subreaper() -> io::Result<()> {
    prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Waits until we have no child left: the processes the command left behind, re-parented to
/// us as their subreaper.
fn reap_descendants() {
    // Only ECHILD means none is left: nix fails to decode the status of a process ended by a
    // signal it has no name for (a real-time one), after reaping it — go on with the others.
    while wait::waitpid(None, None) != Err(Errno::ECHILD) {}
}

/// Whether the child `pid` has ended; it is left a zombie (`WNOWAIT`), so that its pid stays
/// taken until `Child::wait` reaps it. An error other than EINTR (none is expected of our own
/// child) counts as ended: `Child::wait` then reports it.
fn ended(pid: i32) -> bool {
    let flags =
        wait::WaitPidFlag::WEXITED | wait::WaitPidFlag::WNOWAIT | wait::WaitPidFlag::WNOHANG;
    loop {
        match wait::waitid(wait::Id::Pid(Pid::from_raw(pid)), flags) {
            Ok(wait::WaitStatus::StillAlive) => return false,
            Err(Errno::EINTR) => {}
            Ok(_) | Err(_) => return true,
        }
    }
}

/// Sends `signal` to `pid`, our child, not yet reaped (`run_with_env` reaps it only after
/// [`forward_until_ended`] returned), so the pid names that process.
fn send(pid: i32, signal: i32) {
    if let Ok(signal) = Signal::try_from(signal) {
        let _ = signal::kill(Pid::from_raw(pid), signal);
    }
}

/// The exit status that tells our caller how the command ended, as shells do.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => exit::SOFTWARE,
    }
}
