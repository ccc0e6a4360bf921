#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
pub mod compat_0_4;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
mod tokio;

pub use builder::LockBuilderExt;
// Everything of the core; `LockBuilderExt` adds `build` to its builder.
pub use simplelock_core::{
    Backoff, BoxError, BuiltLock, ConcreteLock, Holder, Lock, LockBuilder, LockGuard, LockStatus,
    PermitState, Permits, PreviousHolder, SimpleLockError, SimpleLockResult, Wait,
    lock_until_finished, permits,
};
// The async vocabulary (no runtime needed; feature `tokio` adds `TokioLockExt`).
pub use simplelock_core::{
    Acquire, AcquireWithin, AsyncConcreteLock, AsyncLockExt, AsyncLockGuard, DynAsyncLock,
    ErasedWait,
};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use tokio::TokioLockExt;

#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use simplelock_fake::{FakeLock, FakePermits};
#[cfg(all(feature = "file", any(target_os = "linux", target_os = "android")))]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use simplelock_file::FilePermits;
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use simplelock_file::{FileLock, lock_dir};
/// The PostgreSQL backend: [`PostgresLock`] and its builder, fencing tokens, the lost-lock
/// signal. Never chosen by [`default_lock`], which stays local. Unix only: on Windows the
/// feature adds nothing (simplelock-postgres does not build there).
#[cfg(all(feature = "postgres", unix))]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use simplelock_postgres::{self as postgres, PostgresLock, PostgresPermits};
#[cfg(feature = "sema")]
#[cfg_attr(docsrs, doc(cfg(feature = "sema")))]
pub use simplelock_sema::SemaphoreLock;
#[cfg(all(feature = "sema", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(feature = "sema")))]
pub use simplelock_sema::SemaphorePermits;

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
///
/// 1. feature `file`: [`FileLock::named`]`(name)`, the file `<name>.lock` in the [lock
///    folder](lock_dir) (`$SIMPLELOCK_DIR`, else `/run/lock/simplelock-<uid>`: the same for
///    every process of the user whatever its environment);
/// 2. else feature `sema`: [`SemaphoreLock::named`]`(name)`;
/// 3. else feature `fake`: [`FakeLock::named`]`(name)`, shared by the whole process.
///
/// # Errors
/// [`SimpleLockError::NoLockEnabled`] if no backend feature is on, and the backend's errors for
/// a bad name.
pub fn default_backend(name: &str) -> SimpleLockResult<Box<dyn ConcreteLock + Send>> {
    best_backend!(name)
}

/// The best enabled backend's handle on `name`, boxed as the caller's return type: one choice
/// for [`default_backend`] and [`default_async_lock`], so that a name means the same lock.
macro_rules! best_backend {
    ($name:expr) => {{
        #[cfg(feature = "file")]
        return Ok(Box::new(FileLock::named($name)?));
        #[cfg(all(feature = "sema", not(feature = "file")))]
        return Ok(Box::new(SemaphoreLock::named($name)?));
        #[cfg(all(feature = "fake", not(any(feature = "file", feature = "sema"))))]
        return Ok(Box::new(FakeLock::named($name)?));
        #[cfg(not(any(feature = "file", feature = "sema", feature = "fake")))]
        {
            let _ = $name;
            Err(SimpleLockError::NoLockEnabled)
        }
    }};
}
use best_backend;

/// The lock called `name` on the backend [`default_backend`] picks (so the same lock as
/// [`default_lock`]'s), as a boxed async lock: `lock_async().await`, `try_lock_async().await`,
/// timed waits and async guards through a backend chosen at build time.
///
/// There when the backend it picks has an async wait: always, except with feature `file`
/// without `tokio` (or off Unix), where `FileLock` has none.
///
/// ```
/// # #[cfg(feature = "fake")]
/// # {
/// use simplelock::{AsyncLockExt, default_async_lock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mut lock = default_async_lock("nightly-report")?;
/// let guard = lock.lock_async().await?; // waits without blocking the thread
/// // ... the critical section ...
/// guard.unlock().await?;
/// # Ok::<(), simplelock::SimpleLockError>(())
/// # }).unwrap();
/// # }
/// ```
///
/// # Errors
/// Those of [`default_backend`].
#[cfg(any(all(feature = "file", feature = "tokio", unix), not(feature = "file")))]
pub fn default_async_lock(name: impl AsRef<str>) -> SimpleLockResult<Box<dyn DynAsyncLock + Send>> {
    best_backend!(name.as_ref())
}
