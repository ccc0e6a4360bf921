//! Helpers shared by the test binaries: per-run scratch folders and child processes that are
//! the test binary itself, re-run for one test in a given role.
#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::fs::{self, DirBuilder, Permissions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Tells a re-run test binary which part to play; unset in a normal run.
pub(crate) const ROLE: &str = "SIMPLELOCK_FILE_TEST_ROLE";
/// The lock file a child works on.
pub(crate) const LOCK_PATH: &str = "SIMPLELOCK_FILE_TEST_LOCK";
/// A folder a child works in.
pub(crate) const WORK_DIR: &str = "SIMPLELOCK_FILE_TEST_DIR";

/// How long a test waits for something that must happen before it calls the code stuck: a hang
/// guard, not a timing assertion.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The role of this process, if it is a child started by [`child`].
pub(crate) fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A folder for this test process, world-readable so that a child running as another user can
/// reach files in it. Folders of earlier runs whose process is gone are removed.
pub(crate) fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let temp = std::env::temp_dir();
        const PREFIX: &str = "simplelock-file-tests-";
        if let Ok(entries) = fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = temp.join(format!("{PREFIX}{}", std::process::id()));
        DirBuilder::new().recursive(true).create(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        dir
    })
}

/// An empty folder for one test (mode 0755).
pub(crate) fn scratch(test: &str) -> PathBuf {
    let dir = run_dir().join(test);
    let _ = fs::remove_dir_all(&dir);
    DirBuilder::new().mode(0o755).create(&dir).unwrap();
    fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    dir
}

/// This test binary, to run the test `test` alone, in `role`.
pub(crate) fn child(test: &str, role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// A running child. Lines it prints that start with `@` are its messages to the parent
/// (libtest prints the rest). Dropping it kills the child if it still runs, so that a failed
/// test leaves no process behind.
pub(crate) struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `cmd` with its standard output piped to us.
    pub(crate) fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The next message, without the `@`; panics if the child closed its output first.
    pub(crate) fn next(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.out.read_line(&mut line).unwrap();
            assert!(read > 0, "the child ended without saying what it did");
            if let Some(message) = line.trim_end().strip_prefix('@') {
                return message.to_owned();
            }
        }
    }

    /// Reads the rest of its output (so it never writes to a closed pipe) and waits for it to
    /// end successfully.
    pub(crate) fn finish(mut self, what: &str) {
        let mut rest = String::new();
        let _ = self.out.read_to_string(&mut rest);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{what} failed: {status}\n{rest}");
    }

    /// SIGKILL, and reap it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Waits until `done()` or [`PATIENCE`] ran out; panics with `what` in the latter case.
pub(crate) fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether this process runs as root (then tests that need another user run a child as
/// `nobody`).
pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Whether a child running as `nobody` can run this test binary and reach [`run_dir`]: every
/// folder above them must be searchable by others (a checkout under `/root` is not).
pub(crate) fn nobody_can_reach() -> bool {
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe().unwrap();
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

/// A handle on the lock file at `path` (a name ending in `.lock`) as a file of a lock folder,
/// the kind that keeps the holder record ([`FileLock::named_in`]); `FileLock::new` never writes
/// into a file.
pub(crate) fn lock_file(
    path: impl AsRef<Path>,
) -> simplelock_core::SimpleLockResult<simplelock_file::FileLock> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(".lock"))
        .expect("a lock file's name ends in .lock");
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    simplelock_file::FileLock::named_in(dir, name)
}

/// [`lock_file`], taken shared.
pub(crate) fn lock_file_shared(
    path: impl AsRef<Path>,
) -> simplelock_core::SimpleLockResult<simplelock_file::FileLock> {
    lock_file(path).map(simplelock_file::FileLock::shared)
}
