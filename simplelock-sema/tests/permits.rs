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

use simplelock_core::SimpleLockResult;
use simplelock_core::conformance::run_id;
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
        async_waits(|future| simplelock_core::conformance::block_on(future)),
    );
}

#[test]
fn status_and_holders_follow_the_permits() -> SimpleLockResult<()> {
    let name = name("status");
    simplelock_core::conformance::permits::status_and_holders(
        |n| SemaphorePermits::named(&name, n),
        true,
    );
    assert!(SemaphorePermits::remove(&name)?);
    assert!(!SemaphorePermits::remove(&name)?);
    Ok(())
}

#[test]
fn disagreeing_and_zero_permits_are_refused() -> SimpleLockResult<()> {
    let name = name("disagree");
    simplelock_core::conformance::permits::disagreeing_permits_are_refused(|n| {
        SemaphorePermits::named(&name, n)
    });
    SemaphorePermits::remove(&name)?;
    Ok(())
}

#[test]
fn a_thread_that_holds_every_permit_would_deadlock() -> SimpleLockResult<()> {
    let name = name("deadlock");
    simplelock_core::conformance::permits::holding_every_permit_would_deadlock(|n| {
        SemaphorePermits::named(&name, n)
    });
    SemaphorePermits::remove(&name)?;
    Ok(())
}

/// An async waiter for one of two held permits is woken by the release of either (by another
/// thread); a wait dropped halfway takes nothing and leaves no registration that matters.
#[test]
fn an_async_waiter_takes_the_permit_given_back() -> SimpleLockResult<()> {
    use simplelock_core::{AsyncLockExt, ConcreteLock, Permits};
    use std::future::Future;
    use std::task::{Context, Waker};
    use std::time::Duration;

    let name = name("async");
    let mut held: Vec<_> = (0..2)
        .map(|_| SemaphorePermits::named(&name, 2))
        .collect::<SimpleLockResult<_>>()?;
    for handle in &mut held {
        handle.try_lock()?;
    }
    let mut waiter = SemaphorePermits::named(&name, 2)?;
    {
        // Polled once while all are held, then dropped: takes nothing.
        let mut acquire = std::pin::pin!(waiter.lock_async());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(acquire.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(waiter.held_permit(), None);
    let mut second = held.pop().unwrap();
    let given_back = second.held_permit();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        second.try_unlock().unwrap();
        second
    });
    simplelock_core::conformance::block_on(async {
        let guard = waiter.lock_async().await.unwrap();
        assert_eq!(guard.lock().held_permit(), given_back);
    });
    drop(releaser.join().unwrap());
    drop((held, waiter));
    SemaphorePermits::remove(&name)?;
    Ok(())
}
