//! Taking a lock from async code: [`AsyncConcreteLock`], what a backend implements, and
//! [`AsyncLockExt`], what users call (`lock_async().await`, `try_lock_async().await`,
//! `lock_timeout_with(..).await`), with [`AsyncLockGuard`].
//!
//! No runtime is named here: the vocabulary is `std::task` only (a [`Waker`](std::task::Waker)
//! to wake, a [`Context`] to poll with), so the core keeps no dependency. A backend wakes the
//! waiting task with whatever its system offers (a file descriptor the runtime watches, a
//! shared waiter thread, an in-process list of wakers, a database connection); a timer for
//! timed waits is passed in (`simplelock`'s `tokio` feature passes tokio's).
//!
//! # Why a poll method and not an `async fn` in the trait
//!
//! Cancel-safety is the point of the whole module, and a poll method makes it checkable: a
//! backend's [`poll_lock`](AsyncConcreteLock::poll_lock) acquires the lock only *inside* a call
//! that returns `Ready(Ok(()))`, and the future turns that into a guard in the same poll.
//! Between two polls nothing runs on the lock's behalf: no thread, no task, no blocking call
//! that could later acquire the lock for nobody. Dropping the future between polls (a
//! `select!` branch lost, a `timeout` fired, a task aborted) leaves at most a registered
//! wake-up, which [`cancel_wait`](AsyncConcreteLock::cancel_wait) removes. A backend whose
//! acquisition has to leave the process (a database) cannot take the lock synchronously; its
//! `poll_lock` may return `Pending` with a request in flight, and then `cancel_wait` must make
//! sure that a lock granted later is released (see the backend's docs for how it argues it).

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{ConcreteLock, PreviousHolder, SimpleLockError, SimpleLockResult};

/// What a backend implements so that its lock can be taken from async code without blocking
/// the runtime.
///
/// Users call [`AsyncLockExt`]'s methods (`lock.lock_async().await`); no runtime is named
/// here: a backend wakes the waiting task with whatever its system offers (a file descriptor
/// the runtime watches, a shared waiter thread, an in-process list of wakers, a database
/// connection), and a timed wait takes the caller's timer.
///
/// # Cancel-safety
///
/// A poll method rather than an `async fn` makes it checkable: a backend's
/// [`poll_lock`](AsyncConcreteLock::poll_lock) acquires the lock only *inside* a call that
/// returns `Ready(Ok(()))`, and the future turns that into a guard in the same poll. Between
/// two polls nothing runs on the lock's behalf: no thread, no task, no blocking call that could
/// later acquire the lock for nobody (the bug of a `spawn_blocking` wait). Dropping the future
/// between polls (a `select!` branch lost, a `timeout` fired, a task aborted) drops the wait's
/// [`WaitState`](AsyncConcreteLock::WaitState) after
/// [`cancel_wait`](AsyncConcreteLock::cancel_wait). A backend whose acquisition has to leave
/// the process (a database) cannot take the lock synchronously; its `poll_lock` may return
/// `Pending` with a request in flight, and then `cancel_wait` must make sure that a lock
/// granted later is released, and its docs must argue how.
///
/// # For implementors
///
/// - Never block: no blocking system call, no sleep, no wait on another thread's mutex for
///   longer than a few instructions. A poll that cannot acquire registers `cx`'s waker and
///   returns `Pending`.
/// - Wake promptly: the waker must be woken when a try is worth it again — a release, a
///   holder's death — and at the latest after a bounded time for releases the system cannot
///   announce. A spurious wake-up is allowed (the future polls again); a lost one is a hang.
///   Register the waker *before* the last look at the lock, or look again after registering,
///   so that a release between the look and the registration is not missed.
/// - Cancel-safe: acquire only inside a call that returns `Ready(Ok(()))`. When a future
///   that got `Pending` is dropped, [`cancel_wait`](AsyncConcreteLock::cancel_wait) is called:
///   after it, no thread or task may acquire the lock on this handle's behalf.
/// - The errors are those of the blocking methods (`AlreadyHeld` on a holding handle,
///   `WouldDeadlock` where the backend can tell, ...).
pub trait AsyncConcreteLock: ConcreteLock {
    /// What a waiting acquisition keeps between polls (a watch on a file, a timer; `()` if
    /// nothing). The future owns it and drops it when it completes or is dropped, so a
    /// cancelled wait cleans up in this type's `Drop`.
    type WaitState: Send;

    /// One step of an acquisition that waits as long as it takes: `Ready(Ok(()))` if this call
    /// acquired the lock, `Ready(Err(..))` if it failed, `Pending` (with `cx`'s waker
    /// registered) if someone else holds it.
    ///
    /// `state` is `None` at the first poll; the backend keeps in it whatever its wait needs.
    fn poll_lock(
        &mut self,
        state: &mut Option<Self::WaitState>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>>;

    /// The future that polled [`poll_lock`](AsyncConcreteLock::poll_lock) (or
    /// [`poll_try_lock`](AsyncConcreteLock::poll_try_lock)) and got `Pending` was dropped, or a
    /// timed wait ran out: forget the registered waker and anything in flight on the handle
    /// (the wait's state is dropped right after).
    ///
    /// The default does nothing, right for a backend whose wait lives in its
    /// [`WaitState`](AsyncConcreteLock::WaitState) only.
    fn cancel_wait(&mut self) {}

    /// One step of a try: `Ready(Err(AlreadyLocked))` if someone else holds the lock.
    ///
    /// The default returns [`ConcreteLock::try_lock`] at once, right for every backend whose
    /// try does not wait for anything (a flag, `flock(LOCK_NB)`, a compare-and-swap).
    fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        let _ = cx;
        Poll::Ready(self.try_lock())
    }

    /// One step of a release, for [`AsyncLockGuard::unlock`].
    ///
    /// The default returns [`ConcreteLock::try_unlock`] at once.
    fn poll_unlock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        let _ = cx;
        Poll::Ready(self.try_unlock())
    }

    /// Release the lock from a guard's `Drop`, which must not block and cannot report errors.
    ///
    /// The default calls [`ConcreteLock::try_unlock`] and ignores its error; a backend whose
    /// release takes a round trip starts it here and documents when it completes.
    fn release_on_drop(&mut self) {
        let _ = self.try_unlock();
    }
}

impl<C: AsyncConcreteLock + ?Sized> AsyncConcreteLock for Box<C> {
    type WaitState = C::WaitState;
    fn poll_lock(
        &mut self,
        state: &mut Option<Self::WaitState>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        (**self).poll_lock(state, cx)
    }
    fn cancel_wait(&mut self) {
        (**self).cancel_wait()
    }
    fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        (**self).poll_try_lock(cx)
    }
    fn poll_unlock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        (**self).poll_unlock(cx)
    }
    fn release_on_drop(&mut self) {
        (**self).release_on_drop()
    }
}

/// An object-safe [`AsyncConcreteLock`], for a lock whose backend is chosen at run time:
/// `Box<dyn DynAsyncLock + Send>` has `lock_async().await` and every method of
/// [`AsyncLockExt`].
///
/// Implemented for every [`AsyncConcreteLock`] whose wait state is `'static` (every backend's):
/// nothing to write. The wait state is kept boxed ([`ErasedWait`], one allocation per wait);
/// each method forwards to the backend's, so cancel-safety and promptness are the backend's.
///
/// ```
/// # use simplelock_core::{AsyncLockExt, DynAsyncLock, SimpleLockResult};
/// async fn rebuild(lock: &mut Box<dyn DynAsyncLock + Send>) -> SimpleLockResult<()> {
///     let guard = lock.lock_async().await?;
///     // ... the critical section ...
///     guard.unlock().await
/// }
/// ```
pub trait DynAsyncLock: ConcreteLock {
    /// [`AsyncConcreteLock::poll_lock`], with the wait state boxed.
    fn poll_lock_dyn(
        &mut self,
        state: &mut Option<ErasedWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>>;
    /// [`AsyncConcreteLock::cancel_wait`].
    fn cancel_wait_dyn(&mut self);
    /// [`AsyncConcreteLock::poll_try_lock`].
    fn poll_try_lock_dyn(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>>;
    /// [`AsyncConcreteLock::poll_unlock`].
    fn poll_unlock_dyn(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>>;
    /// [`AsyncConcreteLock::release_on_drop`].
    fn release_on_drop_dyn(&mut self);
}

/// The wait state of a [`DynAsyncLock`]'s wait: the backend's, boxed.
pub struct ErasedWait(Box<dyn Any + Send>);

impl fmt::Debug for ErasedWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ErasedWait")
    }
}

impl<L: AsyncConcreteLock> DynAsyncLock for L
where
    L::WaitState: 'static,
{
    fn poll_lock_dyn(
        &mut self,
        state: &mut Option<ErasedWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        let erased = state.get_or_insert_with(|| ErasedWait(Box::new(None::<L::WaitState>)));
        match erased.0.downcast_mut::<Option<L::WaitState>>() {
            Some(typed) => self.poll_lock(typed, cx),
            // Only this impl makes the state, for this lock's wait.
            None => unreachable!("the wait state of another lock type"),
        }
    }
    fn cancel_wait_dyn(&mut self) {
        self.cancel_wait();
    }
    fn poll_try_lock_dyn(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        self.poll_try_lock(cx)
    }
    fn poll_unlock_dyn(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        self.poll_unlock(cx)
    }
    fn release_on_drop_dyn(&mut self) {
        self.release_on_drop();
    }
}

/// Forwards to the object-safe methods; a `Box` of it forwards here (`Box<C>`'s impl).
macro_rules! async_for_dyn {
    ($($dyn:ty),*) => {$(
        impl AsyncConcreteLock for $dyn {
            type WaitState = ErasedWait;
            fn poll_lock(
                &mut self,
                state: &mut Option<ErasedWait>,
                cx: &mut Context<'_>,
            ) -> Poll<SimpleLockResult<()>> {
                self.poll_lock_dyn(state, cx)
            }
            fn cancel_wait(&mut self) {
                self.cancel_wait_dyn()
            }
            fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
                self.poll_try_lock_dyn(cx)
            }
            fn poll_unlock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
                self.poll_unlock_dyn(cx)
            }
            fn release_on_drop(&mut self) {
                self.release_on_drop_dyn()
            }
        }
    )*};
}
async_for_dyn!(dyn DynAsyncLock, dyn DynAsyncLock + Send);

/// The async methods of every [`AsyncConcreteLock`]: acquire and get an [`AsyncLockGuard`].
///
/// ```
/// # use simplelock_core::{AsyncConcreteLock, AsyncLockExt, SimpleLockResult};
/// async fn rebuild(lock: &mut impl AsyncConcreteLock) -> SimpleLockResult<()> {
///     let guard = lock.lock_async().await?; // waits without blocking the runtime
///     // ... the critical section ...
///     guard.unlock().await // or drop it: that releases too, without reporting errors
/// }
/// ```
pub trait AsyncLockExt: AsyncConcreteLock {
    /// Acquire the lock, waiting as long as it takes, without blocking the thread.
    ///
    /// Cancel-safe: dropping the future at any point leaves the lock as it was (see
    /// [`AsyncConcreteLock`], "Cancel-safety").
    ///
    /// # Errors
    /// Those of [`ConcreteLock::hang_lock`].
    fn lock_async(&mut self) -> Acquire<'_, Self> {
        Acquire::new(self, Mode::Wait)
    }

    /// Acquire the lock if nobody else holds it, or fail.
    ///
    /// # Errors
    /// Those of [`ConcreteLock::try_lock`]: [`SimpleLockError::AlreadyLocked`] if someone else
    /// holds it.
    fn try_lock_async(&mut self) -> Acquire<'_, Self> {
        Acquire::new(self, Mode::Try)
    }

    /// Acquire the lock, waiting at most `timeout`, measured by `sleep`: a future of the
    /// caller's runtime that completes after `timeout` (`tokio::time::sleep(timeout)`;
    /// `simplelock`'s `tokio` feature has `lock_timeout(timeout)`, which passes it).
    ///
    /// When `sleep` completes, the wait is cancelled and the lock tried once more, so a release
    /// right at the deadline is not lost.
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] with `timeout` and the last holder seen, and those of
    /// [`lock_async`](AsyncLockExt::lock_async).
    fn lock_timeout_with<S: Future<Output = ()>>(
        &mut self,
        timeout: Duration,
        sleep: S,
    ) -> AcquireWithin<'_, Self, S> {
        AcquireWithin {
            inner: Acquire::new(self, Mode::Wait),
            sleep: Box::pin(sleep),
            timeout,
        }
    }
}

impl<L: AsyncConcreteLock + ?Sized> AsyncLockExt for L {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Wait,
    Try,
}

/// The future of [`AsyncLockExt::lock_async`] and [`AsyncLockExt::try_lock_async`]: an
/// [`AsyncLockGuard`] once the lock is acquired.
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a, L: AsyncConcreteLock + ?Sized> {
    /// Until the future completes.
    lock: Option<&'a mut L>,
    mode: Mode,
    /// The backend returned `Pending` at least once: a drop must cancel the wait.
    waiting: bool,
    state: Option<L::WaitState>,
}

impl<'a, L: AsyncConcreteLock + ?Sized> Acquire<'a, L> {
    fn new(lock: &'a mut L, mode: Mode) -> Self {
        Acquire {
            lock: Some(lock),
            mode,
            waiting: false,
            state: None,
        }
    }
}

/// The wait's state is never pinned (the backend gets it as `&mut`; a timer that must be
/// pinned is boxed by the backend), so the future can move between polls.
impl<L: AsyncConcreteLock + ?Sized> Unpin for Acquire<'_, L> {}

impl<'a, L: AsyncConcreteLock + ?Sized> Future for Acquire<'a, L> {
    type Output = SimpleLockResult<AsyncLockGuard<'a, L>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(lock) = this.lock.as_mut() else {
            panic!("an Acquire future was polled after it completed");
        };
        let step = match this.mode {
            Mode::Wait => lock.poll_lock(&mut this.state, cx),
            Mode::Try => lock.poll_try_lock(cx),
        };
        match step {
            Poll::Pending => {
                self.waiting = true;
                Poll::Pending
            }
            Poll::Ready(result) => {
                self.waiting = false;
                self.state = None;
                let lock = self.lock.take().expect("checked above");
                Poll::Ready(result.map(|()| AsyncLockGuard { lock: Some(lock) }))
            }
        }
    }
}

impl<L: AsyncConcreteLock + ?Sized> Drop for Acquire<'_, L> {
    fn drop(&mut self) {
        if let (true, Some(lock)) = (self.waiting, self.lock.as_mut()) {
            lock.cancel_wait();
        }
        self.state = None;
    }
}

impl<L: AsyncConcreteLock + ?Sized> fmt::Debug for Acquire<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("mode", &self.mode)
            .field("waiting", &self.waiting)
            .field("done", &self.lock.is_none())
            .finish()
    }
}

/// The future of [`AsyncLockExt::lock_timeout_with`].
#[must_use = "futures do nothing unless awaited"]
pub struct AcquireWithin<'a, L: AsyncConcreteLock + ?Sized, S> {
    inner: Acquire<'a, L>,
    /// Boxed so that the future is `Unpin` whatever the timer is (the core has no unsafe
    /// pin projection); one allocation per timed wait.
    sleep: Pin<Box<S>>,
    timeout: Duration,
}

impl<'a, L: AsyncConcreteLock + ?Sized, S: Future<Output = ()>> Future for AcquireWithin<'a, L, S> {
    type Output = SimpleLockResult<AsyncLockGuard<'a, L>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.inner.mode == Mode::Wait {
            if let Poll::Ready(done) = Pin::new(&mut self.inner).poll(cx) {
                return Poll::Ready(done);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Out of time: end the wait, then one last try (which may itself be pending, for a
            // backend whose try takes a round trip).
            if let Some(lock) = self.inner.lock.as_mut() {
                lock.cancel_wait();
            }
            self.inner.state = None;
            self.inner.waiting = false;
            self.inner.mode = Mode::Try;
        }
        let timeout = self.timeout;
        Pin::new(&mut self.inner).poll(cx).map(|done| {
            done.map_err(|err| match err {
                SimpleLockError::AlreadyLocked { name, holder } => {
                    SimpleLockError::timed_out(name, timeout, holder)
                }
                other => other,
            })
        })
    }
}

impl<L: AsyncConcreteLock + ?Sized, S> fmt::Debug for AcquireWithin<'_, L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireWithin")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Holds a lock taken from async code; dropping it releases the lock without blocking
/// ([`AsyncConcreteLock::release_on_drop`]), [`unlock`](AsyncLockGuard::unlock) releases it
/// and reports errors.
#[must_use = "if unused the lock will immediately unlock"]
pub struct AsyncLockGuard<'a, L: AsyncConcreteLock + ?Sized> {
    /// `None` once released by `unlock`.
    lock: Option<&'a mut L>,
}

impl<L: AsyncConcreteLock + ?Sized> AsyncLockGuard<'_, L> {
    /// Release the lock and report what went wrong.
    ///
    /// If this future is dropped before it completes, the guard's drop releases the lock.
    ///
    /// # Errors
    /// Those of [`ConcreteLock::try_unlock`] (or the backend's
    /// [`poll_unlock`](AsyncConcreteLock::poll_unlock)).
    pub async fn unlock(mut self) -> SimpleLockResult<()> {
        let result = {
            let lock = self.lock.as_mut().expect("held until unlock");
            poll_fn(|cx| lock.poll_unlock(cx)).await
        };
        // Released, or the release failed: either way, the drop must not try again (the
        // blocking guard does the same: one release per guard).
        self.lock = None;
        result
    }

    /// How the previous holder let go of the lock.
    pub fn previous_holder(&self) -> PreviousHolder {
        self.lock().previous_holder()
    }

    /// Whether the previous holder died inside its critical section, where the backend can
    /// tell: repair what it left half done.
    pub fn previous_holder_died(&self) -> bool {
        self.previous_holder().died()
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &L {
        self.lock.as_deref().expect("held until unlock")
    }
}

impl<L: AsyncConcreteLock + ?Sized> Drop for AsyncLockGuard<'_, L> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.release_on_drop();
        }
    }
}

impl<L: AsyncConcreteLock + ?Sized> fmt::Debug for AsyncLockGuard<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLockGuard")
            .field("held", &self.lock.is_some())
            .finish()
    }
}
