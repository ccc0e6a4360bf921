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

#[cfg(not(feature = "tokio"))]
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

// With feature `tokio`, the async checks too (the async wait registers with tokio's reactor and
// timer), each on a current-thread runtime of its own.
#[cfg(feature = "tokio")]
mod conformance {
    use super::*;

    simplelock_core::conformance_tests!(
        open,
        across_processes,
        crash_safe,
        reports_deaths,
        holder_pid,
        async_waits(|future| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(future)
        }),
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

/// An async waiter for one of two held permits is woken by the release of either (by another
/// thread); a wait dropped halfway takes nothing.
#[cfg(feature = "tokio")]
#[test]
fn an_async_waiter_takes_the_permit_given_back() {
    use simplelock_core::{AsyncLockExt, ConcreteLock, Permits};
    use std::time::Duration;

    let path = run_dir().join("async.permits");
    let mut held: Vec<_> = (0..2)
        .map(|_| FilePermits::at_path(&path, 2).unwrap())
        .collect();
    for handle in &mut held {
        handle.try_lock().unwrap();
    }
    let mut waiter = FilePermits::at_path(&path, 2).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut second = held.pop().unwrap();
    let given_back = second.held_permit();
    runtime.block_on(async {
        // Dropped while all are held: takes nothing.
        let timed_out = tokio::time::timeout(Duration::from_millis(50), waiter.lock_async())
            .await
            .is_err();
        assert!(timed_out);
        assert_eq!(waiter.held_permit(), None);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            second.try_unlock().unwrap();
            second
        });
        let guard = waiter.lock_async().await.unwrap();
        assert_eq!(guard.lock().held_permit(), given_back);
        drop(releaser.join().unwrap());
    });
}
