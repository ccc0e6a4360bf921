//! FilePermits with one permit is a lock: it passes the conformance suite of simplelock-core,
//! the multi-process and SIGKILL checks included. (N permits across processes, with holders
//! killed, are tested in the facade's `tests/permits.rs`, for every backend at once.)
//! FilePermits uses OFD locks: Linux only.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use simplelock_core::SimpleLockError;
use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::run_id;
use simplelock_file::FilePermits;

/// The folder of this run's semaphore files: the same in the test process and its children.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("simplelock-file-permits-{}", run_id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn open(key: &str) -> SimpleLockResult<FilePermits> {
    FilePermits::at_path(run_dir().join(format!("{key}.permits")), 1)
}

mod conformance {
    use super::*;

    simplelock_core::conformance_tests!(
        open,
        across_processes,
        crash_safe,
        reports_deaths,
        holder_pid,
    );
}

#[test]
fn status_and_holders_follow_the_permits() {
    let path = run_dir().join("status.permits");
    simplelock_core::conformance::permits::status_and_holders(
        |n| FilePermits::at_path(&path, n),
        true,
    );
}

#[test]
fn disagreeing_permits_are_refused() {
    let path = run_dir().join("disagree.permits");
    simplelock_core::conformance::permits::disagreeing_permits_are_refused(|n| {
        FilePermits::at_path(&path, n)
    });
}

#[test]
fn a_thread_that_holds_every_permit_would_deadlock() {
    let path = run_dir().join("deadlock.permits");
    simplelock_core::conformance::permits::holding_every_permit_would_deadlock(|n| {
        FilePermits::at_path(&path, n)
    });
}

#[test]
fn a_file_that_is_not_a_semaphore_is_refused_and_kept() {
    let path = run_dir().join("data.permits");
    fs::write(&path, b"precious data, not a semaphore").unwrap();
    let err = FilePermits::at_path(&path, 2).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"precious data, not a semaphore");
}

#[test]
fn zero_permits_are_refused() {
    let err = FilePermits::at_path(run_dir().join("zero.permits"), 0).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
    assert!(!run_dir().join("zero.permits").exists());
}
