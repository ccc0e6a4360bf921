//! Running the command: start it so that it dies with us, pass the signals sent to us on to it,
//! and turn its end into our exit status.
//!
//! The lock is never inherited by the command (the backends open everything close-on-exec), so
//! the lock lives exactly as long as this process. If this process is killed — even with
//! SIGKILL — the system releases the lock, and `PR_SET_PDEATHSIG` kills the command. The kernel
//! releases a dying process's locks (closing its files, undoing its semaphores) before it sends
//! the death signal, and a command in uninterruptible sleep dies only when that sleep ends: it
//! can outlast the lock by that long, which only a lock the command inherited would prevent.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;

use crate::args::exit;
use crate::say_error;

/// The signals passed on to the command.
const FORWARDED: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Runs `command` to its end and returns the exit status to leave with.
pub(crate) fn run(command: &[OsString]) -> i32 {
    run_with_env(command, &[])
}

/// [`run`], with `env` added to the command's environment.
pub(crate) fn run_with_env(command: &[OsString], env: &[(&str, String)]) -> i32 {
    // Catch the signals before the command exists, so that none ends us in between.
    let mut signals = match SignalsInfo::<WithOrigin>::new(FORWARDED) {
        Ok(signals) => signals,
        Err(err) => {
            say_error(&format!("cannot catch signals: {err}"));
            return exit::SOFTWARE;
        }
    };
    let handle = signals.handle();
    // 0 until the command runs; a signal that comes before is kept for it in `pending`.
    let child_pid = Arc::new(AtomicI32::new(0));
    let pending = Arc::new(AtomicI32::new(0));
    let forwarder = {
        let (child_pid, pending) = (Arc::clone(&child_pid), Arc::clone(&pending));
        thread::Builder::new()
            .name("forward signals".into())
            .spawn(move || {
                for origin in signals.forever() {
                    // A signal from the terminal (Ctrl-C) reached the command's process group
                    // already; only signals a process sent to us need passing on.
                    if origin.process.is_none() {
                        continue;
                    }
                    match child_pid.load(Ordering::SeqCst) {
                        0 => {
                            pending.store(origin.signal, Ordering::SeqCst);
                            // The command may have started since we looked, and the main thread
                            // may have emptied `pending` before we filled it: whoever takes the
                            // signal out of `pending` sends it, so it goes exactly once.
                            let pid = child_pid.load(Ordering::SeqCst);
                            if pid != 0 {
                                match pending.swap(0, Ordering::SeqCst) {
                                    0 => {}
                                    signal => send(pid, signal),
                                }
                            }
                        }
                        pid => send(pid, origin.signal),
                    }
                }
            })
    };
    let forwarder = match forwarder {
        Ok(forwarder) => forwarder,
        Err(err) => {
            say_error(&format!(
                "cannot start the thread that passes signals on: {err}"
            ));
            return exit::SOFTWARE;
        }
    };
    // Whoever started us may have set SIGCHLD to be ignored, and that setting is inherited: the
    // kernel would then reap the command by itself and we could never learn its exit status.
    restore_default_sigchld();

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let parent = std::process::id();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2) and
    // getppid(2), which are async-signal-safe, and touches no memory but its own copy of
    // `parent`.
    unsafe {
        cmd.pre_exec(move || {
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
    match cmd.spawn() {
        Ok(mut child) => {
            let pid = child.id() as i32;
            child_pid.store(pid, Ordering::SeqCst);
            let early = pending.swap(0, Ordering::SeqCst);
            if early != 0 {
                send(pid, early);
            }
            // Wait for its end without reaping it, and stop the forwarder before we do: the pid
            // of a reaped child can be reused at once, and a signal that came late would go to
            // that other process.
            wait_without_reaping(pid);
            handle.close();
            let _ = forwarder.join();
            match child.wait() {
                Ok(status) => exit_code(status),
                Err(err) => {
                    say_error(&format!("waiting for the command: {err}"));
                    exit::SOFTWARE
                }
            }
        }
        Err(err) => {
            let name = command[0].to_string_lossy();
            say_error(&format!("cannot run {name:?}: {err}"));
            handle.close();
            let _ = forwarder.join();
            match err.kind() {
                io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_EXECUTE,
            }
        }
    }
}

/// Puts SIGCHLD back to its default action (which keeps ended children for `wait`).
#[allow(unsafe_code)]
fn restore_default_sigchld() {
    // SAFETY: signal(2) with SIG_DFL installs no handler; it only changes this process's
    // disposition of SIGCHLD, whose default is to do nothing.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// Returns once the child `pid` has ended, leaving it a zombie (`WNOWAIT`), so that its pid
/// stays taken until `Child::wait` reaps it.
#[allow(unsafe_code)]
fn wait_without_reaping(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live siginfo_t for the duration of the call, which writes only
        // into it; `pid` is our child.
        let done = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if done == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // On an error other than EINTR, `Child::wait` reports it.
            return;
        }
    }
}

/// Sends `signal` to `pid`.
fn send(pid: i32, signal: i32) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. `pid` is our child,
    // not yet reaped (`run` reaps it only after the forwarder stopped), so it names that
    // process.
    unsafe {
        libc::kill(pid, signal);
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
