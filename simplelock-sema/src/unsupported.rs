//! Platforms other than Linux: the type exists, so that code naming it compiles everywhere, but
//! no handle can be made: [`SemaphoreLock::new`] checks the name and then fails with an error
//! whose [`kind`](SimpleLockError::kind) is [`io::ErrorKind::Unsupported`].
//!
//! Linux compiles this module too, in tests, so that it is checked.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
};

use crate::name;

/// A named inter-process lock; on this platform it cannot be opened (it needs Linux).
#[derive(Debug)]
pub struct SemaphoreLock {
    never: Infallible,
}

fn unsupported(name: &str) -> SimpleLockError {
    SimpleLockError::unknown(
        name,
        "SemaphoreLock needs Linux (futexes, /proc and POSIX shared memory)",
        Some(Box::new(io::Error::from(io::ErrorKind::Unsupported))),
    )
}

impl SemaphoreLock {
    /// Checks the name, then fails: this platform is not supported.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for a bad name, else an error of kind
    /// [`io::ErrorKind::Unsupported`].
    pub fn new(name: impl Into<String>) -> SimpleLockResult<SemaphoreLock> {
        SemaphoreLock::with_mode(name, crate::DEFAULT_MODE)
    }

    /// As [`new`](SemaphoreLock::new).
    ///
    /// # Errors
    /// As [`new`](SemaphoreLock::new).
    pub fn with_mode(name: impl Into<String>, _mode: u32) -> SimpleLockResult<SemaphoreLock> {
        let name = name::check(&name.into())?;
        Err(unsupported(&name.canonical))
    }

    /// The name of the lock.
    pub fn name(&self) -> String {
        match self.never {}
    }

    /// Fails: this platform is not supported.
    ///
    /// # Errors
    /// As [`new`](SemaphoreLock::new).
    pub fn remove(name: impl Into<String>) -> SimpleLockResult<bool> {
        SemaphoreLock::new(name).map(|_| false)
    }

    /// Deletes the lock's object.
    ///
    /// # Errors
    /// None: no handle exists on this platform.
    pub fn unlink(self) -> SimpleLockResult<()> {
        match self.never {}
    }
}

impl ConcreteLock for SemaphoreLock {
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
        let err = SemaphoreLock::new("fine").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert_eq!(err.name(), Some("/fine"));
        assert!(err.to_string().contains("needs Linux"), "{err}");
        let err = SemaphoreLock::remove("fine").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(matches!(
            SemaphoreLock::new("/a/b"),
            Err(SimpleLockError::InvalidName { .. })
        ));
    }
}
