//! `simplelock`: run a command while holding a lock, like util-linux `flock(1)` and GNU
//! parallel's `sem`, with named locks, a crash-safe semaphore backend, timeouts, progress while
//! waiting, and status queries. See `simplelock --help`.
//!
//! `args` parses (clap), `child` runs the command and keeps the lock for its whole tree,
//! `descriptor` locks what the file backend cannot open for us (an inherited descriptor, a
//! folder), `pg` is the PostgreSQL backend's server and fencing token, `report` prints `status`. The waiting reads no clock of its own: [`acquire`]
//! speaks the core's [`Wait`].
//!
//! Built with the `cli` feature of the `simplelock` crate.
//!
//! # Windows
//!
//! The tool builds on Windows with the file backend: named locks (in the per-user folder
//! `FileLock::named` uses there) and `--file PATH`, every way to wait, `--shared`, `status`,
//! and the same exit statuses. How the command tree is tied to the lock differs (a Job object
//! instead of an inherited descriptor and a subreaper; Ctrl-C instead of signals): see
//! `child`'s `windows` module. What Windows lacks is refused with exit status 64 and a line
//! that says it is Unix-only: the sema and postgres backends, `--permits` (whose file
//! semaphores use Linux's OFD locks), locking an inherited descriptor (`simplelock 9`) and a
//! folder (`--file DIR`). The line shown while waiting on a terminal uses ANSI escapes, which
//! a console without virtual-terminal processing shows raw (not tested).
#![deny(unsafe_code)]
// On glibc Linux the process starts in `start::main`, without std's runtime set-up (see there);
// the unit tests keep the test harness's `main`.
#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

mod args;
mod child;
#[cfg(unix)]
mod descriptor;
#[cfg(unix)]
mod permits;
mod pg;
mod report;
#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
mod start;

/// Counting semaphores (`--permits`) on Windows: none. The file backend's are Linux's (OFD
/// locks on byte ranges), the sema backend's too (futexes); each call is refused as Unix-only.
#[cfg(windows)]
mod permits {
    use simplelock::{ConcreteLock, SimpleLockResult};

    use crate::args::Backend;
    use crate::child::Inherited;

    const WHAT: &str = "a counting semaphore (--permits)";

    /// Refuses to open the semaphore `name`.
    pub(crate) fn open(
        _: Backend,
        name: &str,
        _: u32,
    ) -> SimpleLockResult<(Box<dyn ConcreteLock + Send>, Option<Inherited>)> {
        Err(crate::unix_only(name, WHAT))
    }

    /// Refuses to show the semaphore `name`.
    pub(crate) fn status(_: Backend, name: &str, _: u32, _: bool) -> SimpleLockResult<String> {
        Err(crate::unix_only(name, WHAT))
    }

    /// Refuses to remove the semaphore `name`.
    pub(crate) fn remove(name: &str) -> SimpleLockResult<Option<String>> {
        Err(crate::unix_only(name, WHAT))
    }
}

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use simplelock::{
    ConcreteLock, FileLock, LockStatus, PreviousHolder, SemaphoreLock, SimpleLockError,
    SimpleLockResult, Wait,
};

use args::{Backend, Invocation, RawFd, RunArgs, Target, exit};
#[cfg(unix)]
use descriptor::DescriptorLock;

/// Where the process starts elsewhere (see `start` for glibc Linux).
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run())
}

/// What the tool does, start to end: the exit status to leave with.
fn run() -> u8 {
    let code = match args::parse(std::env::args_os().collect()) {
        Err(err) => clap_error(&err),
        Ok(Err(usage)) => {
            say_error(&usage);
            exit::USAGE
        }
        Ok(Ok(Invocation::Run(run))) => run_command(run),
        Ok(Ok(Invocation::Status {
            backend,
            target,
            json,
        })) => finish(status(backend, &target, json)),
        Ok(Ok(Invocation::Remove { name })) => finish(remove(&name)),
        Ok(Ok(Invocation::RemovePermits { name })) => finish(remove_permits(&name)),
        Ok(Ok(Invocation::Completions(shell))) => completions(shell),
    };
    u8::try_from(code).unwrap_or(u8::MAX)
}

/// `--help` and `--version` on standard output (status 0); a mistake in one line on standard
/// error, with status 64 (clap's own is 2, which would look like the command's).
fn clap_error(err: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => print_out(&err.to_string()),
        _ => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            say_error(&format!("{first} (see --help)"));
            exit::USAGE
        }
    }
}

/// `simplelock completions SHELL`: the completion script on standard output.
fn completions(shell: clap_complete::Shell) -> i32 {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut args::Cli::command(), "simplelock", &mut script);
    print_out(&String::from_utf8_lossy(&script))
}

/// Says `message` on standard error, prefixed, as one line: control characters (a newline in a
/// lock name or path) are escaped. A failed write is ignored: there is nowhere left to say it.
pub(crate) fn say_error(message: &str) {
    let mut line = String::from("simplelock: ");
    for c in message.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Writes `text` to standard output: exit status 0, or 70 after saying why it failed (a full
/// disk, a closed pipe) — `print!` would panic.
fn print_out(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => 0,
        Err(err) => {
            say_error(&format!("cannot write to standard output: {err}"));
            exit::SOFTWARE
        }
    }
}

/// The exit status for an error of the lock, after saying it in one line.
pub(crate) fn fail(err: &SimpleLockError, conflict_exit_code: i32) -> i32 {
    say_error(&one_line(err));
    match err {
        SimpleLockError::AlreadyLocked { .. } | SimpleLockError::TimedOut { .. } => {
            conflict_exit_code
        }
        SimpleLockError::InvalidName { .. } | SimpleLockError::NoLockEnabled => exit::USAGE,
        // A counting semaphore opened with another N than it has.
        _ if err.kind() == std::io::ErrorKind::InvalidInput => exit::USAGE,
        SimpleLockError::PermissionDenied { .. } => exit::UNAVAILABLE,
        // What this system lacks (see `unix_only`), as for a mistake in the command line.
        #[cfg(windows)]
        _ if err.kind() == std::io::ErrorKind::Unsupported => exit::USAGE,
        _ => exit::SOFTWARE,
    }
}

/// The error and its causes, on one line.
pub(crate) fn one_line(err: &SimpleLockError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn finish(result: SimpleLockResult<i32>) -> i32 {
    result.unwrap_or_else(|err| fail(&err, exit::SOFTWARE))
}

/// The error for what the Windows build lacks, `what` (the tool's exit status is 64, as for a
/// mistake in the command line).
#[cfg(windows)]
pub(crate) fn unix_only(name: &str, what: &str) -> SimpleLockError {
    SimpleLockError::unknown(
        name,
        format!(
            "{what} is Unix-only: on Windows simplelock has the file backend (a lock NAME or \
             --file PATH)"
        ),
        None,
    )
    .with_kind(std::io::ErrorKind::Unsupported)
}

/// A handle on the lock the user named (a new backend is an arm here), and for a file lock what
/// the command is to inherit of it (on Unix its descriptor, valid as long as the handle lives).
fn open(
    backend: Backend,
    target: &Target,
    shared: bool,
) -> SimpleLockResult<(Box<dyn ConcreteLock + Send>, Option<child::Inherited>)> {
    Ok(match (backend, target) {
        (backend, Target::Permits(name, permits)) => permits::open(backend, name, *permits)?,
        #[cfg(unix)]
        (Backend::File, Target::Path(path)) if path.is_dir() => {
            let lock = DescriptorLock::folder(path, shared)?;
            let fd = lock.raw_fd();
            (Box::new(lock), Some(fd))
        }
        #[cfg(windows)]
        (Backend::File, Target::Path(path)) if path.is_dir() => {
            return Err(unix_only(&describe(target), "locking a folder"));
        }
        (Backend::File, target) => {
            let lock = open_file(target, shared)?;
            let inherited = child::inheritable(&lock);
            (Box::new(lock), inherited)
        }
        (Backend::Sema, Target::Name(name)) => (Box::new(SemaphoreLock::named(name)?), None),
        #[cfg(unix)]
        (Backend::Postgres, target) => (Box::new(pg::open(target, shared)?), None),
        #[cfg(windows)]
        (Backend::Postgres, target) => {
            return Err(unix_only(&describe(target), "the postgres backend"));
        }
        // Refused by the parser: these backends have names only.
        (Backend::Sema, target) => {
            return Err(SimpleLockError::invalid_name(
                describe(target),
                "a semaphore lock has a name, not a path",
            ));
        }
    })
}

/// A handle on the file lock the user named.
fn open_file(target: &Target, shared: bool) -> SimpleLockResult<FileLock> {
    let options = FileLock::options().with_shared(shared);
    match target {
        Target::Name(name) => options.named(name),
        Target::Path(path) => options.at_path(path),
        Target::Descriptor(fd) => Err(SimpleLockError::invalid_name(
            format!("descriptor {fd}"),
            "an inherited descriptor is no lock file",
        )),
        Target::Permits(name, _) => Err(SimpleLockError::invalid_name(
            name,
            "a counting semaphore is no lock file",
        )),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Name(name) => name.clone(),
        Target::Path(path) => path.display().to_string(),
        Target::Descriptor(fd) => format!("descriptor {fd}"),
        Target::Permits(name, _) => name.clone(),
    }
}

/// `simplelock [OPTIONS] NAME -- COMMAND`: lock, run, unlock, pass the status on.
/// `simplelock [OPTIONS] FD`: lock, leave the lock with the descriptor.
fn run_command(run: RunArgs) -> i32 {
    if let Target::Descriptor(fd) = run.target {
        return lock_descriptor(fd, &run);
    }
    // A postgres lock hands its command a fencing token; a postgres semaphore is run below.
    #[cfg(unix)]
    if run.backend == Backend::Postgres && !matches!(run.target, Target::Permits(..)) {
        return pg::run_command(&run);
    }
    let (mut lock, inherited) = match open(run.backend, &run.target, run.shared) {
        Ok(lock) => lock,
        Err(err) => return fail(&err, run.conflict_exit_code),
    };
    if let Err(err) = acquire(lock.as_mut(), run.wait, &describe(&run.target)) {
        return fail(&err, run.conflict_exit_code);
    }
    let previous = previous_holder(lock.previous_holder());
    let code = child::run(&run.command, inherited, previous);
    if let Err(err) = lock.try_unlock() {
        say_error(&one_line(&err));
        if code == 0 {
            return exit::SOFTWARE;
        }
    }
    code
}

/// `SIMPLELOCK_PREVIOUS_HOLDER`'s value for the command.
pub(crate) fn previous_holder(previous: PreviousHolder) -> &'static str {
    match previous {
        PreviousHolder::Died => "died",
        PreviousHolder::Released => "released",
        _ => "unknown",
    }
}

/// flock(1)'s `flock 9`: locks the open file `fd` and leaves the lock with it.
#[cfg(unix)]
fn lock_descriptor(fd: RawFd, run: &RunArgs) -> i32 {
    let mut lock = match DescriptorLock::inherited(fd, run.shared) {
        Ok(lock) => lock,
        Err(err) => return fail(&err, run.conflict_exit_code),
    };
    match acquire(&mut lock, run.wait, &describe(&run.target)) {
        Ok(()) => {
            lock.leave_held();
            0
        }
        Err(err) => fail(&err, run.conflict_exit_code),
    }
}

/// flock(1)'s `flock 9`: Windows has no descriptors to inherit this way.
#[cfg(windows)]
fn lock_descriptor(_fd: RawFd, run: &RunArgs) -> i32 {
    let err = unix_only(&describe(&run.target), "locking an inherited descriptor");
    fail(&err, run.conflict_exit_code)
}

/// Waits for the lock as asked. On a terminal, a wait longer than a second shows who holds the
/// lock and for how long we have waited; the wait itself stays the backend's native one, in
/// slices of a second.
pub(crate) fn acquire(lock: &mut dyn ConcreteLock, wait: Wait, name: &str) -> SimpleLockResult<()> {
    const SLICE: Duration = Duration::from_secs(1);
    let mut stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return match wait {
            Wait::Try => lock.try_lock(),
            Wait::Forever => lock.hang_lock(),
            timed => lock.timed_lock(timed.remaining().unwrap_or(Duration::MAX)),
        };
    }
    let began = Instant::now();
    let wait = wait.start();
    let mut shown = false;
    let result = loop {
        // Zero when out of time: one last try, at the deadline.
        let slice = wait.sleep_slice(SLICE).unwrap_or(Duration::ZERO);
        match lock.timed_lock(slice) {
            Err(SimpleLockError::TimedOut { holder, name, .. }) if wait.is_expired() => {
                break Err(wait.out_of_time(name, holder));
            }
            Err(SimpleLockError::TimedOut { holder, .. }) => {
                let by = holder.map_or(String::new(), |h| format!(" (held by {h})"));
                let _ = write!(
                    stderr,
                    "\r\x1b[Ksimplelock: waiting for lock {name:?}{by}, waited {}s",
                    began.elapsed().as_secs()
                );
                let _ = stderr.flush();
                shown = true;
            }
            other => break other,
        }
    };
    if shown {
        let _ = write!(stderr, "\r\x1b[K");
    }
    result
}

/// `simplelock status`: who holds the lock and since when; exit status 0 either way.
fn status(backend: Backend, target: &Target, json: bool) -> SimpleLockResult<i32> {
    if let Target::Permits(name, n) = target {
        return Ok(print_out(&permits::status(backend, name, *n, json)?));
    }
    // Looking at a lock creates nothing: no kernel object, no lock folder, no lock file.
    let (lock, location): (Option<Box<dyn ConcreteLock + Send>>, _) = match (backend, target) {
        (Backend::Sema, Target::Name(name)) => (
            SemaphoreLock::open_existing(name)?
                .map(|lock| Box::new(lock) as Box<dyn ConcreteLock + Send>),
            format!("/dev/shm/sl.{}", name.trim_start_matches('/')),
        ),
        // The file the lock lives in, as the backend names it.
        (Backend::File, Target::Name(name)) => (
            FileLock::named_existing(name)?.map(|lock| Box::new(lock) as _),
            FileLock::named_path(name)?.display().to_string(),
        ),
        (Backend::File, Target::Path(path)) => (
            FileLock::open_existing(path)?.map(|lock| Box::new(lock) as _),
            path.display().to_string(),
        ),
        #[cfg(unix)]
        (Backend::Postgres, Target::Name(_)) => {
            let lock = pg::open(target, false)?;
            let location = lock.server().to_owned();
            (Some(Box::new(lock)), location)
        }
        #[cfg(windows)]
        (Backend::Postgres, Target::Name(name)) => {
            return Err(unix_only(name, "the postgres backend"));
        }
        // Refused by `open`: a semaphore or PostgreSQL lock has no path, a descriptor is never
        // looked at, a counting semaphore is handled above.
        (Backend::Sema | Backend::Postgres, Target::Path(_))
        | (_, Target::Descriptor(_))
        | (_, Target::Permits(..)) => (Some(open(backend, target, false)?.0), String::new()),
    };
    let (held, holder) = match &lock {
        None => (false, None),
        Some(lock) => match lock.status()? {
            LockStatus::Open => (false, None),
            _ => (true, lock.holder()?),
        },
    };
    let status = report::Status {
        name: describe(target),
        backend: backend.name(),
        location,
        held,
        pid: holder.as_ref().map(|holder| holder.pid),
        program: holder.as_ref().and_then(|holder| holder.program.clone()),
        host: holder.as_ref().and_then(|holder| holder.host.clone()),
        since: holder.and_then(|holder| holder.since),
    };
    Ok(print_out(&if json { status.json() } else { status.text() }))
}

/// `simplelock remove NAME`: delete a semaphore lock's kernel object, safely (it waits for the
/// holder); exit status 0 if it was deleted, 1 if there was none.
fn remove(name: &str) -> SimpleLockResult<i32> {
    if SemaphoreLock::remove(name)? {
        Ok(print_out(&format!("removed semaphore lock {name:?}\n")))
    } else {
        say_error(&format!("there is no semaphore lock {name:?}"));
        Ok(1)
    }
}

/// `simplelock remove --permits N NAME`: exit status 0 if the semaphore was deleted, 1 if
/// there was none.
fn remove_permits(name: &str) -> SimpleLockResult<i32> {
    match permits::remove(name)? {
        Some(done) => Ok(print_out(&done)),
        None => {
            say_error(&format!("there is no semaphore {name:?}"));
            Ok(1)
        }
    }
}
