//! [`LockBuilderExt`]: [`build`](LockBuilderExt::build) for the core's [`LockBuilder`], which
//! opens the lock with the best enabled backend.

use simplelock_core::{BuiltLock, ConcreteLock, Lock, LockBuilder, SimpleLockResult};

use crate::default_backend;

/// What the facade adds to [`LockBuilder`]: open the lock called `name` on the best enabled
/// backend, configured like the builder.
///
/// The builder itself is the core's: its configuration (`with_try_lock`, `with_timeout`,
/// `with_wait`, ...) is written once, there, and this trait adds only what needs the backends
/// (rand's `RngExt` pattern). `use simplelock::*;` brings it in scope, so 0.4's
/// `LockBuilder::default().with_try_lock().build(name)` compiles as it did; code that imports
/// items one by one adds `LockBuilderExt` to the list.
///
/// ```
/// use simplelock::*;
///
/// let lock = LockBuilder::default().with_try_lock().build("x");
/// # #[cfg(not(any(feature = "file", feature = "sema", feature = "fake")))]
/// # assert!(matches!(lock, Err(SimpleLockError::NoLockEnabled)));
/// ```
pub trait LockBuilderExt {
    /// The lock called `name` on the best enabled backend (see [`default_backend`]),
    /// configured like this builder.
    ///
    /// # Errors
    /// [`SimpleLockError::NoLockEnabled`](crate::SimpleLockError::NoLockEnabled) if no backend
    /// feature is on, and the backend's errors for a bad name.
    fn build(&self, name: impl AsRef<str>) -> SimpleLockResult<Box<dyn Lock>>;

    /// Like [`build`](LockBuilderExt::build), but the lock can move to another thread.
    ///
    /// # Errors
    /// Those of [`build`](LockBuilderExt::build).
    fn build_send(
        &self,
        name: impl AsRef<str>,
    ) -> SimpleLockResult<BuiltLock<Box<dyn ConcreteLock + Send>>>;
}

impl LockBuilderExt for LockBuilder {
    fn build(&self, name: impl AsRef<str>) -> SimpleLockResult<Box<dyn Lock>> {
        Ok(Box::new(self.build_send(name)?))
    }

    fn build_send(
        &self,
        name: impl AsRef<str>,
    ) -> SimpleLockResult<BuiltLock<Box<dyn ConcreteLock + Send>>> {
        Ok(self.apply(default_backend(name.as_ref())?))
    }
}
