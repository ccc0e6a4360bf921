//! SemaphorePermits with one permit is a lock: it passes the conformance suite of
//! simplelock-core, the multi-process and SIGKILL checks included. (N permits across
//! processes, with holders killed, are tested in the facade's `tests/permits.rs`, for every
//! backend at once.)
//!
//! Names carry the test process's id; each run first deletes the objects of earlier runs whose
//! process is gone, so `/dev/shm` does not fill up.

use std::fs;
use std::path::Path;
use std::sync::Once;

use simplelock_core::conformance::run_id;
use simplelock_core::{ConcreteLock, LockStatus, Permits, SimpleLockError, SimpleLockResult};
use simplelock_sema::SemaphorePermits;

const PREFIX: &str = "sl.slp-";

fn sweep_earlier_runs() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        if run_id() != std::process::id() {
            return;
        }
        for entry in fs::read_dir("/dev/shm").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next());
            if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    });
}

fn name(key: &str) -> String {
    sweep_earlier_runs();
    format!("slp-{}-{key}", run_id())
}

fn open(key: &str) -> SimpleLockResult<SemaphorePermits> {
    SemaphorePermits::named(&name(key), 1)
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
    let name = name("status");
    let mut handles: Vec<_> = (0..3)
        .map(|_| SemaphorePermits::named(&name, 2))
        .collect::<SimpleLockResult<_>>()?;
    assert!(handles[0].holders()?.iter().all(|p| !p.is_held()));
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
    assert!(
        holders
            .iter()
            .all(|h| h.holder().is_some_and(|h| h.pid == std::process::id()))
    );
    handles[0].try_unlock()?;
    assert!(matches!(
        handles[0].try_unlock(),
        Err(SimpleLockError::NotHeld { .. })
    ));
    handles[2].try_lock()?;
    assert_eq!(handles[2].held_permit(), Some(0));
    drop(handles);
    assert!(SemaphorePermits::remove(&name)?);
    assert!(!SemaphorePermits::remove(&name)?);
    Ok(())
}

#[test]
fn disagreeing_and_zero_permits_are_refused() -> SimpleLockResult<()> {
    let disagree = name("disagree");
    let _four = SemaphorePermits::named(&disagree, 4)?;
    let err = SemaphorePermits::named(&disagree, 8).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = SemaphorePermits::named(&name("zero"), 0).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
    SemaphorePermits::remove(&disagree)?;
    Ok(())
}
