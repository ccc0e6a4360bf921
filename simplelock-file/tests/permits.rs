//! FilePermits with one permit is a lock: it passes the conformance suite of simplelock-core,
//! the multi-process and SIGKILL checks included. (N permits across processes, with holders
//! killed, are tested in the facade's `tests/permits.rs`, for every backend at once.)
//! FilePermits uses OFD locks: Linux only.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::run_id;
use simplelock_core::{ConcreteLock, LockStatus, PermitState, Permits, SimpleLockError};
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
fn status_and_holders_follow_the_permits() -> SimpleLockResult<()> {
    let path = run_dir().join("status.permits");
    let mut handles: Vec<_> = (0..3)
        .map(|_| FilePermits::at_path(&path, 2))
        .collect::<SimpleLockResult<_>>()?;
    assert_eq!(
        handles[0].holders()?,
        [PermitState::Free, PermitState::Free]
    );
    handles[0].try_lock()?;
    assert_eq!(handles[0].status()?, LockStatus::Mine);
    assert_eq!(handles[1].status()?, LockStatus::Open);
    handles[1].try_lock()?;
    assert_eq!(handles[2].status()?, LockStatus::Taken);
    let err = handles[2].try_lock().unwrap_err();
    assert!(
        matches!(
            err,
            SimpleLockError::AlreadyLocked {
                holder: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    let holders = handles[2].holders()?;
    assert!(holders.iter().all(|h| {
        h.holder()
            .is_some_and(|h| h.pid == std::process::id() && h.since.is_some())
    }));
    handles[0].try_unlock()?;
    assert!(matches!(
        handles[0].try_unlock(),
        Err(SimpleLockError::NotHeld { .. })
    ));
    handles[2].try_lock()?;
    assert_eq!(handles[2].held_permit(), Some(0));
    assert!(!handles[2].previous_holder().died());
    Ok(())
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
