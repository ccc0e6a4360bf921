//! What test authors rely on: contention between clones, real waits, injected failures,
//! simulated deaths and counters.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{
    ConcreteLock, Lock, LockBuilder, LockStatus, PreviousHolder, SimpleLockError,
    lock_until_finished,
};
use simplelock_fake::FakeLock;

/// `new(bool)` is deprecated, not gone: it must keep doing what 0.4 code expects.
#[test]
#[allow(deprecated)]
fn new_true_is_held_by_that_handle_and_clones_see_it_taken() {
    let mut held = FakeLock::new(true);
    let mut other = held.clone();
    assert_eq!(held.status().unwrap(), LockStatus::Mine);
    assert_eq!(other.status().unwrap(), LockStatus::Taken);
    assert!(matches!(
        other.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    held.unlock().unwrap();
    assert_eq!(other.status().unwrap(), LockStatus::Open);
    other.try_lock().unwrap();
}

#[test]
fn default_is_free() {
    let lock = FakeLock::default();
    assert_eq!(lock.status().unwrap(), LockStatus::Open);
    assert!(!lock.is_locked());
    lock.assert_released();
}

#[test]
fn hang_lock_really_waits_for_another_thread() {
    let mut holder = FakeLock::default();
    let mut waiter = holder.clone();
    holder.try_lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        Lock::lock(&mut waiter).unwrap();
        tx.send(()).unwrap();
        waiter
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "lock() returned while another clone held the lock"
    );
    holder.unlock().unwrap();
    rx.recv_timeout(Duration::from_secs(20))
        .expect("lock() did not wake up on release");
    let waiter = thread.join().unwrap();
    assert_eq!(waiter.status().unwrap(), LockStatus::Mine);
    assert_eq!(holder.status().unwrap(), LockStatus::Taken);
}

#[test]
fn timed_lock_times_out_not_before_its_timeout() {
    let mut holder = FakeLock::isolated("jobs");
    let mut waiter = holder.clone();
    holder.try_lock().unwrap();
    let start = Instant::now();
    let err = waiter.timed_lock(Duration::from_millis(40)).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(40));
    assert_eq!(
        err.to_string(),
        format!(
            r#"timed out after 40ms waiting for lock "jobs" (held by pid {})"#,
            std::process::id()
        )
    );
}

#[test]
fn many_threads_never_overlap() {
    let lock = FakeLock::default();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let mut lock = LockBuilder::default().apply(lock.clone());
            let counter = counter.clone();
            thread::spawn(move || {
                for _ in 0..500 {
                    lock_until_finished(&mut lock, || {
                        let seen = counter.load(std::sync::atomic::Ordering::SeqCst);
                        thread::yield_now();
                        counter.store(seen + 1, std::sync::atomic::Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 8 * 500);
    assert_eq!(lock.acquisitions(), 8 * 500);
    lock.assert_released();
}

#[test]
fn injected_failures_fire_once_and_leave_the_state_alone() {
    let mut lock = FakeLock::default();
    lock.fail_next_lock(SimpleLockError::permission_denied("fake", None));
    assert!(matches!(
        lock.try_lock(),
        Err(SimpleLockError::PermissionDenied { .. })
    ));
    assert!(!lock.is_locked(), "a failed lock must not take the lock");
    lock.try_lock().unwrap();
    lock.fail_next_unlock(SimpleLockError::unable_to_unlock("fake", "gone", None));
    assert!(matches!(
        lock.unlock(),
        Err(SimpleLockError::UnableToUnlock { .. })
    ));
    assert_eq!(
        lock.status().unwrap(),
        LockStatus::Mine,
        "a failed unlock keeps the lock"
    );
    lock.unlock().unwrap();
    assert_eq!(lock.lock_calls(), 2);
    assert_eq!(lock.unlock_calls(), 2);
    assert_eq!(lock.acquisitions(), 1);
}

#[test]
fn an_injected_error_reaches_try_lock_as_it_was_given() {
    let mut lock = FakeLock::default();
    lock.fail_next_lock(SimpleLockError::timed_out(
        "fake",
        Duration::from_secs(1),
        None,
    ));
    assert!(
        matches!(lock.try_lock(), Err(SimpleLockError::TimedOut { .. })),
        "the injected TimedOut was turned into another error"
    );
    lock.try_lock().unwrap();
}

#[test]
fn silent_unlock_hides_an_injected_failure() {
    let fake = FakeLock::default();
    let mut lock = LockBuilder::default()
        .with_silent_unlock()
        .apply(fake.clone());
    lock.lock().unwrap();
    fake.fail_next_unlock(SimpleLockError::unable_to_unlock("fake", "gone", None));
    lock.unlock().unwrap();
    assert!(
        fake.is_locked(),
        "the failure was swallowed, not the lock released"
    );
}

#[test]
fn simulated_death_is_reported_once_to_the_next_holder() {
    let mut dead = FakeLock::default();
    let mut next = dead.clone();
    dead.try_lock().unwrap();
    next.simulate_holder_death();
    assert_eq!(dead.status().unwrap(), LockStatus::Open);
    next.try_lock().unwrap();
    assert_eq!(next.previous_holder(), PreviousHolder::Died);
    next.unlock().unwrap();
    next.try_lock().unwrap();
    assert_eq!(next.previous_holder(), PreviousHolder::Released);
    next.unlock().unwrap();
    dead.simulate_holder_death(); // a free lock: nothing happens
    dead.try_lock().unwrap();
    assert_eq!(dead.previous_holder(), PreviousHolder::Released);
}

#[test]
fn dropping_the_holder_releases_and_wakes_a_waiter() {
    let mut holder = FakeLock::default();
    let mut waiter = holder.clone();
    holder.try_lock().unwrap();
    let thread = thread::spawn(move || waiter.timed_lock(Duration::from_secs(20)));
    thread::sleep(Duration::from_millis(20));
    drop(holder);
    thread.join().unwrap().unwrap();
}

#[test]
fn named_locks_share_state_by_name() {
    let mut a = FakeLock::named("fake-tests-named").unwrap();
    let b = FakeLock::named("fake-tests-named").unwrap();
    let c = FakeLock::named("fake-tests-other").unwrap();
    a.try_lock().unwrap();
    assert_eq!(b.status().unwrap(), LockStatus::Taken);
    assert_eq!(c.status().unwrap(), LockStatus::Open);
    assert!(matches!(
        FakeLock::named(""),
        Err(SimpleLockError::InvalidName { .. })
    ));
}

#[test]
fn works_as_a_concrete_lock_in_every_builder_mode() {
    let fake = FakeLock::default();
    let mut holder = fake.clone();
    holder.try_lock().unwrap();
    let mut trying = LockBuilder::default().with_try_lock().apply(fake.clone());
    assert!(matches!(
        trying.lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    let mut timed = LockBuilder::default()
        .with_timeout(Duration::from_millis(10))
        .apply(fake.clone());
    assert!(matches!(
        timed.lock(),
        Err(SimpleLockError::TimedOut { .. })
    ));
    assert_eq!(
        ConcreteLock::status(timed.get_ref()).unwrap(),
        LockStatus::Taken
    );
}

#[test]
fn a_timeout_too_long_for_the_clock_waits_until_the_release() {
    let mut holder = FakeLock::default();
    let mut waiter = holder.clone();
    holder.try_lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let result = waiter.timed_lock(Duration::MAX);
        tx.send(()).unwrap();
        result.map(|()| waiter)
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "timed_lock(Duration::MAX) returned while another clone held the lock"
    );
    holder.unlock().unwrap();
    rx.recv_timeout(Duration::from_secs(20))
        .expect("timed_lock(Duration::MAX) did not wake up on release");
    let waiter = thread.join().unwrap().unwrap();
    assert_eq!(waiter.status().unwrap(), LockStatus::Mine);
}

#[test]
fn a_zero_timeout_tries_once() {
    let mut holder = FakeLock::default();
    let mut waiter = holder.clone();
    waiter.timed_lock(Duration::ZERO).unwrap();
    waiter.unlock().unwrap();
    holder.try_lock().unwrap();
    let calls = holder.lock_calls();
    let err = waiter.timed_lock(Duration::ZERO).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::TimedOut { timeout, .. } if timeout.is_zero()),
        "{err:?}"
    );
    assert_eq!(holder.lock_calls(), calls + 1);
}

#[test]
fn isolated_locks_of_one_name_do_not_exclude_each_other_but_named_ones_do() {
    let mut first = FakeLock::isolated("same");
    let mut second = FakeLock::isolated("same");
    assert_eq!(first.name(), "same");
    first.try_lock().unwrap();
    second.try_lock().unwrap();
    let mut named = FakeLock::named("isolated-vs-named").unwrap();
    let mut again = FakeLock::named("isolated-vs-named").unwrap();
    named.try_lock().unwrap();
    assert!(matches!(
        again.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    assert_eq!(FakeLock::default().name(), "fake");
}

/// The 0.4-era names are deprecated, not gone, and mean what they meant.
#[test]
#[allow(deprecated)]
fn deprecated_names_still_work() {
    let lock = FakeLock::with_name("old");
    assert_eq!(lock.lock_name(), "old");
    assert_eq!(lock.lock_name(), lock.name());
    assert!(!FakeLock::new(false).is_locked());
}

/// With both traits in scope, calls through `&mut FakeLock` (an `iter_mut()` item, a helper's
/// argument) must resolve: this file imports `ConcreteLock` and `Lock`, and a blanket
/// `ConcreteLock` impl for every `DerefMut` made `status()` here ambiguous.
#[test]
fn calls_through_a_mutable_reference_compile_with_both_traits_in_scope() {
    let mut locks = [FakeLock::default(), FakeLock::default()];
    for lock in locks.iter_mut() {
        assert_eq!(lock.status().unwrap(), LockStatus::Open);
        assert_eq!(lock.holder().unwrap(), None);
        assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
        lock.try_lock().unwrap();
        lock.unlock().unwrap();
    }
}
