//! [`LockGuard`], which releases a lock when dropped, and [`lock_until_finished`].

use std::fmt;
use std::panic::{self, UnwindSafe};

use crate::{Lock, PreviousHolder, SimpleLockResult};

/// Holds a lock until it is dropped or [`unlock`](LockGuard::unlock)ed.
///
/// Get one from [`Lock::guard`] or [`LockGuard::new`]. Dropping the guard releases the lock and
/// ignores a failure to do so, because `Drop` cannot report it: call
/// [`unlock`](LockGuard::unlock) to see the error.
///
/// ```
/// use simplelock_core::{Lock, LockBuilder, LockStatus, SimpleLockResult};
/// # use simplelock_core::{ConcreteLock, SimpleLockError};
/// # #[derive(Default)] struct Flag(bool);
/// # impl ConcreteLock for Flag {
/// #     fn status(&self) -> SimpleLockResult<LockStatus> {
/// #         Ok(if self.0 { LockStatus::Mine } else { LockStatus::Open })
/// #     }
/// #     fn try_lock(&mut self) -> SimpleLockResult<()> {
/// #         if self.0 { return Err(SimpleLockError::already_held("flag")) }
/// #         self.0 = true; Ok(())
/// #     }
/// #     fn hang_lock(&mut self) -> SimpleLockResult<()> { self.try_lock() }
/// #     fn try_unlock(&mut self) -> SimpleLockResult<()> {
/// #         if !self.0 { return Err(SimpleLockError::not_held("flag")) }
/// #         self.0 = false; Ok(())
/// #     }
/// # }
///
/// fn update(lock: &mut impl Lock) -> SimpleLockResult<()> {
///     let guard = lock.guard()?;
///     if guard.previous_holder_died() {
///         // repair what the dead holder left half done
///     }
///     // ... the critical section; a `?` or a panic here still releases the lock ...
///     guard.unlock() // or let it drop
/// }
///
/// let mut lock = LockBuilder::default().apply(Flag::default());
/// update(&mut lock)?;
/// assert_eq!(lock.status()?, LockStatus::Open);
/// # Ok::<(), simplelock_core::SimpleLockError>(())
/// ```
#[must_use = "if unused the lock will immediately unlock"]
pub struct LockGuard<'a, L: Lock + ?Sized> {
    /// `None` once released by [`LockGuard::unlock`].
    lock: Option<&'a mut L>,
}

impl<'a, L: Lock + ?Sized> LockGuard<'a, L> {
    /// Acquire `lock` (as it is configured to: wait, try or time out) and guard it.
    ///
    /// # Errors
    /// Those of [`Lock::lock`]; then there is no guard and nothing to release.
    pub fn new(lock: &'a mut L) -> SimpleLockResult<Self> {
        lock.lock()?;
        Ok(LockGuard { lock: Some(lock) })
    }

    /// Release the lock now and report whether that worked.
    ///
    /// # Errors
    /// Those of [`Lock::unlock`].
    pub fn unlock(mut self) -> SimpleLockResult<()> {
        match self.lock.take() {
            Some(lock) => lock.unlock(),
            None => Ok(()),
        }
    }

    /// How the previous holder let go of the lock (see [`PreviousHolder`]).
    pub fn previous_holder(&self) -> PreviousHolder {
        self.lock
            .as_ref()
            .map_or(PreviousHolder::Unknown, |lock| lock.previous_holder())
    }

    /// `true` if the backend knows that the previous holder died while holding the lock, so
    /// what it protected may be half done.
    pub fn previous_holder_died(&self) -> bool {
        self.previous_holder().died()
    }

    /// The guarded lock.
    pub fn lock(&self) -> &L {
        self.lock
            .as_deref()
            .expect("the lock is only taken out by `unlock`, which consumes the guard")
    }
}

impl<L: Lock + ?Sized> Drop for LockGuard<'_, L> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            // Drop cannot report the error; `LockGuard::unlock` is there for callers who care.
            let _ = lock.unlock();
        }
    }
}

impl<L: Lock + ?Sized> fmt::Debug for LockGuard<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("previous_holder", &self.previous_holder())
            .finish_non_exhaustive()
    }
}

/// Lock, run `op`, unlock, and return what `op` returned.
///
/// If `op` panics, the lock is released and then the panic continues.
///
/// # Errors
/// Those of [`Lock::lock`] (then `op` does not run) and of [`Lock::unlock`] (then `op` ran and
/// its value is lost — configure the lock with silent unlock if you would rather keep it).
///
/// ```
/// use simplelock_core::{lock_until_finished, Lock, LockBuilder, LockStatus};
/// # use simplelock_core::{ConcreteLock, SimpleLockError, SimpleLockResult};
/// # #[derive(Default)] struct Flag(bool);
/// # impl ConcreteLock for Flag {
/// #     fn status(&self) -> SimpleLockResult<LockStatus> {
/// #         Ok(if self.0 { LockStatus::Mine } else { LockStatus::Open })
/// #     }
/// #     fn try_lock(&mut self) -> SimpleLockResult<()> {
/// #         if self.0 { return Err(SimpleLockError::already_held("flag")) }
/// #         self.0 = true; Ok(())
/// #     }
/// #     fn hang_lock(&mut self) -> SimpleLockResult<()> { self.try_lock() }
/// #     fn try_unlock(&mut self) -> SimpleLockResult<()> {
/// #         if !self.0 { return Err(SimpleLockError::not_held("flag")) }
/// #         self.0 = false; Ok(())
/// #     }
/// # }
/// let mut lock = LockBuilder::default().apply(Flag::default());
/// let answer = lock_until_finished(&mut lock, || 6 * 7)?;
/// assert_eq!(answer, 42);
///
/// let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     lock_until_finished(&mut lock, || panic!("boom"))
/// }));
/// assert!(panicked.is_err());
/// assert_eq!(lock.status()?, LockStatus::Open); // released before the panic went on
/// # Ok::<(), SimpleLockError>(())
/// ```
pub fn lock_until_finished<R>(
    lock: &mut impl Lock,
    op: impl FnOnce() -> R + UnwindSafe,
) -> SimpleLockResult<R> {
    let guard = lock.guard()?;
    match panic::catch_unwind(op) {
        Ok(value) => guard.unlock().map(|()| value),
        Err(payload) => {
            drop(guard);
            panic::resume_unwind(payload)
        }
    }
}
