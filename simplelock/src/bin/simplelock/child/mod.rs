//! Running the command under the lock: start it so that the lock lasts as long as the whole
//! command tree, and turn its end into our exit status.
//!
//! What every platform shares is here: the command line and environment the command gets, and
//! the exit statuses for a command that cannot be started. How the command tree is tied to the
//! lock is the platform's: `unix.rs` (a child subreaper, the locked descriptor inherited,
//! signals passed on, `PR_SET_PDEATHSIG`) and `windows.rs` (a Job object that kills the tree
//! when the tool dies, Ctrl-C left to the console); each module's docs argue its guarantees.
//!
//! # The command learns how the previous holder let go
//!
//! `SIMPLELOCK_PREVIOUS_HOLDER` in the command's environment is `died` when the backend knows
//! that the previous holder ended while holding the lock (half-done work may be left: the
//! command can repair it), `released` when it let go or the lock was new, `unknown` when the
//! backend cannot tell (a `--file` path, a folder or a PostgreSQL lock keeps no holder record).
//! The PostgreSQL backend adds the lock's fencing token, `SIMPLELOCK_FENCING_TOKEN`
//! ([`run_with_env`]).

use std::ffi::OsString;
use std::io;
use std::process::Command;

use crate::args::exit;
use crate::say_error;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::{Inherited, inheritable, run_with_env};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::{Inherited, inheritable, run_with_env};

/// Runs `command` to its end and returns the exit status to leave with. `inherited` is what
/// the command inherits of the lock ([`inheritable`]); `previous_holder` is for
/// `SIMPLELOCK_PREVIOUS_HOLDER` (`died`, `released`, `unknown`).
pub(crate) fn run(
    command: &[OsString],
    inherited: Option<Inherited>,
    previous_holder: &str,
) -> i32 {
    run_with_env(command, inherited, previous_holder, &[])
}

/// The command to start (its first word the program, the others its arguments), told how the
/// previous holder let go, with `env` added to its environment.
fn command(command: &[OsString], previous_holder: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    cmd.env("SIMPLELOCK_PREVIOUS_HOLDER", previous_holder);
    cmd.envs(env.iter().map(|(key, value)| (key, value)));
    cmd
}

/// Says why `command` could not be started, and returns the exit status for it, as shells do:
/// 127 if it was not found, 126 otherwise.
fn cannot_run(command: &[OsString], err: &io::Error) -> i32 {
    let name = command[0].to_string_lossy();
    say_error(&format!("cannot run {name:?}: {err}"));
    match err.kind() {
        io::ErrorKind::NotFound => exit::NOT_FOUND,
        _ => exit::CANNOT_EXECUTE,
    }
}
