//! The suite's child processes: the protocol of [`super::child`] (the test binary re-run for one
//! test with its role in [`child::ROLE`], talking in tagged lines), with the check and the lock's
//! key and folder passed along, and failures reported as broken rules of the check.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Backend;
use super::child::{self, Silence};
use super::harness::{Ctx, broke};
use crate::ConcreteLock;

/// The key of the lock a child works on.
const KEY: &str = "SIMPLELOCK_CONFORMANCE_KEY";
/// The folder of the critical section a child works in.
const DIR: &str = "SIMPLELOCK_CONFORMANCE_DIR";
/// The [`run_id`] of the parent.
const RUN: &str = "SIMPLELOCK_CONFORMANCE_RUN";
/// How the suite's roles start in [`child::ROLE`]: `conformance <check> <role>`.
const PREFIX: &str = "conformance ";

/// The process id of the test process that runs the suite: in a child the suite started, its
/// parent's. An opener maps keys to locks of this run with it, so that a child opens the same
/// lock as its parent for the same key.
pub fn run_id() -> u32 {
    std::env::var(RUN)
        .ok()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(std::process::id)
}

/// The check and role of this process, if it is a child the suite started.
pub(super) fn child_role() -> Option<(String, String)> {
    let value = child::role()?;
    let (check, role) = value.strip_prefix(PREFIX)?.split_once(' ')?;
    Some((check.to_owned(), role.to_owned()))
}

/// In a child: plays its role if it was started for check `name` and ends the process;
/// returns at once for any other check.
pub(super) fn play_child<H: ConcreteLock + Send + 'static>(name: &str, backend: Backend<H>) {
    let Some((check, role)) = child_role() else {
        return;
    };
    if check != name {
        return;
    }
    let key = std::env::var(KEY).expect("the parent passes the key");
    let dir = PathBuf::from(std::env::var_os(DIR).expect("the parent passes the folder"));
    super::multi::play(&role, &backend, &key, &dir);
    let _ = io::stdout().flush();
    std::process::exit(0);
}

/// A folder for the shared state of one multi-process check, removed when dropped.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn new(check: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "simplelock-conformance-{}-{check}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating the scratch folder {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process playing `role` in the check of `ctx`: a [`child::Child`] whose failures
/// break a rule of the check.
pub(super) struct Child(child::Child);

impl Child {
    /// Starts this test binary for the test of `ctx` alone, as `role` on lock `key`, with its
    /// shared state in `dir`.
    #[track_caller]
    pub(super) fn spawn<H: ConcreteLock + Send + 'static>(
        ctx: &Ctx<H>,
        role: &str,
        key: &str,
        dir: &Path,
    ) -> Child {
        let role = format!("{PREFIX}{} {role}", ctx.check);
        Child(child::Child::spawn(
            child::command(&ctx.test, &role)
                .env(KEY, key)
                .env(DIR, dir)
                .env(RUN, run_id().to_string()),
        ))
    }

    pub(super) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Waits for the child to say `expected`; a silence, another message or the child's end
    /// fails the check under `rule`.
    #[track_caller]
    pub(super) fn expect(&mut self, expected: &str, rule: &str) {
        let who = format!("the child {} ({})", self.pid(), self.0.role());
        match self.0.recv(super::WAKE) {
            Ok(line) if line == expected => {}
            Ok(line) => broke(rule, format!("{who} said {line:?} instead of {expected:?}")),
            Err(Silence::Timeout) => broke(
                rule,
                format!("{who} did not say {expected:?} within {:?}", super::WAKE),
            ),
            Err(Silence::Ended) => {
                let status = self.finish(super::WAKE);
                broke(
                    rule,
                    format!(
                        "{who} ended ({status:?}) before it said {expected:?}; its messages are \
                         above"
                    ),
                )
            }
        }
    }

    /// Sends the child one command.
    pub(super) fn send(&mut self, line: &str) {
        self.0.send(line);
    }

    /// SIGKILL, and reap it (so that it is gone, not a zombie, when this returns).
    pub(super) fn kill(&mut self) {
        self.0.kill();
    }

    /// Waits for the child to end, at most `wait`; `None` if it still runs (then it is killed).
    pub(super) fn finish(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.0.finish(wait)
    }

    /// Waits for the child to end successfully within `wait`; fails the check under `rule`
    /// otherwise.
    #[track_caller]
    pub(super) fn expect_success(&mut self, wait: Duration, rule: &str) {
        let who = format!("the child {} ({})", self.pid(), self.0.role());
        match self.finish(wait) {
            Some(status) if status.success() => {}
            Some(status) => broke(
                rule,
                format!("{who} failed: {status}; its messages are above"),
            ),
            None => broke(rule, format!("{who} did not end within {wait:?}")),
        }
    }
}
