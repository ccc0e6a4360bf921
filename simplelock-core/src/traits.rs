//! The two traits: [`ConcreteLock`], what a backend implements, and [`Lock`], what users call.

use std::ops::DerefMut;
use std::thread;
use std::time::Duration;

use crate::{
    Backoff, Holder, LockGuard, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult, Wait,
};

/// What a backend implements: one handle on one named lock.
///
/// A handle is either holding the lock or not; the methods move it between the two. Four
/// methods are required; the rest have correct defaults that a backend overrides when it can
/// do better (a native timed wait, a record of who holds the lock).
///
/// [`LockBuilder`](crate::LockBuilder) turns a `ConcreteLock` into a [`Lock`].
///
/// # For implementors
///
/// - Two handles on the same lock — in one process or in two — must never both hold it.
/// - Misuse is defined: [`try_lock`](ConcreteLock::try_lock), [`hang_lock`](ConcreteLock::hang_lock)
///   and [`timed_lock`](ConcreteLock::timed_lock) on a handle that holds the lock return
///   [`SimpleLockError::AlreadyHeld`] (never a self-deadlock, never a second acquisition), and
///   [`try_unlock`](ConcreteLock::try_unlock) on a handle that does not hold it returns
///   [`SimpleLockError::NotHeld`] and releases nothing.
/// - Dropping a handle that holds the lock releases it.
/// - The `conformance` feature of this crate has a test suite that checks all of this; see the
///   crate documentation, "Implementing a backend".
pub trait ConcreteLock {
    /// The state of the lock as this handle sees it now.
    fn status(&self) -> SimpleLockResult<LockStatus>;

    /// Acquire the lock if nobody else holds it, or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] if someone else holds it,
    /// [`SimpleLockError::AlreadyHeld`] if this handle does.
    fn try_lock(&mut self) -> SimpleLockResult<()>;

    /// Acquire the lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds it already,
    /// [`SimpleLockError::WouldDeadlock`] where the backend can see that the wait could never end.
    fn hang_lock(&mut self) -> SimpleLockResult<()>;

    /// Release the lock.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle does not hold it (nothing is released),
    /// [`SimpleLockError::UnableToUnlock`] if the release failed.
    fn try_unlock(&mut self) -> SimpleLockResult<()>;

    /// Acquire the lock, waiting at most `timeout`.
    ///
    /// A zero `timeout` tries once.
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] naming the lock and the timeout if it was not acquired in
    /// time, and the errors of [`hang_lock`](ConcreteLock::hang_lock).
    ///
    /// # For implementors
    /// The default polls [`try_lock`](ConcreteLock::try_lock) with a backoff that starts at
    /// 50 µs and doubles up to 10 ms, never sleeping past the deadline, and makes one last try at
    /// the deadline. It is correct for any backend, but a release is noticed up to one backoff
    /// step late: override it with a native wait where the system has one, and compute its
    /// deadline, sleep slices and error with [`Wait`] (`Wait::For(timeout).start()`; see its
    /// "For implementors"), so that a timeout too long for the clock waits forever and a signal
    /// neither ends nor extends the wait.
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        poll_until(Wait::For(timeout), || self.try_lock())
    }

    /// How the previous holder let go of the lock, as learned by this handle's last acquisition.
    ///
    /// The default is [`PreviousHolder::Unknown`].
    fn previous_holder(&self) -> PreviousHolder {
        PreviousHolder::Unknown
    }

    /// Who holds the lock now, where the backend can tell.
    ///
    /// The default is `Ok(None)`: not known.
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(None)
    }
}

/// The first sleep of the default [`ConcreteLock::timed_lock`].
const BACKOFF_START: Duration = Duration::from_micros(50);
/// The longest sleep of the default [`ConcreteLock::timed_lock`].
const BACKOFF_MAX: Duration = Duration::from_millis(10);

/// Calls `attempt` until it succeeds, fails with anything but `AlreadyLocked`, or `wait` is over
/// (then the error of [`Wait::out_of_time`], with the last holder seen).
fn poll_until(
    wait: Wait,
    mut attempt: impl FnMut() -> SimpleLockResult<()>,
) -> SimpleLockResult<()> {
    let wait = wait.start();
    let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
    loop {
        match attempt() {
            Err(SimpleLockError::AlreadyLocked { name, holder }) => match backoff.next(&wait) {
                Some(nap) => thread::sleep(nap),
                None => return Err(wait.out_of_time(name, holder)),
            },
            other => return other,
        }
    }
}

/// A boxed backend handle is one: `Box<dyn ConcreteLock>` (0.4's forwarding impl),
/// `Box<dyn ConcreteLock + Send>` (what `default_backend` returns), `Box<MyLock>`. Every method
/// forwards, the overridden ones included.
///
/// Why not one impl over every [`DerefMut`], as for [`Lock`]: a type may implement both traits
/// (`FakeLock` does, so that it stands in for a built lock too), and then a call such as
/// `lock.status()` on a `&mut FakeLock` — an `iter_mut()` item, a helper's argument — would
/// find `status` in both impls for `&mut FakeLock` and not compile. With `Lock` alone
/// implemented for `&mut T`, it compiles as it always did.
impl<C: ConcreteLock + ?Sized> ConcreteLock for Box<C> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        (**self).status()
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        (**self).try_lock()
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        (**self).hang_lock()
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        (**self).try_unlock()
    }
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        (**self).timed_lock(timeout)
    }
    fn previous_holder(&self) -> PreviousHolder {
        (**self).previous_holder()
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        (**self).holder()
    }
}

/// A lock as users see it: configured once (wait, try or time out; report or swallow unlock
/// errors), then just `lock` and `unlock`.
///
/// Get one from [`LockBuilder`](crate::LockBuilder) (or `simplelock::default_lock`). Prefer
/// [`guard`](Lock::guard) or [`lock_until_finished`](crate::lock_until_finished) to calling
/// `lock` and `unlock` by hand: they release the lock on every path out, `?` and panics included.
pub trait Lock {
    /// The state of the lock as this handle sees it now.
    fn status(&self) -> SimpleLockResult<LockStatus>;

    /// Acquire the lock the way this handle was configured to: wait, try once, or wait at most
    /// a timeout.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] (try mode) or [`SimpleLockError::TimedOut`] (timeout
    /// mode) if someone else holds it; [`SimpleLockError::AlreadyHeld`] if this handle does.
    fn lock(&mut self) -> SimpleLockResult<()>;

    /// Release the lock.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle does not hold it, and release failures —
    /// unless the handle was built to unlock silently.
    fn unlock(&mut self) -> SimpleLockResult<()>;

    /// How the previous holder let go of the lock, as learned by the last [`lock`](Lock::lock).
    fn previous_holder(&self) -> PreviousHolder {
        PreviousHolder::Unknown
    }

    /// Who holds the lock now, where the backend can tell.
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(None)
    }

    /// Acquire the lock and return a guard that releases it when dropped.
    ///
    /// # Errors
    /// Those of [`lock`](Lock::lock).
    fn guard(&mut self) -> SimpleLockResult<LockGuard<'_, Self>>
    where
        Self: Sized,
    {
        LockGuard::new(self)
    }
}

/// Any mutable smart pointer or reference to a lock is one: `Box<dyn Lock>` (what
/// `default_lock` returns), `&mut L` (so `lock_until_finished(&mut &mut lock, ..)` and generic
/// code taking `impl Lock` accept borrowed locks), a `MutexGuard<L>`, ...
///
/// One impl over [`DerefMut`] (rand_core's pattern) rather than one per pointer type. A type
/// that implements `DerefMut` to a lock cannot also implement `Lock` itself: make the lock a
/// plain struct.
impl<P> Lock for P
where
    P: DerefMut,
    P::Target: Lock,
{
    fn status(&self) -> SimpleLockResult<LockStatus> {
        (**self).status()
    }
    fn lock(&mut self) -> SimpleLockResult<()> {
        (**self).lock()
    }
    fn unlock(&mut self) -> SimpleLockResult<()> {
        (**self).unlock()
    }
    fn previous_holder(&self) -> PreviousHolder {
        (**self).previous_holder()
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        (**self).holder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn poll_until_gives_up_after_the_timeout_with_the_holder() {
        let timeout = Duration::from_millis(30);
        let start = Instant::now();
        let mut tries = 0;
        let err = poll_until(Wait::For(timeout), || {
            tries += 1;
            Err(SimpleLockError::already_locked("x", Some(Holder::new(7))))
        })
        .unwrap_err();
        assert!(start.elapsed() >= timeout, "gave up early");
        assert!(tries >= 2, "tried once only");
        match err {
            SimpleLockError::TimedOut {
                name,
                timeout: t,
                holder,
            } => {
                assert_eq!(name, "x");
                assert_eq!(t, timeout);
                assert_eq!(holder, Some(Holder::new(7)));
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
    }

    #[test]
    fn poll_until_returns_at_the_first_success_or_other_error() {
        let mut tries = 0;
        poll_until(Wait::For(Duration::from_secs(60)), || {
            tries += 1;
            if tries < 3 {
                Err(SimpleLockError::already_locked("x", None))
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(tries, 3);
        let err = poll_until(Wait::For(Duration::from_secs(60)), || {
            Err(SimpleLockError::already_held("x"))
        })
        .unwrap_err();
        assert!(matches!(err, SimpleLockError::AlreadyHeld { .. }));
    }

    #[test]
    fn zero_timeout_tries_exactly_once() {
        let mut tries = 0;
        let err = poll_until(Wait::For(Duration::ZERO), || {
            tries += 1;
            Err(SimpleLockError::already_locked("x", None))
        })
        .unwrap_err();
        assert_eq!(tries, 1);
        assert!(matches!(err, SimpleLockError::TimedOut { .. }));
    }

    /// 0.4's two forwarding impls (`Box<dyn ConcreteLock>`, `Box<dyn Lock>`) and the pointers
    /// the blanket impl adds.
    #[test]
    fn pointers_to_locks_are_locks() {
        fn concrete<C: ConcreteLock + ?Sized>() {}
        fn lock<L: Lock + ?Sized>() {}
        concrete::<Box<dyn ConcreteLock>>();
        concrete::<Box<dyn ConcreteLock + Send>>();
        lock::<Box<dyn Lock>>();
        lock::<Box<dyn Lock + Send>>();
        lock::<&mut dyn Lock>();
        lock::<&mut Box<dyn Lock>>();
        lock::<std::sync::MutexGuard<'static, crate::BuiltLock<Box<dyn ConcreteLock + Send>>>>();
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let mut tries = 0;
        poll_until(Wait::For(Duration::MAX), || {
            tries += 1;
            if tries < 2 {
                Err(SimpleLockError::already_locked("x", None))
            } else {
                Ok(())
            }
        })
        .unwrap();
    }
}
