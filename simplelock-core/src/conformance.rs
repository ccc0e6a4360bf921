//! A test suite that checks a backend against the [`ConcreteLock`] contract.
//!
//! Enabled by the `conformance` feature, which adds no dependency. Every check takes an *opener*:
//! a function that returns a new handle for a key. Handles opened with the same key must be
//! handles on the same lock; different keys must be independent locks. Make the opener map keys
//! to names private to the test run (a temporary folder, a name with the process id in it), so
//! that test binaries running at the same time do not meet.
//!
//! A check panics with a message that names the broken rule, so it can be called from a `#[test]`;
//! [`run_all`] runs every check, and [`conformance_tests!`](crate::conformance_tests) writes one
//! `#[test]` per check. The checks use threads of one process; a backend's own tests must still
//! show exclusion between real processes and recovery from a killed holder.
//!
//! The suite waits for things that must *not* happen (a second holder, a waiter returning early)
//! for about [`SETTLE`] and for things that must happen for at most [`PATIENCE`]: slow machines
//! make it slower, never wrong.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{
    ConcreteLock, Lock, LockBuilder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
    lock_until_finished,
};

/// Panics unless `$result` is `Err(SimpleLockError::$variant { .. })`, saying which outcome was
/// expected of what, and what came instead.
macro_rules! expect_err {
    ($result:expr, $variant:ident, $what:expr) => {
        match $result {
            Err(SimpleLockError::$variant { .. }) => {}
            other => panic!(
                "{}: expected {}, got {other:?}",
                $what,
                stringify!($variant)
            ),
        }
    };
}

/// How long a check gives a wrong outcome the chance to show itself.
pub const SETTLE: Duration = Duration::from_millis(50);
/// How long a check waits for an outcome that must come before it calls the backend stuck.
pub const PATIENCE: Duration = Duration::from_secs(20);

fn open<H, F>(opener: &F, key: &str) -> H
where
    F: Fn(&str) -> SimpleLockResult<H>,
{
    opener(key).unwrap_or_else(|e| panic!("opening a handle for key {key:?} failed: {e}"))
}

fn ok<T>(what: &str, result: SimpleLockResult<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

fn status<H: ConcreteLock>(what: &str, handle: &H) -> LockStatus {
    ok(&format!("status() of {what}"), handle.status())
}

/// Ends the test process: a thread is stuck inside the backend (a deadlock or a missed wake-up),
/// and a panic could not end the test, because the scope that runs the thread would wait for it.
fn stuck(what: &str) -> ! {
    eprintln!("conformance: {what} did not return within {PATIENCE:?}: the backend is stuck");
    std::process::abort()
}

/// Runs `op` on another thread and returns its result, or ends the process if it takes longer
/// than [`PATIENCE`].
fn within_patience<T: Send>(what: &str, op: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(op());
        });
        rx.recv_timeout(PATIENCE).unwrap_or_else(|_| stuck(what))
    })
}

/// Waits for a thread to finish, or ends the process if it takes longer than [`PATIENCE`].
fn await_finished<T>(what: &str, thread: &thread::ScopedJoinHandle<'_, T>) {
    let start = Instant::now();
    while !thread.is_finished() {
        if start.elapsed() > PATIENCE {
            stuck(what);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// A new handle is open and knows nothing about a previous holder.
pub fn fresh_handle_is_open<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let a = open(opener, "fresh");
    assert_eq!(status("a new handle", &a), LockStatus::Open);
    assert_eq!(a.previous_holder(), PreviousHolder::Unknown);
}

/// Open → Mine for the holder and Taken for another handle → Open again after release.
pub fn status_follows_lock_and_unlock<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "status");
    let b = open(opener, "status");
    ok("try_lock on a free lock", a.try_lock());
    assert_eq!(status("the holder", &a), LockStatus::Mine);
    assert_eq!(status("another handle", &b), LockStatus::Taken);
    if let Some(holder) = ok("holder()", b.holder()) {
        assert_eq!(
            holder.pid,
            std::process::id(),
            "holder() names the wrong process"
        );
    }
    ok("try_unlock by the holder", a.try_unlock());
    assert_eq!(status("the former holder", &a), LockStatus::Open);
    assert_eq!(status("another handle", &b), LockStatus::Open);
}

/// `try_lock` fails with `AlreadyLocked` naming the lock while another handle holds it.
pub fn try_lock_fails_while_held_elsewhere<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "try");
    let mut b = open(opener, "try");
    ok("try_lock on a free lock", a.try_lock());
    match b.try_lock() {
        Err(SimpleLockError::AlreadyLocked { name, .. }) => {
            assert!(!name.is_empty(), "AlreadyLocked must name the lock")
        }
        other => panic!("try_lock while held elsewhere must be AlreadyLocked, got {other:?}"),
    }
    assert_eq!(
        status("the holder after a failed try", &a),
        LockStatus::Mine
    );
    ok("try_unlock", a.try_unlock());
    ok("try_lock after release", b.try_lock());
    ok("try_unlock", b.try_unlock());
}

/// `hang_lock` waits while another handle holds the lock and returns once it is released.
pub fn hang_lock_waits_for_release<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "hang");
    let mut b = open(opener, "hang");
    ok("try_lock on a free lock", a.try_lock());
    let acquired = AtomicBool::new(false);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let result = b.hang_lock();
            acquired.store(true, Ordering::SeqCst);
            result.map(|()| b)
        });
        thread::sleep(SETTLE);
        assert!(
            !acquired.load(Ordering::SeqCst),
            "hang_lock returned while another handle held the lock"
        );
        ok("try_unlock", a.try_unlock());
        await_finished("hang_lock after the release", &waiter);
        let mut b = ok("hang_lock", waiter.join().expect("waiter panicked"));
        assert_eq!(status("the waiter", &b), LockStatus::Mine);
        ok("try_unlock by the waiter", b.try_unlock());
    });
}

/// `timed_lock` gives up with `TimedOut` — not earlier than asked — while another handle holds it.
pub fn timed_lock_times_out<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "timeout");
    let mut b = open(opener, "timeout");
    ok("try_lock on a free lock", a.try_lock());
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    let result = within_patience("timed_lock", || b.timed_lock(timeout));
    let waited = start.elapsed();
    match result {
        Err(SimpleLockError::TimedOut {
            timeout: reported,
            name,
            ..
        }) => {
            assert_eq!(reported, timeout, "TimedOut must carry the timeout");
            assert!(!name.is_empty(), "TimedOut must name the lock");
        }
        other => panic!("timed_lock while held elsewhere must be TimedOut, got {other:?}"),
    }
    assert!(
        waited >= timeout,
        "timed_lock gave up after {waited:?}, before {timeout:?}"
    );
    assert_ne!(status("the waiter that timed out", &b), LockStatus::Mine);
    assert_eq!(status("the holder", &a), LockStatus::Mine);
    expect_err!(
        b.timed_lock(Duration::ZERO),
        TimedOut,
        "timed_lock(0) while held elsewhere"
    );
    ok("try_unlock", a.try_unlock());
    ok("timed_lock(0) on a free lock", b.timed_lock(Duration::ZERO));
    ok("try_unlock", b.try_unlock());
}

/// `timed_lock` returns as soon as the holder releases, well before its timeout.
pub fn timed_lock_acquires_on_release<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "timed-acquire");
    let mut b = open(opener, "timed-acquire");
    ok("try_lock on a free lock", a.try_lock());
    thread::scope(|s| {
        let waiter = s.spawn(|| b.timed_lock(PATIENCE * 2).map(|()| b));
        thread::sleep(SETTLE);
        assert!(
            !waiter.is_finished(),
            "timed_lock returned while the lock was held"
        );
        ok("try_unlock", a.try_unlock());
        await_finished("timed_lock after the release", &waiter);
        let mut b = ok("timed_lock", waiter.join().expect("waiter panicked"));
        assert_eq!(status("the waiter", &b), LockStatus::Mine);
        ok("try_unlock", b.try_unlock());
    });
}

/// Unlock by a handle that does not hold the lock is `NotHeld` and releases nothing.
pub fn unlock_without_holding_is_an_error<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "unlock-unheld");
    let mut b = open(opener, "unlock-unheld");
    expect_err!(a.try_unlock(), NotHeld, "try_unlock of a free lock");
    ok("try_lock", b.try_lock());
    expect_err!(
        a.try_unlock(),
        NotHeld,
        "try_unlock of another handle's lock"
    );
    assert_eq!(
        status("the holder", &b),
        LockStatus::Mine,
        "unlock released another's lock"
    );
    expect_err!(
        a.try_lock(),
        AlreadyLocked,
        "a stray unlock released another handle's lock"
    );
    ok("try_unlock", b.try_unlock());
    expect_err!(b.try_unlock(), NotHeld, "a second try_unlock");
}

/// Locking a handle that holds the lock is `AlreadyHeld` in every mode, never a self-deadlock,
/// and the lock stays held exactly once.
pub fn lock_twice_is_an_error<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "lock-twice");
    let mut b = open(opener, "lock-twice");
    ok("try_lock", a.try_lock());
    let results = within_patience("locking a held handle again", || {
        [
            ("try_lock", a.try_lock()),
            ("hang_lock", a.hang_lock()),
            ("timed_lock", a.timed_lock(Duration::from_millis(20))),
        ]
    });
    for (what, result) in results {
        expect_err!(
            result,
            AlreadyHeld,
            format!("{what} on a handle that holds the lock")
        );
    }
    assert_eq!(status("the holder", &a), LockStatus::Mine);
    ok("try_unlock", a.try_unlock());
    ok(
        "try_lock after one unlock (held once, not three times)",
        b.try_lock(),
    );
    ok("try_unlock", b.try_unlock());
}

/// Dropping a handle that holds the lock releases it.
pub fn drop_releases<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "drop");
    let mut b = open(opener, "drop");
    ok("try_lock", a.try_lock());
    drop(a);
    ok("try_lock after the holder was dropped", b.try_lock());
    ok("try_unlock", b.try_unlock());
}

/// Dropping a handle that does not hold the lock releases nothing: with `fcntl` locks, closing
/// any descriptor of the file drops the process's lock, so a backend built on them fails here.
pub fn drop_of_another_handle_keeps_the_lock<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "drop-other");
    let b = open(opener, "drop-other");
    let mut c = open(opener, "drop-other");
    ok("try_lock", a.try_lock());
    drop(b);
    assert_eq!(
        status("the holder after another handle was dropped", &a),
        LockStatus::Mine,
        "dropping a handle that did not hold the lock released it"
    );
    expect_err!(
        c.try_lock(),
        AlreadyLocked,
        "dropping a handle that did not hold the lock released it"
    );
    ok("try_unlock", a.try_unlock());
}

/// One handle can lock and unlock many times in a row.
pub fn relock_many_times<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "relock");
    let b = open(opener, "relock");
    for round in 0..200 {
        let what = format!("round {round}");
        match round % 3 {
            0 => ok(&what, a.try_lock()),
            1 => ok(&what, a.hang_lock()),
            _ => ok(&what, a.timed_lock(PATIENCE)),
        }
        assert_eq!(status(&what, &b), LockStatus::Taken);
        ok(&what, a.try_unlock());
    }
    assert_eq!(status("after the rounds", &b), LockStatus::Open);
}

/// Handles with different keys do not exclude each other.
pub fn different_locks_are_independent<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "independent-1");
    let mut b = open(opener, "independent-2");
    ok("try_lock on the first lock", a.try_lock());
    ok("try_lock on a second, different lock", b.try_lock());
    ok("try_unlock", a.try_unlock());
    ok("try_unlock", b.try_unlock());
}

/// A clean release is never reported as a death.
pub fn clean_release_is_not_a_death<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = open(opener, "clean-release");
    let mut b = open(opener, "clean-release");
    ok("try_lock", a.try_lock());
    ok("try_unlock", a.try_unlock());
    ok("try_lock", b.try_lock());
    assert_ne!(
        b.previous_holder(),
        PreviousHolder::Died,
        "a holder that released cleanly was reported dead"
    );
    ok("try_unlock", b.try_unlock());
}

/// Threads with their own handles on one lock never overlap and lose no update.
pub fn threads_exclude_each_other<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let counter = AtomicUsize::new(0);
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let mut handle = open(opener, "threads");
            let (counter, inside, overlaps) = (&counter, &inside, &overlaps);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    match (t + round) % 3 {
                        0 => ok("hang_lock", handle.hang_lock()),
                        1 => ok("timed_lock", handle.timed_lock(PATIENCE)),
                        _ => loop {
                            match handle.try_lock() {
                                Ok(()) => break,
                                Err(SimpleLockError::AlreadyLocked { .. }) => thread::yield_now(),
                                Err(e) => panic!("try_lock failed: {e}"),
                            }
                        },
                    }
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    // A deliberately racy read-modify-write: only the lock keeps it exact.
                    let seen = counter.load(Ordering::SeqCst);
                    thread::yield_now();
                    counter.store(seen + 1, Ordering::SeqCst);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    ok("try_unlock", handle.try_unlock());
                }
            });
        }
    });
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders at once");
    assert_eq!(
        counter.load(Ordering::SeqCst),
        THREADS * ROUNDS,
        "lost updates"
    );
}

/// The [`LockBuilder`] modes behave as configured on top of the backend.
pub fn builder_modes<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut holder = LockBuilder::default().apply(open(opener, "builder"));
    ok("lock()", holder.lock());
    let mut trying = LockBuilder::default()
        .with_try_lock()
        .apply(open(opener, "builder"));
    expect_err!(
        trying.lock(),
        AlreadyLocked,
        "lock() in try mode while held elsewhere"
    );
    let timeout = Duration::from_millis(30);
    let mut timed = LockBuilder::default()
        .with_timeout(timeout)
        .apply(open(opener, "builder"));
    match within_patience("lock() in timeout mode", || timed.lock()) {
        Err(SimpleLockError::TimedOut { timeout: t, .. }) => assert_eq!(t, timeout),
        other => panic!("timeout mode must fail with TimedOut, got {other:?}"),
    }
    expect_err!(trying.unlock(), NotHeld, "unlock() without holding");
    let mut silent = LockBuilder::default()
        .with_try_lock()
        .with_silent_unlock()
        .apply(open(opener, "builder"));
    ok("silent unlock without holding", silent.unlock());
    assert_eq!(
        ok("status()", holder.status()),
        LockStatus::Mine,
        "silent unlock released"
    );
    ok("unlock()", holder.unlock());
    ok("lock() in timeout mode on a free lock", timed.lock());
    ok("unlock()", timed.unlock());
}

/// A guard releases the lock when dropped and reports unlock errors from `unlock()`.
pub fn guard_releases<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = LockBuilder::default()
        .with_try_lock()
        .apply(open(opener, "guard"));
    let mut b = LockBuilder::default()
        .with_try_lock()
        .apply(open(opener, "guard"));
    {
        let guard = ok("guard()", a.guard());
        assert_eq!(ok("status()", guard.lock().status()), LockStatus::Mine);
        expect_err!(b.lock(), AlreadyLocked, "a guard did not hold the lock");
    }
    let guard = ok("guard() after the first guard dropped", b.guard());
    ok("guard.unlock()", guard.unlock());
    ok("lock() after guard.unlock()", a.lock());
    ok("unlock()", a.unlock());
}

/// A panic inside `lock_until_finished` releases the lock and goes on.
pub fn panic_in_lock_until_finished_releases<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    let mut a = LockBuilder::default().apply(open(opener, "panic"));
    let mut b = LockBuilder::default()
        .with_try_lock()
        .apply(open(opener, "panic"));
    assert_eq!(
        ok("lock_until_finished", lock_until_finished(&mut a, || 42)),
        42
    );
    // The panic message shows in the test output. Silencing it would mean replacing the global
    // panic hook, which would also hide the messages of tests failing at the same time.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        lock_until_finished(&mut a, || {
            panic!("deliberate panic in the critical section (conformance check, not a failure)")
        })
    }));
    assert!(outcome.is_err(), "the panic did not continue");
    assert_eq!(
        ok("status()", a.status()),
        LockStatus::Open,
        "the panic left the lock held"
    );
    ok("lock() after the panic", b.lock());
    ok("unlock()", b.unlock());
}

/// Runs every check of the suite, in order, panicking at the first violation.
pub fn run_all<H, F>(opener: &F)
where
    H: ConcreteLock + Send,
    F: Fn(&str) -> SimpleLockResult<H> + Sync,
{
    fresh_handle_is_open(opener);
    status_follows_lock_and_unlock(opener);
    try_lock_fails_while_held_elsewhere(opener);
    hang_lock_waits_for_release(opener);
    timed_lock_times_out(opener);
    timed_lock_acquires_on_release(opener);
    unlock_without_holding_is_an_error(opener);
    lock_twice_is_an_error(opener);
    drop_releases(opener);
    drop_of_another_handle_keeps_the_lock(opener);
    relock_many_times(opener);
    different_locks_are_independent(opener);
    clean_release_is_not_a_death(opener);
    threads_exclude_each_other(opener);
    builder_modes(opener);
    guard_releases(opener);
    panic_in_lock_until_finished_releases(opener);
}

/// Writes one `#[test]` per check of the [conformance suite](crate::conformance).
///
/// The argument is an expression for the opener (see the [module docs](crate::conformance)),
/// evaluated once per test; each test is named after its check, so put the call in a module of
/// its own.
///
/// ```ignore
/// mod conformance {
///     simplelock_core::conformance_tests!(|key: &str| my_backend::MyLock::new(key));
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($opener:expr) => {
        $crate::conformance_tests!(@each $opener;
            fresh_handle_is_open,
            status_follows_lock_and_unlock,
            try_lock_fails_while_held_elsewhere,
            hang_lock_waits_for_release,
            timed_lock_times_out,
            timed_lock_acquires_on_release,
            unlock_without_holding_is_an_error,
            lock_twice_is_an_error,
            drop_releases,
            drop_of_another_handle_keeps_the_lock,
            relock_many_times,
            different_locks_are_independent,
            clean_release_is_not_a_death,
            threads_exclude_each_other,
            builder_modes,
            guard_releases,
            panic_in_lock_until_finished_releases,
        );
    };
    (@each $opener:expr; $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$check(&$opener);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    //! The suite must fail a backend that breaks the contract, not only pass good ones.

    use std::sync::{Arc, Mutex};

    use super::*;

    /// A lock shared by the clones of one `Arc`, correct except that dropping any handle frees
    /// it, as closing any descriptor does to an `fcntl` lock.
    struct ReleasesOnAnyDrop {
        held_by: Arc<Mutex<Option<usize>>>,
        id: usize,
    }

    impl ConcreteLock for ReleasesOnAnyDrop {
        fn status(&self) -> SimpleLockResult<LockStatus> {
            Ok(match *self.held_by.lock().unwrap() {
                Some(id) if id == self.id => LockStatus::Mine,
                Some(_) => LockStatus::Taken,
                None => LockStatus::Open,
            })
        }
        fn try_lock(&mut self) -> SimpleLockResult<()> {
            let mut held_by = self.held_by.lock().unwrap();
            match *held_by {
                Some(id) if id == self.id => Err(SimpleLockError::already_held("broken")),
                Some(_) => Err(SimpleLockError::already_locked("broken", None)),
                None => {
                    *held_by = Some(self.id);
                    Ok(())
                }
            }
        }
        fn hang_lock(&mut self) -> SimpleLockResult<()> {
            self.timed_lock(Duration::MAX)
        }
        fn try_unlock(&mut self) -> SimpleLockResult<()> {
            let mut held_by = self.held_by.lock().unwrap();
            if *held_by != Some(self.id) {
                return Err(SimpleLockError::not_held("broken"));
            }
            *held_by = None;
            Ok(())
        }
    }

    impl Drop for ReleasesOnAnyDrop {
        fn drop(&mut self) {
            *self.held_by.lock().unwrap() = None;
        }
    }

    #[test]
    #[should_panic(expected = "dropping a handle that did not hold the lock released it")]
    fn a_backend_whose_every_drop_releases_fails_the_suite() {
        let held_by = Arc::new(Mutex::new(None));
        let next_id = AtomicUsize::new(0);
        drop_of_another_handle_keeps_the_lock(&|_: &str| {
            Ok(ReleasesOnAnyDrop {
                held_by: Arc::clone(&held_by),
                id: next_id.fetch_add(1, Ordering::Relaxed),
            })
        });
    }
}
