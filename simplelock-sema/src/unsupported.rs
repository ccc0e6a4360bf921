//! Platforms other than Linux: [`SemaphoreLock`](crate::SemaphoreLock) exists with its whole
//! API, so that code naming it compiles everywhere, but no handle can be made: opening checks
//! the name and then fails with an error whose [`kind`](SimpleLockError::kind) is
//! [`io::ErrorKind::Unsupported`].
//!
//! Linux compiles this module too, in tests, so that it is checked.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
};

use crate::name;

/// The handle behind [`SemaphoreLock`](crate::SemaphoreLock) on this platform: none can be
/// made (it needs Linux), so every method that would use one is unreachable.
#[derive(Debug)]
pub(crate) struct Handle {
    never: Infallible,
}

fn unsupported(name: &str) -> SimpleLockError {
    SimpleLockError::unknown(
        name,
        "SemaphoreLock needs Linux (futexes, /proc and POSIX shared memory)",
        Some(Box::new(io::Error::from(io::ErrorKind::Unsupported))),
    )
}

impl Handle {
    /// Checks the name, then fails: this platform is not supported.
    pub(crate) fn open(name: String, _mode: u32, _owner: Option<u32>) -> SimpleLockResult<Handle> {
        let name = name::check(&name)?;
        Err(unsupported(&name.canonical))
    }

    pub(crate) fn name(&self) -> String {
        match self.never {}
    }

    /// Fails as [`open`](Handle::open) does.
    pub(crate) fn remove(name: impl Into<String>) -> SimpleLockResult<bool> {
        Handle::open(name.into(), crate::DEFAULT_MODE, None).map(|_| false)
    }

    /// Fails as [`open`](Handle::open) does.
    pub(crate) fn remove_within(
        name: impl Into<String>,
        _timeout: Duration,
    ) -> SimpleLockResult<bool> {
        Handle::remove(name)
    }

    /// Fails as [`open`](Handle::open) does.
    pub(crate) fn open_existing(name: impl Into<String>) -> SimpleLockResult<Option<Handle>> {
        Handle::open(name.into(), crate::DEFAULT_MODE, None).map(Some)
    }

    pub(crate) fn unlink(self) -> SimpleLockResult<()> {
        match self.never {}
    }
}

impl ConcreteLock for Handle {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        match self.never {}
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        match self.never {}
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        match self.never {}
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        match self.never {}
    }
    fn timed_lock(&mut self, _timeout: Duration) -> SimpleLockResult<()> {
        match self.never {}
    }
    fn previous_holder(&self) -> PreviousHolder {
        match self.never {}
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_fails_as_unsupported_after_checking_the_name() {
        let err = Handle::open("fine".into(), 0o600, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert_eq!(err.name(), Some("/fine"));
        for err in [
            Handle::remove("fine").unwrap_err(),
            Handle::remove_within("fine", Duration::ZERO).unwrap_err(),
            Handle::open_existing("fine").unwrap_err(),
        ] {
            assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        }
        assert!(matches!(
            Handle::open("/a/b".into(), 0o600, None),
            Err(SimpleLockError::InvalidName { .. })
        ));
    }
}
