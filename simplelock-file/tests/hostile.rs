//! Hostile input and folders: symbolic links, folders, FIFOs, missing folders, bad paths,
//! someone's data file, read-only files, files and folders of another user.
//!
//! Cases that need a second user run a child process as `nobody` (uid 65534) when the tests
//! run as root; otherwise they run in this process, as the unprivileged user we are.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]

mod common;

use std::fs::{self, Permissions};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use common::{
    Child, LOCK_PATH, PATIENCE, command, hear, is_root, nobody_can_reach, role, say, scratch,
};
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};
use simplelock_file::FileLock;

const NOBODY: u32 = 65534;

fn reason(err: &SimpleLockError) -> &str {
    match err {
        SimpleLockError::InvalidName { reason, .. } => reason,
        other => panic!("expected InvalidName, got {other:?}"),
    }
}

/// What a file looks like from outside: its bytes, mode and modification time.
fn snapshot(path: &Path) -> (Vec<u8>, u32, std::time::SystemTime) {
    let meta = fs::symlink_metadata(path).unwrap();
    (
        fs::read(path).unwrap(),
        meta.permissions().mode(),
        meta.modified().unwrap(),
    )
}

#[test]
fn bad_paths_are_refused_with_the_rule_and_the_path() {
    let dir = scratch("bad_paths");
    let file = dir.join("plain");
    fs::write(&file, "x").unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::new(), "empty"),
        (PathBuf::from("a\0b.lock"), "NUL"),
        (dir.clone(), "folder"),
        (dir.join("missing/x.lock"), "does not exist"),
        (file.join("x.lock"), "not a folder"),
        (dir.join(format!("{}.lock", "n".repeat(300))), "too long"),
    ];
    for (path, rule) in cases {
        let err = FileLock::at_path(&path).unwrap_err();
        assert!(reason(&err).contains(rule), "{path:?}: {err}");
        assert_eq!(err.name(), Some(path.display().to_string().as_str()));
        if !path.as_os_str().is_empty() && !path.to_string_lossy().contains('\0') {
            assert!(err.os_error().is_some(), "{path:?}: the OS error is kept");
        }
    }
    assert!(!dir.join("missing").exists());
}

#[test]
fn a_symbolic_link_at_the_lock_path_is_refused_and_its_target_untouched() {
    let dir = scratch("symlink");
    let precious = dir.join("precious");
    fs::write(&precious, "do not truncate me").unwrap();
    fs::set_permissions(&precious, Permissions::from_mode(0o600)).unwrap();
    let before = snapshot(&precious);
    let planted = dir.join("planted.lock");
    symlink(&precious, &planted).unwrap();
    for shared in [false, true] {
        let result = if shared {
            FileLock::options().with_shared(true).at_path(&planted)
        } else {
            FileLock::at_path(&planted)
        };
        let err = result.unwrap_err();
        assert!(reason(&err).contains("symbolic link"), "{err}");
        assert!(err.to_string().contains("planted.lock"), "{err}");
    }
    assert_eq!(snapshot(&precious), before, "the link's target was touched");

    // A dangling link must not make us create its target.
    let target = dir.join("would-be-created");
    let dangling = dir.join("dangling.lock");
    symlink(&target, &dangling).unwrap();
    assert!(FileLock::at_path(&dangling).is_err());
    assert!(!target.exists(), "the dangling link's target was created");
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = scratch("fifo");
    let fifo = dir.join("fifo.lock");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = mpsc::channel();
    let path = fifo.clone();
    thread::spawn(move || tx.send(FileLock::at_path(path).map(|_| ())));
    let result = rx.recv_timeout(PATIENCE).expect("opening a FIFO hung");
    let err = result.unwrap_err();
    assert!(reason(&err).contains("not a regular file"), "{err}");
}

#[test]
fn someone_elses_data_file_used_as_a_lock_is_never_modified() {
    let dir = scratch("foreign");
    let data = dir.join("data.csv");
    fs::write(&data, "id,name\n1,alice\n2,bob\n").unwrap();
    let before = snapshot(&data);
    let mut lock = FileLock::at_path(&data).unwrap();
    let mut reader = FileLock::options()
        .with_shared(true)
        .at_path(&data)
        .unwrap();
    let mut other = FileLock::at_path(&data).unwrap();
    for round in 0..3 {
        match round {
            0 => lock.try_lock().unwrap(),
            1 => lock.hang_lock().unwrap(),
            _ => lock.timed_lock(PATIENCE).unwrap(),
        }
        assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
        // Still a working lock: the others are excluded and see the holder.
        assert!(matches!(
            other.try_lock(),
            Err(SimpleLockError::AlreadyLocked { .. })
        ));
        let holder = other.holder().unwrap().unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.since, None, "no record to take it from");
        lock.try_unlock().unwrap();
        reader.try_lock().unwrap();
        assert_eq!(reader.previous_holder(), PreviousHolder::Unknown);
        reader.try_unlock().unwrap();
    }
    drop((lock, reader, other));
    assert_eq!(snapshot(&data), before, "the data file changed");
}

// ---------------------------------------------------------------------------------------------
// Permissions.

/// Read-only access: the lock works, `is_read_only`, the file is never written, the previous
/// holder is unknown. Holds the lock until a line arrives on stdin when `wait` is set.
fn read_only_case(path: &Path, wait: bool) {
    let before = fs::read(path).unwrap();
    let mut lock = common::lock_file(path).unwrap();
    assert!(lock.is_read_only());
    lock.try_lock().unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
    assert_eq!(lock.status().unwrap(), LockStatus::Mine);
    if wait {
        say("locked");
        hear();
    }
    lock.try_unlock().unwrap();
    // A shared handle can still read the record.
    let mut reader = common::lock_file_shared(path).unwrap();
    reader.try_lock().unwrap();
    assert_eq!(reader.previous_holder(), PreviousHolder::Released);
    reader.try_unlock().unwrap();
    assert_eq!(fs::read(path).unwrap(), before, "a read-only holder wrote");
}

fn denied_case(path: &Path) {
    let err = common::lock_file(path).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::PermissionDenied { .. }),
        "{path:?}: {err:?}"
    );
    assert_eq!(err.name(), Some(path.display().to_string().as_str()));
    assert!(err.to_string().contains(&path.display().to_string()));
    assert!(err.os_error().is_some(), "the OS error is kept");
}

#[test]
fn a_file_we_may_only_read_still_locks_and_is_never_written() {
    const TEST: &str = "a_file_we_may_only_read_still_locks_and_is_never_written";
    if role().as_deref() == Some("read-only") {
        return read_only_case(&PathBuf::from(std::env::var_os(LOCK_PATH).unwrap()), true);
    }
    let dir = scratch("read_only");
    let path = dir.join("ro.lock");
    // A managed lock file, released by its owner.
    let mut owner = common::lock_file(&path).unwrap();
    owner.try_lock().unwrap();
    owner.try_unlock().unwrap();
    if !is_root() {
        fs::set_permissions(&path, Permissions::from_mode(0o444)).unwrap();
        read_only_case(&path, false);
        return;
    }
    if !nobody_can_reach() {
        return;
    }
    // Root may write anything: the read-only user is `nobody`, and the file root's (0644).
    let mut other_user = Child::spawn(
        command(TEST, "read-only")
            .env(LOCK_PATH, &path)
            .uid(NOBODY)
            .gid(NOBODY),
    );
    assert_eq!(other_user.next(), "locked");
    // The two users exclude each other.
    match owner.try_lock() {
        Err(SimpleLockError::AlreadyLocked { holder, .. }) => {
            assert_eq!(holder.map(|h| h.pid), Some(other_user.pid()));
        }
        other => panic!("root got the lock while nobody held it: {other:?}"),
    }
    other_user.send("");
    other_user.wait_success();
    owner.try_lock().unwrap();
    // The read-only holder left no trace: the record still says root released it.
    assert_eq!(owner.previous_holder(), PreviousHolder::Released);
    owner.try_unlock().unwrap();
}

#[test]
fn files_and_folders_we_may_not_use_give_permission_denied() {
    const TEST: &str = "files_and_folders_we_may_not_use_give_permission_denied";
    if role().as_deref() == Some("denied") {
        let paths = std::env::var(LOCK_PATH).unwrap();
        for path in paths.split('\n') {
            denied_case(Path::new(path));
        }
        return;
    }
    let dir = scratch("denied");
    let closed = dir.join("closed");
    fs::create_dir(&closed).unwrap();
    let unreadable = dir.join("unreadable.lock");
    fs::write(&unreadable, "").unwrap();
    fs::set_permissions(&unreadable, Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&closed, Permissions::from_mode(0o555)).unwrap();
    let cases = [closed.join("new.lock"), unreadable];
    if is_root() && !nobody_can_reach() {
        return;
    }
    if is_root() {
        let paths: Vec<String> = cases.iter().map(|p| p.display().to_string()).collect();
        let mut other_user = Child::spawn(
            command(TEST, "denied")
                .env(LOCK_PATH, paths.join("\n"))
                .uid(NOBODY)
                .gid(NOBODY),
        );
        other_user.wait_success();
    } else {
        for path in &cases {
            denied_case(path);
        }
    }
    assert!(!closed.join("new.lock").exists());
    fs::set_permissions(&closed, Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn another_users_lock_file_in_a_shared_folder_is_usable() {
    const TEST: &str = "another_users_lock_file_in_a_shared_folder_is_usable";
    if role().as_deref() == Some("shared-folder") {
        let path = PathBuf::from(std::env::var_os(LOCK_PATH).unwrap());
        let mut lock = common::lock_file(&path).unwrap();
        lock.try_lock().unwrap();
        say(&format!(
            "locked {:?} read_only={}",
            lock.previous_holder(),
            lock.is_read_only()
        ));
        lock.try_unlock().unwrap();
        return;
    }
    if !is_root() {
        eprintln!("note: not root, another user cannot be simulated: skipped");
        return;
    }
    if !nobody_can_reach() {
        return;
    }
    // A sticky, world-writable folder like /tmp, and a lock file of root's in it, writable by
    // all (0666): with fs.protected_regular=1 nobody's O_CREAT is refused there, and the open
    // is retried without it; with 0644 nobody falls back to read-only.
    let dir = scratch("shared_folder");
    fs::set_permissions(&dir, Permissions::from_mode(0o1777)).unwrap();
    for (mode, expected) in [
        (0o666, "Released read_only=false"),
        (0o644, "Unknown read_only=true"),
    ] {
        let path = dir.join(format!("root-{mode:o}.lock"));
        let mut root = common::lock_file(&path).unwrap();
        root.try_lock().unwrap();
        root.try_unlock().unwrap();
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        let mut other_user = Child::spawn(
            command(TEST, "shared-folder")
                .env(LOCK_PATH, &path)
                .uid(NOBODY)
                .gid(NOBODY),
        );
        assert_eq!(other_user.next(), format!("locked {expected}"));
        other_user.wait_success();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            mode
        );
    }
}

#[test]
fn lock_files_are_created_with_0644_less_the_umask_and_no_more() {
    let dir = scratch("mode");
    let path = dir.join("new.lock");
    let _lock = common::lock_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o644, 0, "mode {mode:o} grants more than 0644");
    assert!(
        mode & 0o600 == 0o600 || mode & 0o400 == 0o400,
        "mode {mode:o}"
    );
    let _again = common::lock_file(&path).unwrap();
    assert!(
        fs::read(&path).unwrap().is_empty(),
        "opening writes nothing"
    );
}
