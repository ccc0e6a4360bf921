//! Helpers of the multi-process tests: unique names, scratch folders, child processes that are
//! this test binary run again for one test with a role, and the checked critical section.
#![allow(dead_code, unreachable_pub)]

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{ConcreteLock, SimpleLockResult};
use simplelock_sema::SemaphoreLock;

/// The environment variable that tells a re-run test binary which role to play.
pub const ROLE: &str = "SIMPLELOCK_SEMA_TEST_ROLE";
/// Lines a child prints for its parent start with this; everything else is libtest's chatter.
const TAG: &str = "@@ ";
/// The longest a parent waits for something a child must do before calling the test stuck.
pub const GUARD: Duration = Duration::from_secs(20);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A lock name no other test (of this run, or of another run at the same time) uses.
pub fn unique_name(tag: &str) -> String {
    format!(
        "/slt-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the shared memory object of lock `name` lives.
pub fn object_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/sl.{}", name.trim_start_matches('/')))
}

/// Removes the locks it was given when dropped, also when the test fails.
#[derive(Default)]
pub struct Cleanup(Vec<String>);

impl Cleanup {
    pub fn new(names: &[&str]) -> Cleanup {
        Cleanup(names.iter().map(|n| n.to_string()).collect())
    }
    pub fn add(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = remove_within(name, Duration::from_secs(5));
        }
    }
}

/// Removes lock `name`, waiting at most `timeout` for it.
pub fn remove_within(name: &str, timeout: Duration) -> SimpleLockResult<()> {
    SemaphoreLock::remove_within(name, timeout).map(|_| ())
}

/// Deletes a file on drop (for objects the crate refuses to remove).
pub struct RemoveFile(pub PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A scratch folder, deleted on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(unique_name(tag).trim_start_matches('/'));
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The role this process plays, if it is a child started by [`Child::spawn`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// An environment variable the parent passed to this child.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("the parent did not pass {key}"))
}

/// In a child: tell the parent something (one line).
pub fn say(message: &str) {
    let mut out = io::stdout().lock();
    writeln!(out, "{TAG}{message}").unwrap();
    out.flush().unwrap();
}

/// In a child: wait for a line from the parent.
pub fn hear() -> String {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// A child process: this test binary, running only test `test`, in role `role`.
pub struct Child {
    pub process: std::process::Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Child {
    pub fn spawn(test: &str, role: &str, envs: &[(&str, &str)]) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut process = command.spawn().unwrap();
        let stdout = process.stdout.take().unwrap();
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
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The next line the child says, within `guard`.
    pub fn next(&self, guard: Duration) -> String {
        match self.lines.recv_timeout(guard) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing for {guard:?}", self.pid())
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "child {} ended without saying what we waited for",
                    self.pid()
                )
            }
        }
    }

    /// The next line, if the child says one within `wait`.
    pub fn next_within(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Waits for the child to say exactly `expected`.
    pub fn expect(&self, expected: &str) {
        let line = self.next(GUARD);
        assert_eq!(line, expected, "child {} said something else", self.pid());
    }

    /// Sends one line to the child.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (a child blocked in [`hear`] gets an empty line).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
    }

    /// Waits for the child to end, within [`GUARD`]; panics unless it succeeded.
    pub fn wait_success(&mut self) {
        let status = self.wait_within(GUARD);
        assert!(status.success(), "child {} failed: {status}", self.pid());
    }

    /// Waits for the child to end, within `guard`.
    pub fn wait_within(&mut self, guard: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > guard {
                self.kill();
                panic!("child {} did not end within {guard:?}", self.pid());
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// The shared state of a checked critical section, in a folder: a marker file that exists
/// while someone is inside (created with `create_new`, so a second entrant fails to create it)
/// and a counter updated by a deliberately racy read-modify-write.
pub struct Section {
    pub marker: PathBuf,
    pub counter: PathBuf,
    pub overlaps: PathBuf,
    pub repairs: PathBuf,
}

impl Section {
    pub fn new(dir: &Path) -> Section {
        let section = Section {
            marker: dir.join("inside"),
            counter: dir.join("counter"),
            overlaps: dir.join("overlaps"),
            repairs: dir.join("repairs"),
        };
        if !section.counter.exists() {
            fs::write(&section.counter, "0").unwrap();
        }
        section
    }

    /// Enters (the lock must be held): an overlap is recorded if someone else is inside.
    /// `repair`: the previous holder died, possibly inside; its marker may be left over.
    pub fn enter(&self, repair: bool) {
        if repair {
            if let Ok(owner) = fs::read_to_string(&self.marker) {
                // The marker must belong to a process that is gone, not to a live one.
                let pid: u32 = owner.trim().parse().unwrap_or(0);
                if pid != 0 && process_is_running(pid) {
                    self.record(
                        &self.overlaps,
                        &format!("repairing live pid {pid}'s marker"),
                    );
                }
                let _ = fs::remove_file(&self.marker);
            }
            self.record(&self.repairs, &std::process::id().to_string());
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.marker)
        {
            Ok(mut file) => write!(file, "{}", std::process::id()).unwrap(),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let other = fs::read_to_string(&self.marker).unwrap_or_default();
                self.record(&self.overlaps, &format!("inside together with pid {other}"));
            }
            Err(err) => panic!("creating the marker: {err}"),
        }
    }

    /// The racy increment: read, yield, write.
    pub fn increment(&self) {
        let seen: u64 = fs::read_to_string(&self.counter)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        thread::yield_now();
        fs::write(&self.counter, (seen + 1).to_string()).unwrap();
    }

    /// Leaves (before releasing the lock).
    pub fn leave(&self) {
        let _ = fs::remove_file(&self.marker);
    }

    pub fn count(&self) -> u64 {
        fs::read_to_string(&self.counter)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn record(&self, file: &Path, line: &str) {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn process_is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => {
            let state = text
                .rfind(')')
                .and_then(|i| text[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// The state letter of `pid` in `/proc/PID/stat`.
pub fn process_state(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    text[close + 1..]
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// Waits until `condition` holds, within [`GUARD`]; panics naming `what` if it does not.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < GUARD,
            "{what} did not happen within {GUARD:?}"
        );
        thread::sleep(Duration::from_micros(200));
    }
}

/// Acquires `lock` within [`GUARD`] (a hang guard, not a timing assertion).
pub fn lock_within_guard(lock: &mut SemaphoreLock) {
    lock.timed_lock(GUARD)
        .unwrap_or_else(|e| panic!("lock not acquired within {GUARD:?}: {e}"));
}

/// Ends the test process if not dropped within [`GUARD`]: for a call that would block the test
/// thread forever if the lock were broken (a panic could not end it).
pub struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    pub fn new(what: &'static str) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                if start.elapsed() > GUARD {
                    eprintln!("{what} did not return within {GUARD:?}: stuck");
                    std::process::abort();
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
