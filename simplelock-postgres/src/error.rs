//! From PostgreSQL's errors to [`SimpleLockError`]s that say what went wrong in words, with the
//! driver's error kept as `source()`; and [`LockLost`].

use std::error::Error;
use std::fmt;
use std::io;

use simplelock_core::{SimpleLockError, SimpleLockResult};
use tokio_postgres::error::SqlState;

/// The lock was lost while held: the connection that held it ended (server restart,
/// `pg_terminate_backend`, a cut network noticed by the keepalives, a pooler that moved the
/// session), so the server released it and another client may hold it now.
///
/// It is the `source()` of the [`SimpleLockError`] that
/// [`PostgresLock::ensure_held`](crate::PostgresLock::ensure_held) and
/// [`try_unlock`](simplelock_core::ConcreteLock::try_unlock) return then; find it with
/// [`LockLost::find`].
#[derive(Debug)]
pub struct LockLost {
    /// What happened, in words.
    pub reason: String,
}

impl LockLost {
    /// The `LockLost` behind `err`, if the error is a lost lock.
    pub fn find(err: &SimpleLockError) -> Option<&LockLost> {
        let mut source = err.source();
        while let Some(s) = source {
            if let Some(lost) = s.downcast_ref::<LockLost>() {
                return Some(lost);
            }
            // `UnableToUnlock` carries its source in an `io::Error`.
            if let Some(inner) = s.downcast_ref::<io::Error>().and_then(io::Error::get_ref)
                && let Some(lost) = inner.downcast_ref::<LockLost>()
            {
                return Some(lost);
            }
            source = s.source();
        }
        None
    }
}

impl fmt::Display for LockLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the lock was lost: {}", self.reason)
    }
}

impl Error for LockLost {}

/// The kind of an error that means the lock was lost (see the crate docs, "Errors").
pub(crate) const LOST: io::ErrorKind = io::ErrorKind::ConnectionAborted;

/// The error for a lock that was lost while `doing` something.
pub(crate) fn lost(lock: &str, doing: &str, reason: String) -> SimpleLockError {
    let lost = LockLost { reason };
    SimpleLockError::unknown(lock, doing, Some(Box::new(lost))).with_kind(LOST)
}

/// The server's answer to a release statement whose first column says whether the key was
/// released (`None`: the connection had ended before it was sent), as the caller's result: the
/// error of `lock` that was lost before its release (`what`: "the lock", "the permit"), with
/// the connection's end reason (`ended`) where known.
pub(crate) fn released(
    lock: &str,
    what: &str,
    answer: Option<Result<tokio_postgres::Row, tokio_postgres::Error>>,
    ended: impl Fn() -> Option<String>,
) -> SimpleLockResult<()> {
    let reason = match answer {
        Some(Ok(row)) if row.get::<_, bool>(0) => return Ok(()),
        None => ended().unwrap_or_else(|| "the connection ended".to_owned()),
        Some(Ok(_)) => "the server did not list it as held by this session".to_owned(),
        Some(Err(e)) => ended().unwrap_or_else(|| chain(&e)),
    };
    Err(SimpleLockError::unable_to_unlock(
        lock,
        format!("{what} was lost before the release"),
        Some(io::Error::new(LOST, LockLost { reason })),
    ))
}

/// `err` and its sources, joined with ": ".
pub(crate) fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Opening a connection to `server` failed with `e`: say why in words.
pub(crate) fn connect_error(lock: &str, server: &str, e: tokio_postgres::Error) -> SimpleLockError {
    let why = match e.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => {
            "wrong password (or none given: set it in the URL or PGPASSWORD)".to_owned()
        }
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            format!("the server refused the login: {}", db_message(&e))
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            format!("the database does not exist: {}", db_message(&e))
        }
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => {
            format!(
                "the server has no free connection (each held lock uses one): {}",
                db_message(&e)
            )
        }
        Some(code) if code.code().starts_with("57P") => {
            format!(
                "the server is shutting down or starting up: {}",
                db_message(&e)
            )
        }
        Some(_) => db_message(&e),
        // The driver's error, kept as the source, says the rest.
        None => {
            let text = chain(&e);
            match io_kind(&e) {
                Some(io::ErrorKind::ConnectionRefused) | Some(io::ErrorKind::NotFound) => {
                    "cannot reach the server (is it running, and is the address right?)".to_owned()
                }
                _ if text.contains("timeout") || text.contains("timed out") => {
                    "cannot reach the server in time".to_owned()
                }
                _ => "cannot connect".to_owned(),
            }
        }
    };
    if let Some(code) = e.code()
        && (*code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        let source = io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("PostgreSQL at {server}: {why}"),
        );
        let _ = e;
        return SimpleLockError::permission_denied(lock, Some(source));
    }
    let kind = match e.code() {
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => io::ErrorKind::NotFound,
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => io::ErrorKind::ResourceBusy,
        Some(code) if code.code().starts_with("57P") => io::ErrorKind::ConnectionRefused,
        Some(_) => io::ErrorKind::Other,
        None => io_kind(&e).unwrap_or(io::ErrorKind::Other),
    };
    SimpleLockError::unknown(
        lock,
        format!("connecting to PostgreSQL at {server}: {why}"),
        Some(Box::new(e)),
    )
    .with_kind(kind)
}

/// Opening a socket to `server` failed with `e`.
pub(crate) fn socket_error(lock: &str, server: &str, e: io::Error) -> SimpleLockError {
    let why = match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
            "cannot reach the server (is it running, and is the address right?)"
        }
        io::ErrorKind::TimedOut => "cannot reach the server in time",
        _ => "cannot connect",
    };
    SimpleLockError::unknown(
        lock,
        format!("connecting to PostgreSQL at {server}: {why}"),
        Some(Box::new(e)),
    )
}

/// An error of a lock statement, in words.
pub(crate) fn query_error(lock: &str, doing: &str, e: tokio_postgres::Error) -> SimpleLockError {
    if e.is_closed()
        || e.as_db_error()
            .is_some_and(|db| db.code().code().starts_with("57P"))
    {
        let reason = match e.as_db_error() {
            Some(db) => format!("the server ended the session: {}", db.message()),
            None => format!("the connection broke: {}", chain(&e)),
        };
        return SimpleLockError::unknown(lock, format!("{doing}: {reason}"), Some(Box::new(e)))
            .with_kind(LOST);
    }
    let message = match e.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE => format!(
            "{doing}: the fencing-token sequence does not exist: {}",
            db_message(&e)
        ),
        Some(code) if *code == SqlState::OUT_OF_MEMORY || code.code() == "53200" => format!(
            "{doing}: the server's lock table is full (raise max_locks_per_transaction): {}",
            db_message(&e)
        ),
        _ => doing.to_owned(),
    };
    let kind = match e.code() {
        Some(code) if *code == SqlState::UNDEFINED_TABLE => io::ErrorKind::NotFound,
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => io::ErrorKind::PermissionDenied,
        Some(code) if *code == SqlState::OUT_OF_MEMORY || code.code() == "53200" => {
            io::ErrorKind::OutOfMemory
        }
        _ => io::ErrorKind::Other,
    };
    SimpleLockError::unknown(lock, message, Some(Box::new(e))).with_kind(kind)
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => chain(e),
    }
}

/// The `io::ErrorKind` somewhere in `e`'s sources.
fn io_kind(e: &tokio_postgres::Error) -> Option<io::ErrorKind> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}
