//! The facade's [`LockBuilder`]: the core builder plus [`build`](LockBuilder::build), which
//! opens the lock with the best enabled backend.

use std::time::Duration;

use simplelock_core::{BuiltLock, ConcreteLock, Lock, SimpleLockResult};

use crate::default_backend;

/// Configures how a [`Lock`] behaves, then builds it on the best enabled backend
/// ([`build`](LockBuilder::build)) or wraps a backend handle you made
/// ([`wrap`](LockBuilder::wrap), [`apply`](LockBuilder::apply)).
///
/// By default `lock()` waits as long as it takes and `unlock()` reports its errors. Of the three
/// ways to acquire — wait (default), try once ([`with_try_lock`](LockBuilder::with_try_lock)),
/// wait at most a timeout ([`with_timeout`](LockBuilder::with_timeout)) — the last one
/// configured wins.
///
/// This is [`simplelock_core::LockBuilder`] with `build` added, so that code written for
/// simplelock 0.4 (`LockBuilder::default().with_try_lock().build(name)`) keeps compiling with
/// nothing more than `use simplelock::LockBuilder`. The two convert into each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockBuilder(simplelock_core::LockBuilder);

impl LockBuilder {
    /// Make `lock()` fail at once with `AlreadyLocked` instead of waiting.
    pub fn enable_try_lock(&mut self) {
        self.0.enable_try_lock();
    }

    /// Make `lock()` fail at once with `AlreadyLocked` instead of waiting.
    #[must_use]
    pub fn with_try_lock(self) -> Self {
        LockBuilder(self.0.with_try_lock())
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    pub fn enable_silent_unlock(&mut self) {
        self.0.enable_silent_unlock();
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    #[must_use]
    pub fn with_silent_unlock(self) -> Self {
        LockBuilder(self.0.with_silent_unlock())
    }

    /// Make `lock()` wait at most `timeout`, then fail with `TimedOut`.
    pub fn enable_timeout(&mut self, timeout: Duration) {
        self.0.enable_timeout(timeout);
    }

    /// Make `lock()` wait at most `timeout`, then fail with `TimedOut`.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        LockBuilder(self.0.with_timeout(timeout))
    }

    /// Whether `lock()` fails at once instead of waiting.
    pub fn is_try_lock(&self) -> bool {
        self.0.is_try_lock()
    }

    /// Whether `unlock()` swallows its errors.
    pub fn is_silent_unlock(&self) -> bool {
        self.0.is_silent_unlock()
    }

    /// How long `lock()` waits at most, if a timeout is configured.
    pub fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }

    /// Wrap a boxed backend handle in a [`Lock`] configured like this builder.
    ///
    /// # Errors
    /// None today; the `Result` is part of the 0.4 API.
    pub fn wrap(&self, concrete: Box<dyn ConcreteLock>) -> SimpleLockResult<Box<dyn Lock>> {
        self.0.wrap(concrete)
    }

    /// Wrap a backend handle in a [`Lock`] configured like this builder, keeping its type.
    pub fn apply<C: ConcreteLock>(&self, concrete: C) -> BuiltLock<C> {
        self.0.apply(concrete)
    }

    /// The lock called `name` on the best enabled backend (see [`default_backend`]),
    /// configured like this builder.
    ///
    /// # Errors
    /// [`SimpleLockError::NoLockEnabled`](crate::SimpleLockError::NoLockEnabled) if no backend
    /// feature is on, and the backend's errors for a bad name.
    pub fn build(&self, name: impl AsRef<str>) -> SimpleLockResult<Box<dyn Lock>> {
        Ok(Box::new(self.build_send(name)?))
    }

    /// Like [`build`](LockBuilder::build), but the lock can move to another thread.
    ///
    /// # Errors
    /// Those of [`build`](LockBuilder::build).
    pub fn build_send(
        &self,
        name: impl AsRef<str>,
    ) -> SimpleLockResult<BuiltLock<Box<dyn ConcreteLock + Send>>> {
        Ok(self.apply(default_backend(name.as_ref())?))
    }
}

impl From<simplelock_core::LockBuilder> for LockBuilder {
    fn from(core: simplelock_core::LockBuilder) -> Self {
        LockBuilder(core)
    }
}

impl From<LockBuilder> for simplelock_core::LockBuilder {
    fn from(facade: LockBuilder) -> Self {
        facade.0
    }
}
