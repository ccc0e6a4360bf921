//! Child processes for multi-process tests: the one protocol of the workspace's tests.
//!
//! A child is **the test binary itself, re-run for one test** (`--exact TEST`) with its role in
//! the environment variable [`ROLE`]; the test sees [`role()`] and plays that part instead of
//! the parent's. The child **says** things to its parent in lines on its standard output that
//! start with [`TAG`] ([`say`]; everything else there is libtest's), and **hears** commands as
//! lines on its standard input ([`hear`]). Its standard error is the test's, so its panics show
//! in the test output. The parent holds a [`Child`]: a thread reads the child's output, so the
//! parent waits for a message with a deadline ([`PATIENCE`] unless told otherwise) instead of
//! blocking forever on a child that hangs, and the child never blocks on a full pipe. Dropping a
//! `Child` SIGKILLs it if it still runs, so a failed test leaves no process behind.
//!
//! This module serves the suite's own multi-process checks and, re-exported by the workspace's
//! dev-only `simplelock-harness` crate (which adds scratch folders, other-user helpers and the
//! checked critical section), the backends' multi-process tests. It lives here because the core
//! has no dependencies and cannot use the harness crate, while the harness can use the core: so
//! the protocol is written once, here, with std alone.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that tells a re-run test binary which role to play; unset in a
/// normal run.
pub const ROLE: &str = "SIMPLELOCK_TEST_ROLE";
/// Lines a child says to its parent start with this.
pub const TAG: &str = "@@ ";
/// How long a parent waits for something a child must do before it calls the test stuck: a
/// hang guard, never a timing assertion, so generous for a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The role of this process, if it is a child started by [`command`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// This test binary, to run test `test` alone (`--exact`, one thread, output not captured) in
/// `role`, with its standard input and output piped to the parent. Add environment variables,
/// a user or a group, then start it with [`Child::spawn`].
pub fn command(test: &str, role: &str) -> Command {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("the multi-process tests re-run the test binary: {e}"));
    let mut command = Command::new(exe);
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// In a child: tells the parent `message` (one line).
pub fn say(message: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{TAG}{message}");
    let _ = out.flush();
}

/// In a child: the next line from the parent (empty once the parent closed our input).
pub fn hear() -> String {
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    line.trim_end().to_owned()
}

/// Why a [`Child`] said nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// It said nothing within the time given.
    Timeout,
    /// It ended (or closed its output) first.
    Ended,
}

/// A running child process (see the [module docs](self)).
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    role: String,
}

impl Child {
    /// Starts `command` (from [`command`], or any program that talks the same way) with its
    /// standard output piped to us.
    #[track_caller]
    pub fn spawn(command: &mut Command) -> Child {
        let role = command
            .get_envs()
            .find(|(key, _)| *key == ROLE)
            .and_then(|(_, value)| value)
            .map_or_else(
                || command.get_program().to_string_lossy().into_owned(),
                |value| value.to_string_lossy().into_owned(),
            );
        let mut process = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting a child process ({role}): {e}"));
        let stdout = process.stdout.take().expect("piped");
        let stdin = process.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            // Reads to the end, so that the child never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(message) = line.strip_prefix(TAG) {
                    let _ = tx.send(message.to_owned());
                }
            }
        });
        Child {
            process,
            lines,
            stdin,
            role,
        }
    }

    /// Starts test `test` of this test binary in `role` ([`command`]) with the environment
    /// variables `envs`.
    #[track_caller]
    pub fn start(test: &str, role: &str, envs: &[(&str, &str)]) -> Child {
        let mut command = command(test, role);
        command.envs(envs.iter().copied());
        Child::spawn(&mut command)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Its role (or program), for messages.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The next line the child says, within `within`, or why not.
    pub fn recv(&self, within: Duration) -> Result<String, Silence> {
        self.lines.recv_timeout(within).map_err(|e| match e {
            RecvTimeoutError::Timeout => Silence::Timeout,
            RecvTimeoutError::Disconnected => Silence::Ended,
        })
    }

    /// The next line the child says, within [`PATIENCE`]; panics if it says none.
    #[track_caller]
    pub fn next(&self) -> String {
        self.next_for(PATIENCE)
    }

    /// The next line the child says, within `within`; panics if it says none.
    #[track_caller]
    pub fn next_for(&self, within: Duration) -> String {
        match self.recv(within) {
            Ok(line) => line,
            Err(Silence::Timeout) => panic!(
                "child {} ({}) said nothing for {within:?}",
                self.pid(),
                self.role
            ),
            Err(Silence::Ended) => panic!(
                "child {} ({}) ended without saying what we waited for",
                self.pid(),
                self.role
            ),
        }
    }

    /// The next line, if the child says one within `wait` (for "nothing must happen" checks).
    pub fn next_within(&self, wait: Duration) -> Option<String> {
        self.recv(wait).ok()
    }

    /// Waits (within [`PATIENCE`]) for the child to say exactly `expected`; panics otherwise.
    #[track_caller]
    pub fn expect(&self, expected: &str) {
        let line = self.next();
        assert_eq!(
            line,
            expected,
            "child {} ({}) said something else",
            self.pid(),
            self.role
        );
    }

    /// Sends the child one line (nothing if its input is closed).
    pub fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Closes the child's input: a child waiting in [`hear`] gets an empty line.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL, and reap it (so that it is gone, not a zombie, when this returns).
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Closes its input and waits for it to end, at most `wait`; `None` if it still ran (then
    /// it is killed).
    pub fn finish(&mut self, wait: Duration) -> Option<ExitStatus> {
        self.close_stdin();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Some(status);
            }
            if start.elapsed() > wait {
                self.kill();
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to end, within `wait`; panics (after killing it) if it does not.
    #[track_caller]
    pub fn wait_within(&mut self, wait: Duration) -> ExitStatus {
        match self.finish(wait) {
            Some(status) => status,
            None => panic!(
                "child {} ({}) did not end within {wait:?}",
                self.pid(),
                self.role
            ),
        }
    }

    /// Waits for the child to end, within [`PATIENCE`]; panics unless it succeeded.
    #[track_caller]
    pub fn wait_success(&mut self) {
        let status = self.wait_within(PATIENCE);
        assert!(
            status.success(),
            "child {} ({}) failed: {status}; its output is above",
            self.pid(),
            self.role
        );
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            self.kill();
        }
    }
}
