#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;

pub use builder::LockBuilder;
// The core's builder is replaced by the facade's, which adds `build`; everything else is the core.
pub use simplelock_core::{
    BoxError, BuiltLock, ConcreteLock, Holder, Lock, LockGuard, LockStatus, PreviousHolder,
    SimpleLockError, SimpleLockResult, lock_until_finished,
};

#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use simplelock_fake::FakeLock;

/// The lock called `name` on the best enabled backend, waiting in `lock()` until it is acquired
/// and reporting unlock errors: `LockBuilder::default().build(name)`.
///
/// # Errors
/// [`SimpleLockError::NoLockEnabled`] if no backend feature is on, and the backend's errors for
/// a bad name.
pub fn default_lock(name: impl AsRef<str>) -> SimpleLockResult<Box<dyn Lock>> {
    LockBuilder::default().build(name)
}

/// A handle on the lock called `name` from the best enabled backend, before any configuration:
/// the file backend (feature `file`), else the semaphore backend (`sema`), else the fake (`fake`).
///
/// # Errors
/// [`SimpleLockError::NoLockEnabled`] if no backend feature is on, and the backend's errors for
/// a bad name.
pub fn default_backend(name: &str) -> SimpleLockResult<Box<dyn ConcreteLock + Send>> {
    #[cfg(feature = "fake")]
    {
        Ok(Box::new(FakeLock::named(name)?))
    }
    #[cfg(not(feature = "fake"))]
    {
        let _ = name;
        Err(SimpleLockError::NoLockEnabled)
    }
}
