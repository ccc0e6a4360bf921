//! What FileLock promises on Windows, with real processes (CI runs these under Wine, see
//! `cargo xtask windows`): exclusion between processes, a holder killed with
//! `TerminateProcess` (std's `Child::kill`), the holder's pid and the death read from the
//! record while the lock is held (the locked byte does not cover it), a data file that stays
//! readable and writable by others while locked, a lock file nobody can delete while it is
//! open, and named locks in `%LOCALAPPDATA%`. The conformance suite (tests/conformance.rs)
//! runs on Windows too; the other test files are Unix programs (fork, signals, modes, users).
#![cfg(windows)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use simplelock_core::{ConcreteLock, PreviousHolder, SimpleLockError};
use simplelock_file::FileLock;

/// Tells a re-run test binary which part to play.
const ROLE: &str = "SIMPLELOCK_WINDOWS_TEST_ROLE";
/// The folder a child works in.
const DIR: &str = "SIMPLELOCK_WINDOWS_TEST_DIR";

/// How long a waiting step may take before the test calls it stuck (a hang guard, not a
/// timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "simplelock-windows-tests-{}-{test}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child: this test binary running `test` alone in `role`, with `dir` to work in. Its
/// lines that start with `@` are messages to the parent. Dropping it kills it.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(test: &str, role: &str, dir: &Path) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .env(DIR, dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next message, without the `@`.
    fn next(&mut self) -> String {
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

    fn finish(mut self, what: &str) {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.out, &mut rest);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{what} failed: {status}\n{rest}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn say(message: &str) {
    println!("@{message}");
    std::io::stdout().flush().unwrap();
}

fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR).expect("a child is given its folder"))
}

/// A lock file that keeps the holder record: a named lock in `dir`.
fn lock_in(dir: &Path) -> FileLock {
    FileLock::options().with_folder(dir).named("lock").unwrap()
}

#[test]
fn processes_exclude_each_other_on_a_counter() {
    const PROCESSES: usize = 4;
    const ROUNDS: u32 = 40;
    const TEST: &str = "processes_exclude_each_other_on_a_counter";
    if role().as_deref() == Some("counter") {
        let dir = child_dir();
        let mut lock = lock_in(&dir);
        let counter = dir.join("counter");
        for _ in 0..ROUNDS {
            lock.timed_lock(PATIENCE).unwrap();
            // Read, yield, write: any overlap of two holders loses an increment.
            let seen: u32 = fs::read_to_string(&counter)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            std::thread::yield_now();
            fs::write(&counter, format!("{}\n", seen + 1)).unwrap();
            lock.try_unlock().unwrap();
        }
        return;
    }
    let dir = scratch(TEST);
    fs::write(dir.join("counter"), "0\n").unwrap();
    let children: Vec<Proc> = (0..PROCESSES)
        .map(|_| Proc::spawn(TEST, "counter", &dir))
        .collect();
    for child in children {
        child.finish("a counting process");
    }
    let total: u32 = fs::read_to_string(dir.join("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, PROCESSES as u32 * ROUNDS, "increments were lost");
}

#[test]
fn a_holder_killed_with_terminate_process_releases_and_is_reported_dead() {
    const TEST: &str = "a_holder_killed_with_terminate_process_releases_and_is_reported_dead";
    if role().as_deref() == Some("holder") {
        let mut lock = lock_in(&child_dir());
        lock.try_lock().unwrap();
        say("held");
        std::thread::sleep(PATIENCE * 2);
        unreachable!("the parent kills this process");
    }
    let dir = scratch(TEST);
    let mut holder = Proc::spawn(TEST, "holder", &dir);
    assert_eq!(holder.next(), "held");
    let pid = holder.child.id();
    let mut lock = lock_in(&dir);
    // The record is read while the holder has the lock: the locked byte does not cover it.
    match lock.try_lock() {
        Err(SimpleLockError::AlreadyLocked {
            holder: Some(who), ..
        }) => assert_eq!(who.pid, pid, "the holder named is not the holding process"),
        other => panic!("try_lock while another process holds the lock: {other:?}"),
    }
    assert_eq!(lock.holder().unwrap().map(|h| h.pid), Some(pid));
    // std's Child::kill is TerminateProcess on Windows.
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    lock.timed_lock(PATIENCE).unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Died);
    lock.try_unlock().unwrap();
    let mut next = lock_in(&dir);
    next.try_lock().unwrap();
    assert_eq!(next.previous_holder(), PreviousHolder::Released);
}

#[test]
fn a_locked_data_file_stays_readable_and_writable_by_others() {
    const TEST: &str = "a_locked_data_file_stays_readable_and_writable_by_others";
    if role().as_deref() == Some("holder") {
        let mut lock = FileLock::at_path(child_dir().join("data.txt")).unwrap();
        lock.try_lock().unwrap();
        say("held");
        std::thread::sleep(PATIENCE * 2);
        unreachable!("the parent kills this process");
    }
    let dir = scratch(TEST);
    let data = dir.join("data.txt");
    fs::write(&data, "the data\n").unwrap();
    let mut holder = Proc::spawn(TEST, "holder", &dir);
    // The child holds the lock until it is killed (when `holder` is dropped).
    assert_eq!(holder.next(), "held");
    assert_eq!(fs::read_to_string(&data).unwrap(), "the data\n");
    fs::write(&data, "changed\n").unwrap();
    assert_eq!(fs::read_to_string(&data).unwrap(), "changed\n");
    let mut other = FileLock::at_path(&data).unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
}

#[test]
fn the_lock_file_cannot_be_deleted_while_a_handle_is_open() {
    let dir = scratch("the_lock_file_cannot_be_deleted_while_a_handle_is_open");
    let mut lock = lock_in(&dir);
    let path = lock.path();
    lock.try_lock().unwrap();
    let err = fs::remove_file(&path).unwrap_err();
    // ERROR_SHARING_VIOLATION: the handle does not share delete access.
    assert_eq!(err.raw_os_error(), Some(32), "{err}");
    assert!(fs::rename(&path, dir.join("moved.lock")).is_err());
    lock.try_unlock().unwrap();
    drop(lock);
    fs::remove_file(&path).unwrap();
}

#[test]
fn named_locks_live_in_local_app_data() {
    let local = std::env::var_os("LOCALAPPDATA").expect("Windows sets LOCALAPPDATA");
    // SIMPLELOCK_DIR would choose another folder: this test is about the default.
    if std::env::var_os("SIMPLELOCK_DIR").is_some() {
        panic!("unset SIMPLELOCK_DIR to run this test");
    }
    let folder = Path::new(&local).join("simplelock");
    assert_eq!(simplelock_file::lock_dir().unwrap(), folder);
    let name = format!("windows-test-{}", std::process::id());
    let mut lock = FileLock::named(&name).unwrap();
    assert_eq!(lock.path(), folder.join(format!("{name}.lock")));
    lock.try_lock().unwrap();
    lock.try_unlock().unwrap();
    drop(lock);
    fs::remove_file(folder.join(format!("{name}.lock"))).unwrap();
    assert!(matches!(
        FileLock::named("a/b"),
        Err(SimpleLockError::InvalidName { .. })
    ));
    assert!(matches!(
        FileLock::named(r"a\b"),
        Err(SimpleLockError::InvalidName { .. })
    ));
}
