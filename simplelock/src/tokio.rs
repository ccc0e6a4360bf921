//! [`TokioLockExt`]: timed async waits on tokio's timer (feature `tokio`).
//!
//! The core's [`AsyncLockExt`] takes any timer (`lock_timeout_with(timeout, sleep)`); this
//! trait passes tokio's, and the feature turns on the backends' tokio glue (`FileLock`'s wait
//! on tokio's reactor). `SemaphoreLock` and `FakeLock` need no runtime for their async waits.

use std::time::Duration;

use ::tokio::time::{Sleep, sleep};
use simplelock_core::{AcquireWithin, AsyncConcreteLock, AsyncLockExt};

/// Timed async acquisition on tokio's timer, for every [`AsyncConcreteLock`].
///
/// ```
/// # #[cfg(feature = "fake")]
/// # {
/// use std::time::Duration;
/// use simplelock::{AsyncLockExt, ConcreteLock, FakeLock, SimpleLockError, TokioLockExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut holder = FakeLock::named("jobs")?;
/// let mut waiter = FakeLock::named("jobs")?;
/// let guard = holder.lock_async().await?;
/// let late = waiter.lock_timeout(Duration::from_millis(20)).await.map(drop);
/// assert!(matches!(late, Err(SimpleLockError::TimedOut { .. })));
/// drop(guard); // releases at once
/// let _guard = waiter.lock_timeout(Duration::from_secs(5)).await?;
/// # Ok::<(), SimpleLockError>(())
/// # }).unwrap();
/// # }
/// ```
pub trait TokioLockExt: AsyncConcreteLock {
    /// Acquire the lock, waiting at most `timeout` (measured by `tokio::time::sleep`); at the
    /// deadline the lock is tried once more.
    ///
    /// Cancel-safe, like [`AsyncLockExt::lock_async`].
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`](crate::SimpleLockError::TimedOut) with `timeout` and the
    /// last holder seen, and the errors of [`AsyncLockExt::lock_async`].
    ///
    /// # Panics
    /// Outside a tokio runtime with the time driver enabled.
    fn lock_timeout(&mut self, timeout: Duration) -> AcquireWithin<'_, Self, Sleep> {
        self.lock_timeout_with(timeout, sleep(timeout))
    }
}

impl<L: AsyncConcreteLock + ?Sized> TokioLockExt for L {}
