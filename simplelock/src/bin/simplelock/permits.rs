//! Counting semaphores from the shell: `--permits N` (`-j N`, as GNU sem has it) takes one of N
//! permits of the semaphore NAME instead of the lock NAME; `status --permits N` lists who holds
//! each permit; `remove --permits N` deletes a sema-backend semaphore's objects. With `-b
//! postgres` the semaphore is `PostgresPermits` on the server of `--url` (no fencing token: a
//! permit is not exclusive).
//!
//! A permit handle is a lock (see `simplelock_core::permits`), so running a command under a
//! permit is `main.rs`'s run under a lock: same waits, signals, command tree and exit statuses.
//! With the file backend the command inherits the semaphore's open file, whose OFD lock is the
//! permit: as with a file lock, the permit stays held until the last process of the command
//! tree ends, even if simplelock is killed.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use simplelock::{
    ConcreteLock, FilePermits, PermitState, Permits, SemaphorePermits, SimpleLockResult,
};

use crate::args::Backend;

/// A handle on one permit of the semaphore `name` of `permits`, and for the file backend the
/// descriptor the command is to inherit.
pub(crate) fn open(
    backend: Backend,
    name: &str,
    permits: u32,
) -> SimpleLockResult<(Box<dyn ConcreteLock + Send>, Option<RawFd>)> {
    Ok(match backend {
        Backend::File => {
            let semaphore = FilePermits::named(name, permits)?;
            let fd = semaphore.as_fd().as_raw_fd();
            (Box::new(semaphore), Some(fd))
        }
        Backend::Sema => (Box::new(SemaphorePermits::named(name, permits)?), None),
        Backend::Postgres => (Box::new(crate::pg::open_permits(name, permits)?), None),
    })
}

/// What `status --permits` reports. Serialized as is for `--json`.
#[derive(Debug, Serialize)]
struct Status {
    name: String,
    backend: &'static str,
    location: String,
    /// N; `null` if the semaphore does not exist.
    permits: Option<u32>,
    /// How many permits are held.
    held: usize,
    /// One entry per held permit.
    holders: Vec<PermitHolder>,
}

#[derive(Debug, Serialize)]
struct PermitHolder {
    permit: u32,
    pid: Option<u32>,
    /// Seconds since the Unix epoch, to the millisecond, where the backend records it.
    since: Option<f64>,
}

/// `simplelock status --permits N NAME`: who holds each permit; creates nothing.
pub(crate) fn status(
    backend: Backend,
    name: &str,
    permits: u32,
    json: bool,
) -> SimpleLockResult<String> {
    let (states, location) = match backend {
        Backend::File => (
            FilePermits::named_existing(name, permits)?
                .map(|semaphore| semaphore.holders())
                .transpose()?,
            FilePermits::named_path(name)?.display().to_string(),
        ),
        Backend::Sema => (
            SemaphorePermits::open_existing(name, permits)?
                .map(|semaphore| semaphore.holders())
                .transpose()?,
            format!("/dev/shm/sl.{}.permit*", name.trim_start_matches('/')),
        ),
        // Nothing is stored on the server: a semaphore nobody has open has every permit free.
        // (Opening it takes its marker for the moment of the query, and so checks N.)
        Backend::Postgres => {
            let semaphore = crate::pg::open_permits(name, permits)?;
            (Some(semaphore.holders()?), semaphore.server().to_owned())
        }
    };
    let holders: Vec<PermitHolder> = states
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, state)| state.is_held())
        .map(|(permit, state)| PermitHolder {
            permit: permit as u32,
            pid: state.holder().map(|holder| holder.pid),
            since: state
                .holder()
                .and_then(|holder| holder.since)
                .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
                .map(|age| age.as_millis() as f64 / 1000.0),
        })
        .collect();
    let status = Status {
        name: name.to_owned(),
        backend: backend.name(),
        location,
        permits: states.as_ref().map(|_| permits),
        held: holders.len(),
        holders,
    };
    if json {
        // Serializing strings, numbers and booleans into memory cannot fail.
        return Ok(serde_json::to_string(&status).unwrap_or_default() + "\n");
    }
    Ok(text(&status, states.as_deref()))
}

/// `semaphore "builds" (file, …): 2 of 3 permits held` and a line per permit.
fn text(status: &Status, states: Option<&[PermitState]>) -> String {
    let Some(states) = states else {
        return format!(
            "semaphore {:?} ({}, {}): does not exist (free)\n",
            status.name, status.backend, status.location
        );
    };
    let mut text = format!(
        "semaphore {:?} ({}, {}): {} of {} permits held\n",
        status.name,
        status.backend,
        status.location,
        status.held,
        states.len()
    );
    for (permit, state) in states.iter().enumerate() {
        let what = match state {
            PermitState::Free => "free".to_owned(),
            state => match state.holder() {
                Some(holder) => {
                    let mut line = format!("held by pid {}", holder.pid);
                    if let Some(age) = holder
                        .since
                        .and_then(|s| SystemTime::now().duration_since(s).ok())
                    {
                        line.push_str(&format!(" for {}s", age.as_secs()));
                    }
                    line
                }
                None => "held (by a process this system does not name)".to_owned(),
            },
        };
        text.push_str(&format!("  permit {permit}: {what}\n"));
    }
    text
}

/// `simplelock remove --permits N NAME`: deletes a sema-backend semaphore's objects; exit
/// status 0 if it was deleted, 1 if there was none.
pub(crate) fn remove(name: &str) -> SimpleLockResult<Option<String>> {
    Ok(SemaphorePermits::remove(name)?.then(|| format!("removed semaphore {name:?}\n")))
}
