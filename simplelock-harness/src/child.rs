//! What the backends' multi-process tests share: child processes, scratch folders, hang guards,
//! another user, and a checked critical section. Each backend's `tests/common/mod.rs` re-exports
//! this module and adds only what is its own (lock names, lock files).
//!
//! The child-process protocol itself — the test binary re-run for one test with its role in
//! [`ROLE`], messages in lines tagged [`TAG`], a [`Child`] that reads them with a deadline and
//! is SIGKILLed when dropped — is `simplelock_core::conformance::child`, re-exported here. It is
//! written there, once, because the core's conformance suite needs it too and the core, which
//! has no dependencies, cannot depend on this crate; the other way round is free. (Two copies,
//! one here and one in the core, is how the protocol drifted before: `@` and 60 s in one crate's
//! tests, `@@` and 20 s in the other's.)

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use simplelock_core::conformance::child::{
    Child, PATIENCE, ROLE, Silence, TAG, command, hear, remove_stale_dirs, role, say,
};

/// An environment variable the parent passed to this child; panics naming it if absent.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("the parent did not pass {key}"))
}

/// Waits until `done()`, within [`PATIENCE`]; panics naming `what` otherwise (a hang guard, not
/// a timing assertion).
#[track_caller]
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < PATIENCE,
            "gave up waiting within {PATIENCE:?}: {what}"
        );
        thread::sleep(Duration::from_micros(200));
    }
}

/// A folder for this test process (`$TMPDIR/simplelock-tests-PID`), world-readable so that a
/// child running as another user can reach files in it. Folders of earlier runs whose process
/// is gone are removed.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        const PREFIX: &str = "simplelock-tests-";
        remove_stale_dirs(PREFIX);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
        DirBuilder::new()
            .recursive(true)
            .create(&dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        fs::set_permissions(&dir, Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("making {} readable: {e}", dir.display()));
        dir
    })
}

/// An empty folder `name` in [`run_dir`] (mode 0755), for one test; emptied if it existed.
pub fn scratch(name: &str) -> PathBuf {
    let dir = run_dir().join(name.trim_start_matches('/'));
    let _ = fs::remove_dir_all(&dir);
    DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    fs::set_permissions(&dir, Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("making {} readable: {e}", dir.display()));
    dir
}

/// A [`scratch`] folder that is removed when dropped, also when the test fails.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty folder for `tag` in [`run_dir`], named apart from every other of this run.
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Scratch(scratch(&format!(
            "{}-{}",
            tag.trim_start_matches('/'),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deletes a file when dropped (for objects a backend refuses to remove).
#[derive(Debug)]
pub struct RemoveFile(pub PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Whether this process runs as root (then tests that need another user run a child as
/// `nobody`).
pub fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether a child running as `nobody` can run this test binary and reach [`run_dir`]: every
/// folder above them must be searchable by others (a checkout under `/root` is not). Says so on
/// standard error when not, since the caller then skips its other-user cases.
pub fn nobody_can_reach() -> bool {
    let exe = std::env::current_exe().expect("the test binary");
    let searchable = |path: &Path| {
        path.ancestors()
            .skip(1)
            .all(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0))
    };
    let runnable = fs::metadata(&exe).is_ok_and(|m| m.mode() & 0o005 == 0o005);
    let reachable = runnable && searchable(&exe) && searchable(&run_dir().join("x"));
    if !reachable {
        eprintln!(
            "note: `nobody` cannot reach {} or {}: the other-user cases are skipped",
            exe.display(),
            run_dir().display()
        );
    }
    reachable
}

/// The fields of `/proc/PID/stat` after the command name — the state (field 3 in proc(5)'s
/// numbering) first — if process `pid` exists. The harness's one parser of that file.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may itself hold spaces and parentheses.
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The state letter of process `pid` (`R`, `S`, `Z`, ...), if it exists.
pub fn process_state(pid: u32) -> Option<String> {
    stat_fields(pid)?.into_iter().next()
}

/// Whether process `pid` runs (exists and is not a zombie).
pub fn process_is_running(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| !matches!(state.as_str(), "Z" | "X"))
}

/// Ends the test process if not dropped within [`PATIENCE`]: for a call that would block the
/// test thread forever if the lock were broken (a panic could not end it).
#[derive(Debug)]
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    /// Starts watching; `what` names the call in the message.
    pub fn new(what: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                if start.elapsed() > PATIENCE {
                    eprintln!("{what} did not return within {PATIENCE:?}: stuck");
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

/// The shared state of a checked critical section, in a folder: a marker file that exists
/// while someone is inside (created with `create_new`, so a second entrant fails to create it)
/// and a counter updated by a deliberately racy read-modify-write.
#[derive(Debug)]
pub struct Section {
    /// Exists while someone is inside; holds its pid.
    pub marker: PathBuf,
    /// The racy counter.
    pub counter: PathBuf,
    /// One line per overlap seen.
    pub overlaps: PathBuf,
    /// One line per repair (an entry after a holder died).
    pub repairs: PathBuf,
}

impl Section {
    /// The section kept in `dir` (the counter starts at 0).
    pub fn new(dir: &Path) -> Section {
        let section = Section {
            marker: dir.join("inside"),
            counter: dir.join("counter"),
            overlaps: dir.join("overlaps"),
            repairs: dir.join("repairs"),
        };
        if !section.counter.exists() {
            fs::write(&section.counter, "0").expect("creating the counter");
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
            Ok(mut file) => write!(file, "{}", std::process::id()).expect("writing the marker"),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let other = fs::read_to_string(&self.marker).unwrap_or_default();
                self.record(&self.overlaps, &format!("inside together with pid {other}"));
            }
            Err(err) => panic!("creating the marker: {err}"),
        }
    }

    /// The racy increment: read, yield, write.
    pub fn increment(&self) {
        let seen = self.count();
        thread::yield_now();
        fs::write(&self.counter, (seen + 1).to_string()).expect("writing the counter");
    }

    /// Leaves (before releasing the lock).
    pub fn leave(&self) {
        let _ = fs::remove_file(&self.marker);
    }

    /// The counter's value.
    pub fn count(&self) -> u64 {
        fs::read_to_string(&self.counter)
            .expect("reading the counter")
            .trim()
            .parse()
            .expect("the counter holds a number")
    }

    /// The lines of one of the section's record files (empty if absent).
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
            .expect("opening a record file");
        writeln!(file, "{line}").expect("writing a record file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_reaped_child_does_not() {
        assert!(process_is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_is_running(pid));
    }

    /// The role of a child and its tagged lines: `role()` is this crate's test binary
    /// re-running only this test.
    #[test]
    fn a_child_says_what_it_heard() {
        const TEST: &str = "child::tests::a_child_says_what_it_heard";
        if role().as_deref() == Some("echo") {
            say("ready");
            let line = hear();
            say(&format!("heard {line}"));
            println!("untagged lines are not messages");
            return;
        }
        let mut echo = Child::spawn(&mut command(TEST, "echo"));
        echo.expect("ready");
        echo.send("hello");
        assert_eq!(echo.next(), "heard hello");
        echo.wait_success();
        // The reader thread sees the end of the stream a moment after the exit: wait for it
        // (the bound only ends a failure).
        assert_eq!(echo.recv(PATIENCE), Err(Silence::Ended));
    }

    #[test]
    fn a_dropped_child_is_killed() {
        const TEST: &str = "child::tests::a_dropped_child_is_killed";
        if role().as_deref() == Some("sleeper") {
            say("up");
            thread::sleep(PATIENCE);
            return;
        }
        let sleeper = Child::spawn(&mut command(TEST, "sleeper"));
        sleeper.expect("up");
        let pid = sleeper.pid();
        drop(sleeper);
        assert!(!process_is_running(pid), "pid {pid} still runs");
    }
}
