//! `-b postgres`: the lock on a PostgreSQL server, where its URL comes from, and the fencing
//! token handed to the command.
//!
//! The backend is Unix-only (simplelock-postgres does not build on Windows): there the tool
//! keeps `--url` and refuses `-b postgres` (see `unix_only` in `main.rs`).

use std::sync::OnceLock;

#[cfg(unix)]
use simplelock::{ConcreteLock, PostgresLock, PostgresPermits, SimpleLockError, SimpleLockResult};

#[cfg(unix)]
use crate::args::{RunArgs, Target, exit};

/// The variable that names the server when `--url` does not.
#[cfg(unix)]
pub(crate) const URL_VAR: &str = "SIMPLELOCK_POSTGRES_URL";
/// The variable that carries the fencing token to the command.
#[cfg(unix)]
pub(crate) const TOKEN_VAR: &str = "SIMPLELOCK_FENCING_TOKEN";

static URL: OnceLock<String> = OnceLock::new();

/// Keeps `--url` (the first one given wins, as for a repeated option the parser refuses).
pub(crate) fn set_url(url: String) {
    let _ = URL.set(url);
}

/// `--url`, else `$SIMPLELOCK_POSTGRES_URL`, else nothing (the `PG*` variables and libpq's
/// defaults then say where the server is).
#[cfg(unix)]
fn url() -> Option<String> {
    URL.get()
        .cloned()
        .or_else(|| std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()))
}

/// A handle on the named lock on the server.
#[cfg(unix)]
pub(crate) fn open(target: &Target, shared: bool) -> SimpleLockResult<PostgresLock> {
    let name = match target {
        Target::Name(name) => name,
        Target::Path(path) => {
            return Err(SimpleLockError::invalid_name(
                path.display().to_string(),
                "a PostgreSQL lock has a name, not a path",
            ));
        }
        Target::Descriptor(fd) => {
            return Err(SimpleLockError::invalid_name(
                format!("descriptor {fd}"),
                "a PostgreSQL lock has a name, not a descriptor",
            ));
        }
        Target::Permits(name, _) => {
            return Err(SimpleLockError::invalid_name(
                name,
                "a counting semaphore is opened as permits, not as a lock",
            ));
        }
    };
    let mut options = PostgresLock::options().with_shared(shared);
    if let Some(url) = url() {
        options = options.with_url(url);
    }
    options.named(name)
}

#[cfg(unix)]
/// A handle on the counting semaphore `name` of `permits` permits on the server.
pub(crate) fn open_permits(name: &str, permits: u32) -> SimpleLockResult<PostgresPermits> {
    let mut options = PostgresPermits::options();
    if let Some(url) = url() {
        options = options.with_url(url);
    }
    options.named(name, permits)
}

/// Lock, run the command with the fencing token and how the previous holder let go in its
/// environment, unlock; a lock lost while
/// the command ran is reported (and fails a command that succeeded).
#[cfg(unix)]
pub(crate) fn run_command(run: &RunArgs) -> i32 {
    let mut lock = match open(&run.target, run.shared) {
        Ok(lock) => lock,
        Err(err) => return crate::fail(&err, run.conflict_exit_code),
    };
    let name = lock.name().to_owned();
    if let Err(err) = crate::acquire(&mut lock, run.wait, &name) {
        return crate::fail(&err, run.conflict_exit_code);
    }
    let token = lock
        .fencing_token()
        .expect("a held PostgresLock has a token")
        .to_string();
    let previous = crate::previous_holder(lock.previous_holder());
    let code = crate::child::run_with_env(&run.command, None, previous, &[(TOKEN_VAR, token)]);
    if let Err(err) = lock.try_unlock() {
        crate::say_error(&crate::one_line(&err));
        if code == 0 {
            return exit::SOFTWARE;
        }
    }
    code
}
