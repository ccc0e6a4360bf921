//! The README example of simplelock 0.4, verbatim: it must keep compiling and, with any backend
//! enabled, running. Without a backend, `default_lock` must say so.

#[cfg(any(feature = "file", feature = "sema", feature = "fake"))]
mod example {
    use simplelock::*;

    const MY_APP_NAME: &str = "my_app_name";

    fn main() -> SimpleLockResult<()> {
        let mut lock = default_lock(MY_APP_NAME)?;
        let result = lock_until_finished(&mut lock, || {
            // some critical code
            42
        })?;
        assert_eq!(result, 42);

        let mut lock = LockBuilder::default()
            .with_try_lock() // return at once if the lock is taken
            .with_silent_unlock() // do not report unlock failures
            .build(MY_APP_NAME)?;
        lock.lock()?;
        lock.unlock()?;
        Ok(())
    }

    #[test]
    fn readme_example_runs() {
        main().unwrap();
    }
}

#[cfg(not(any(feature = "file", feature = "sema", feature = "fake")))]
#[test]
fn without_a_backend_default_lock_is_no_lock_enabled() {
    use simplelock::{LockBuilder, LockBuilderExt, SimpleLockError, default_lock};
    assert!(matches!(
        default_lock("my_app_name"),
        Err(SimpleLockError::NoLockEnabled)
    ));
    assert!(matches!(
        LockBuilder::default().with_try_lock().build("my_app_name"),
        Err(SimpleLockError::NoLockEnabled)
    ));
}
