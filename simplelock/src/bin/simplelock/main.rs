//! `simplelock`: run a command while holding a lock, like util-linux `flock(1)` and GNU
//! parallel's `sem`, with named locks, a crash-safe semaphore backend, timeouts, progress while
//! waiting, and status queries. See `simplelock --help`.
//!
//! Built with the `cli` feature of the `simplelock` crate.
#![deny(unsafe_code)]

mod args;
mod child;
mod pg;

use std::env;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simplelock::{
    ConcreteLock, FileLock, Holder, LockStatus, SemaphoreLock, SimpleLockError, SimpleLockResult,
};

use args::{Backend, Invocation, RunArgs, Target, Wait, exit};

fn main() -> ExitCode {
    let code = match args::parse(env::args_os().skip(1).collect()) {
        Err(usage) => {
            say_error(&usage);
            exit::USAGE
        }
        Ok(Invocation::Help) => print_out(args::USAGE),
        Ok(Invocation::Version) => {
            print_out(&format!("simplelock {}\n", env!("CARGO_PKG_VERSION")))
        }
        Ok(Invocation::Run(run)) => run_command(&run),
        Ok(Invocation::Status {
            backend,
            target,
            json,
        }) => report(status(backend, &target, json)),
        Ok(Invocation::Remove { name }) => report(remove(&name)),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
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
fn fail(err: &SimpleLockError, conflict_exit_code: i32) -> i32 {
    say_error(&one_line(err));
    match err {
        SimpleLockError::AlreadyLocked { .. } | SimpleLockError::TimedOut { .. } => {
            conflict_exit_code
        }
        SimpleLockError::InvalidName { .. } | SimpleLockError::NoLockEnabled => exit::USAGE,
        SimpleLockError::PermissionDenied { .. } => exit::UNAVAILABLE,
        _ => exit::SOFTWARE,
    }
}

/// The error and its causes, on one line.
fn one_line(err: &SimpleLockError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn report(result: SimpleLockResult<i32>) -> i32 {
    result.unwrap_or_else(|err| fail(&err, exit::SOFTWARE))
}

/// A handle on the lock the user named, and for a file lock the descriptor the command is to
/// inherit (valid as long as the handle lives).
fn open(
    backend: Backend,
    target: &Target,
    shared: bool,
) -> SimpleLockResult<(Box<dyn ConcreteLock + Send>, Option<RawFd>)> {
    Ok(match (backend, target) {
        (Backend::File, target) => {
            let lock = open_file(target)?;
            let fd = lock.as_fd().as_raw_fd();
            (
                Box::new(if shared { lock.shared() } else { lock }),
                Some(fd),
            )
        }
        (Backend::Sema, Target::Name(name)) => (Box::new(SemaphoreLock::new(name)?), None),
        (Backend::Sema, Target::Path(path)) => {
            return Err(SimpleLockError::invalid_name(
                path.display().to_string(),
                "a semaphore lock has a name, not a path",
            ));
        }
        (Backend::Postgres, target) => (Box::new(pg::open(target, shared)?), None),
    })
}

/// A handle on the file lock the user named.
fn open_file(target: &Target) -> SimpleLockResult<FileLock> {
    match target {
        Target::Name(name) => FileLock::named(name),
        Target::Path(path) => FileLock::new(path),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Name(name) => name.clone(),
        Target::Path(path) => path.display().to_string(),
    }
}

/// `simplelock [OPTIONS] NAME -- COMMAND`: lock, run, unlock, pass the status on.
fn run_command(run: &RunArgs) -> i32 {
    if run.backend == Backend::Postgres {
        return pg::run_command(run);
    }
    let (mut lock, inherited) = match open(run.backend, &run.target, run.shared) {
        Ok(lock) => lock,
        Err(err) => return fail(&err, run.conflict_exit_code),
    };
    if let Err(err) = acquire(lock.as_mut(), run.wait, &describe(&run.target)) {
        return fail(&err, run.conflict_exit_code);
    }
    let code = child::run(&run.command, inherited);
    if let Err(err) = lock.try_unlock() {
        say_error(&one_line(&err));
        if code == 0 {
            return exit::SOFTWARE;
        }
    }
    code
}

/// Waits for the lock as asked. On a terminal, a wait longer than a second shows who holds the
/// lock and for how long we have waited; the wait itself stays the backend's native one, in
/// slices of a second.
fn acquire(lock: &mut dyn ConcreteLock, wait: Wait, name: &str) -> SimpleLockResult<()> {
    const SLICE: Duration = Duration::from_secs(1);
    let mut stderr = std::io::stderr();
    let tty = stderr.is_terminal();
    let limit = match wait {
        Wait::NotAtAll => return lock.try_lock(),
        Wait::Forever if !tty => return lock.hang_lock(),
        Wait::AtMost(timeout) if !tty => return lock.timed_lock(timeout),
        Wait::Forever => None,
        Wait::AtMost(timeout) => Some(timeout),
    };
    let start = Instant::now();
    let mut shown = false;
    let result = loop {
        let left = limit.map(|limit| limit.saturating_sub(start.elapsed()));
        match lock.timed_lock(left.map_or(SLICE, |left| left.min(SLICE))) {
            Err(SimpleLockError::TimedOut {
                holder,
                name: lock_name,
                ..
            }) => {
                if let (Some(limit), Some(left)) = (limit, left)
                    && left <= SLICE
                {
                    break Err(SimpleLockError::timed_out(lock_name, limit, holder));
                }
                let by = holder.map_or(String::new(), |h| format!(" (held by {h})"));
                let _ = write!(
                    stderr,
                    "\r\x1b[Ksimplelock: waiting for lock {name:?}{by}, waited {}s",
                    start.elapsed().as_secs()
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
        // Refused by `open`: a semaphore lock has no path.
        (Backend::Sema, Target::Path(_)) => (Some(open(backend, target, false)?.0), String::new()),
        (Backend::Postgres, target) => {
            let lock = pg::open(target, false)?;
            let location = lock.server().to_owned();
            (Some(Box::new(lock)), location)
        }
    };
    let (held, holder) = match &lock {
        None => (false, None),
        Some(lock) => match lock.status()? {
            LockStatus::Open => (false, None),
            _ => (true, lock.holder()?),
        },
    };
    let backend_name = match backend {
        Backend::File => "file",
        Backend::Sema => "sema",
        Backend::Postgres => "postgres",
    };
    if json {
        let json = status_json(
            &describe(target),
            backend_name,
            &location,
            held,
            holder.as_ref(),
        );
        return Ok(print_out(&format!("{json}\n")));
    }
    let what = match holder {
        Some(holder) => format!("held by {}", holder_text(&holder)),
        None if held => "held (by a process this system does not name)".to_owned(),
        None => "free".to_owned(),
    };
    Ok(print_out(&format!(
        "lock {:?} ({backend_name}, {location}): {what}\n",
        describe(target)
    )))
}

fn holder_text(holder: &Holder) -> String {
    let mut text = format!("pid {}", holder.pid);
    if let Some(program) = &holder.program {
        text.push_str(&format!(" ({program})"));
    }
    if let Some(host) = &holder.host {
        text.push_str(&format!(" on {host}"));
    }
    if let Some(since) = holder.since {
        text.push_str(&format!(" since {}", utc(since)));
        if let Ok(age) = since.elapsed() {
            text.push_str(&format!(" ({})", age_text(age)));
        }
    }
    text
}

fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `2026-11-27 09:15:02 UTC`.
fn utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn status_json(
    name: &str,
    backend: &str,
    location: &str,
    held: bool,
    holder: Option<&Holder>,
) -> String {
    let pid = holder.map_or("null".to_owned(), |h| h.pid.to_string());
    let since = holder
        .and_then(|h| h.since)
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .map_or("null".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
    format!(
        "{{\"name\":{},\"backend\":{},\"location\":{},\"held\":{held},\"pid\":{pid},\"since\":{since}}}",
        json_string(name),
        json_string(backend),
        json_string(location),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_772_102);
        assert_eq!(utc(t), "2026-11-27 09:35:02 UTC");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn json_is_escaped() {
        let holder = Holder::new(42).with_since(UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(
            status_json("a\"b\n", "file", "/x", true, Some(&holder)),
            r#"{"name":"a\"b\u000a","backend":"file","location":"/x","held":true,"pid":42,"since":1.500}"#
        );
        assert_eq!(
            status_json("a", "sema", "/dev/shm/sl.a", false, None),
            r#"{"name":"a","backend":"sema","location":"/dev/shm/sl.a","held":false,"pid":null,"since":null}"#
        );
    }
}
