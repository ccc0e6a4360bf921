//! Child processes for the multi-process checks: the test binary itself, re-run for the one
//! test with a role in its environment — the design of the backends' own multi-process tests.
//!
//! A child tells its parent what it did in lines on its standard output that start with
//! [`TAG`] (everything else there is libtest's), and hears commands as lines on its standard
//! input. Its standard error is the test's, so its panics show in the test output.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::Backend;
use super::harness::{Ctx, broke};
use crate::ConcreteLock;

/// `<check> <role>`: set in a child, unset in a normal run.
const ROLE: &str = "SIMPLELOCK_CONFORMANCE_ROLE";
/// The key of the lock a child works on.
const KEY: &str = "SIMPLELOCK_CONFORMANCE_KEY";
/// The folder of the critical section a child works in.
const DIR: &str = "SIMPLELOCK_CONFORMANCE_DIR";
/// The [`run_id`] of the parent.
const RUN: &str = "SIMPLELOCK_CONFORMANCE_RUN";
/// Lines a child says to its parent start with this.
const TAG: &str = "@@conformance ";

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
    let value = std::env::var(ROLE).ok()?;
    let (check, role) = value.split_once(' ')?;
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

/// In a child: tells the parent `message`.
pub(super) fn say(message: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{TAG}{message}");
    let _ = out.flush();
}

/// In a child: the next command of the parent (empty once the parent closed our input).
pub(super) fn hear() -> String {
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    line.trim_end().to_owned()
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

/// A child process playing `role` in the check of `ctx`. Dropping it kills it if it still runs,
/// so a failed check leaves no process behind.
pub(super) struct Child {
    process: std::process::Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    role: String,
}

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
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("the multi-process checks re-run the test binary: {e}"));
        let mut command = Command::new(exe);
        command
            .args([
                "--exact",
                &ctx.test,
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, format!("{} {role}", ctx.check))
            .env(KEY, key)
            .env(DIR, dir)
            .env(RUN, run_id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut process = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting a child process ({role}): {e}"));
        let stdout = process.stdout.take().expect("piped");
        let stdin = process.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(message) = line.strip_prefix(TAG)
                    && tx.send(message.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Child {
            process,
            lines,
            stdin,
            role: role.to_owned(),
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Waits for the child to say `expected`; a silence, another message or the child's end
    /// fails the check under `rule`.
    #[track_caller]
    pub(super) fn expect(&mut self, expected: &str, rule: &str) {
        match self.lines.recv_timeout(super::WAKE) {
            Ok(line) if line == expected => {}
            Ok(line) => broke(
                rule,
                format!(
                    "the child {} ({}) said {line:?} instead of {expected:?}",
                    self.pid(),
                    self.role
                ),
            ),
            Err(RecvTimeoutError::Timeout) => broke(
                rule,
                format!(
                    "the child {} ({}) did not say {expected:?} within {:?}",
                    self.pid(),
                    self.role,
                    super::WAKE
                ),
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.finish(super::WAKE);
                broke(
                    rule,
                    format!(
                        "the child {} ({}) ended ({status:?}) before it said {expected:?}; its \
                         messages are above",
                        self.pid(),
                        self.role
                    ),
                )
            }
        }
    }

    /// Sends the child one command.
    pub(super) fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// SIGKILL, and reap it (so that it is gone, not a zombie, when this returns).
    pub(super) fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Waits for the child to end, at most `wait`; `None` if it still runs (then it is killed).
    pub(super) fn finish(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.stdin = None;
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Some(status);
            }
            if start.elapsed() > wait {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for the child to end successfully within `wait`; fails the check under `rule`
    /// otherwise.
    #[track_caller]
    pub(super) fn expect_success(&mut self, wait: Duration, rule: &str) {
        match self.finish(wait) {
            Some(status) if status.success() => {}
            Some(status) => broke(
                rule,
                format!(
                    "the child {} ({}) failed: {status}; its messages are above",
                    self.pid(),
                    self.role
                ),
            ),
            None => broke(
                rule,
                format!(
                    "the child {} ({}) did not end within {wait:?}",
                    self.pid(),
                    self.role
                ),
            ),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            self.kill();
        }
    }
}
