//! FakePermits: a one-permit semaphore passes the lock conformance suite, and N permits let
//! exactly N holders in, across threads, with deaths in the middle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use simplelock_core::{
    ConcreteLock, Lock, LockBuilder, LockStatus, PermitState, Permits, SimpleLockError,
    SimpleLockResult,
};
use simplelock_fake::FakePermits;

mod conformance {
    use super::*;

    fn open(key: &str) -> SimpleLockResult<FakePermits> {
        FakePermits::named(&format!("conformance-{key}"), 1)
    }

    simplelock_core::conformance_tests!(open, holder_pid, cloneable);
}

#[test]
fn n_permits_let_n_holders_in_and_no_more() -> SimpleLockResult<()> {
    let semaphore = FakePermits::isolated("three", 3)?;
    let mut handles: Vec<_> = (0..4).map(|_| semaphore.clone()).collect();
    for handle in &mut handles[..3] {
        assert_eq!(handle.status()?, LockStatus::Open);
        handle.try_lock()?;
        assert_eq!(handle.status()?, LockStatus::Mine);
    }
    let mut held: Vec<_> = handles[..3]
        .iter()
        .map(|h| h.held_permit().unwrap())
        .collect();
    held.sort();
    assert_eq!(held, [0, 1, 2]);
    assert_eq!(handles[3].status()?, LockStatus::Taken);
    assert!(matches!(
        handles[3].try_lock(),
        Err(SimpleLockError::AlreadyLocked {
            holder: Some(_),
            ..
        })
    ));
    assert!(matches!(
        handles[0].try_lock(),
        Err(SimpleLockError::AlreadyHeld { .. })
    ));
    assert!(semaphore.holders()?.iter().all(PermitState::is_held));
    handles[1].try_unlock()?;
    assert!(matches!(
        handles[1].try_unlock(),
        Err(SimpleLockError::NotHeld { .. })
    ));
    assert_eq!(
        semaphore.holders()?.iter().filter(|p| p.is_held()).count(),
        2
    );
    handles[3].try_lock()?;
    assert!(!handles[3].previous_holder().died());
    Ok(())
}

#[test]
fn a_disagreeing_number_of_permits_is_refused() {
    simplelock_core::conformance::permits::disagreeing_permits_are_refused(|n| {
        FakePermits::named("disagree", n)
    });
}

#[test]
fn status_and_holders_follow_the_permits() {
    simplelock_core::conformance::permits::status_and_holders(
        |n| FakePermits::named("status", n),
        true,
    );
}

#[test]
fn a_timed_wait_is_woken_by_a_release_and_times_out_otherwise() -> SimpleLockResult<()> {
    let semaphore = FakePermits::isolated("one", 1)?;
    let mut holder = semaphore.clone();
    holder.try_lock()?;
    let mut waiter = LockBuilder::default()
        .with_timeout(Duration::from_millis(20))
        .apply(semaphore.clone());
    assert!(matches!(
        waiter.lock(),
        Err(SimpleLockError::TimedOut { .. })
    ));
    let mut waiter = LockBuilder::default()
        .with_timeout(Duration::from_secs(60))
        .apply(semaphore.clone());
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        holder.try_unlock()
    });
    let guard = waiter.guard()?;
    releaser.join().unwrap()?;
    drop(guard);
    Ok(())
}

/// 8 threads, 3 permits, every holder counts itself in and out; every fourth "dies" (its
/// permit is taken from it). The count never passes 3, and afterwards exactly 3 permits can
/// be taken at once.
#[test]
fn eight_threads_three_permits_with_deaths() -> SimpleLockResult<()> {
    let semaphore = FakePermits::isolated("storm", 3)?;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (semaphore, inside, most, start) = (
                semaphore.clone(),
                inside.clone(),
                most.clone(),
                start.clone(),
            );
            thread::spawn(move || -> SimpleLockResult<()> {
                let mut permit = LockBuilder::default().apply(semaphore.clone());
                start.wait();
                for round in 0..200 {
                    permit.lock()?;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    if (worker + round) % 4 == 0 {
                        let held = permit.get_ref().held_permit().unwrap();
                        semaphore.simulate_holder_death(held);
                        assert_ne!(permit.status()?, LockStatus::Mine);
                    } else {
                        permit.unlock()?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap()?;
    }
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "{} holders at once",
        most.load(Ordering::SeqCst)
    );
    let mut takers: Vec<_> = (0..4).map(|_| semaphore.clone()).collect();
    for taker in &mut takers[..3] {
        taker.try_lock()?;
    }
    assert!(matches!(
        takers[3].try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    Ok(())
}

#[test]
fn a_thread_that_holds_every_permit_would_deadlock() {
    simplelock_core::conformance::permits::holding_every_permit_would_deadlock(|n| {
        FakePermits::named("deadlock", n)
    });
}
