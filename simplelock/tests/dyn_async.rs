//! `Box<dyn DynAsyncLock + Send>`: the async waits through a backend chosen at run time pass
//! the core's async conformance checks (on FakeLock: the forwarding is the same for every
//! backend), and `default_async_lock` names the same lock as `default_lock`.

#[cfg(feature = "fake")]
mod fake {
    use simplelock::{DynAsyncLock, FakeLock, SimpleLockResult};

    fn open(key: &str) -> SimpleLockResult<Box<dyn DynAsyncLock + Send>> {
        Ok(Box::new(FakeLock::named(&format!("dyn-async-{key}"))?))
    }

    simplelock_core::conformance_tests!(
        open,
        async_waits(|future| simplelock_core::conformance::block_on(future)),
    );
}

/// The async handle and the blocking one of `default_lock` are the same lock.
#[cfg(any(
    all(feature = "file", feature = "tokio", unix),
    all(not(feature = "file"), any(feature = "sema", feature = "fake"))
))]
#[test]
fn default_async_lock_is_default_locks_lock() -> simplelock::SimpleLockResult<()> {
    use simplelock::{AsyncLockExt, SimpleLockError, default_async_lock, default_lock};
    let name = format!("dyn-async-default-{}", std::process::id());
    let mut blocking = default_lock(&name)?;
    let mut async_lock = default_async_lock(&name)?;
    blocking.lock()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        match async_lock.try_lock_async().await.map(drop) {
            Err(SimpleLockError::AlreadyLocked { .. }) => {}
            other => panic!("the async handle took a lock default_lock holds: {other:?}"),
        }
    });
    blocking.unlock()?;
    rt.block_on(async { async_lock.lock_async().await?.unlock().await })?;
    #[cfg(all(feature = "sema", not(feature = "file")))]
    simplelock::SemaphoreLock::remove(&name)?;
    Ok(())
}
