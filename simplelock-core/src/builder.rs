//! [`LockBuilder`]: turns a backend's [`ConcreteLock`] into a configured [`Lock`].

use std::time::Duration;

#[cfg(doc)]
use crate::SimpleLockError;
use crate::{ConcreteLock, Holder, Lock, LockStatus, PreviousHolder, SimpleLockResult, Wait};

/// Configures how a [`Lock`] behaves, then wraps a backend's [`ConcreteLock`] in it.
///
/// By default `lock()` waits as long as it takes and `unlock()` reports its errors. Of the
/// three ways to acquire — wait ([default](LockBuilder::default)), try once
/// ([`with_try_lock`](LockBuilder::with_try_lock)), wait at most a timeout
/// ([`with_timeout`](LockBuilder::with_timeout)), or any [`Wait`]
/// ([`with_wait`](LockBuilder::with_wait)) — the last one configured wins.
///
/// ```
/// use std::time::Duration;
/// use simplelock_core::LockBuilder;
///
/// let builder = LockBuilder::default()
///     .with_timeout(Duration::from_secs(5)) // give up after five seconds
///     .with_silent_unlock(); // do not report unlock failures
/// assert_eq!(builder.timeout(), Some(Duration::from_secs(5)));
/// ```
///
/// The `simplelock` facade adds `build(name)`, which picks the best enabled backend, with its
/// trait `LockBuilderExt` (in scope with `use simplelock::*;`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockBuilder {
    wait: Wait,
    silent_unlock: bool,
}

impl LockBuilder {
    /// Make `lock()` fail at once with [`SimpleLockError::AlreadyLocked`] instead of waiting.
    pub fn enable_try_lock(&mut self) {
        self.wait = Wait::Try;
    }

    /// Make `lock()` fail at once with [`SimpleLockError::AlreadyLocked`] instead of waiting.
    #[must_use]
    pub fn with_try_lock(mut self) -> Self {
        self.enable_try_lock();
        self
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    pub fn enable_silent_unlock(&mut self) {
        self.silent_unlock = true;
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    #[must_use]
    pub fn with_silent_unlock(mut self) -> Self {
        self.enable_silent_unlock();
        self
    }

    /// Make `lock()` wait at most `timeout`, then fail with [`SimpleLockError::TimedOut`].
    ///
    /// A timeout too long for the clock ([`Duration::MAX`]) waits as long as it takes.
    pub fn enable_timeout(&mut self, timeout: Duration) {
        self.wait = Wait::For(timeout);
    }

    /// Make `lock()` wait at most `timeout`, then fail with [`SimpleLockError::TimedOut`].
    ///
    /// A timeout too long for the clock ([`Duration::MAX`]) waits as long as it takes.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.enable_timeout(timeout);
        self
    }

    /// Make `lock()` wait as `wait` says: [`Wait::Try`] is
    /// [`enable_try_lock`](LockBuilder::enable_try_lock), [`Wait::For`] is
    /// [`enable_timeout`](LockBuilder::enable_timeout), [`Wait::Forever`] the default, and
    /// [`Wait::Until`] a deadline shared by every `lock()` of the built locks.
    pub fn enable_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Make `lock()` wait as `wait` says; see [`enable_wait`](LockBuilder::enable_wait).
    ///
    /// ```
    /// use std::time::Duration;
    /// use simplelock_core::{LockBuilder, Wait};
    ///
    /// let builder = LockBuilder::default().with_wait(Wait::For(Duration::from_secs(5)));
    /// assert_eq!(builder, LockBuilder::default().with_timeout(Duration::from_secs(5)));
    /// assert_eq!(builder.wait(), Wait::For(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn with_wait(mut self, wait: Wait) -> Self {
        self.enable_wait(wait);
        self
    }

    /// How `lock()` waits.
    pub fn wait(&self) -> Wait {
        self.wait
    }

    /// Whether `lock()` fails at once instead of waiting.
    pub fn is_try_lock(&self) -> bool {
        self.wait == Wait::Try
    }

    /// Whether `unlock()` swallows its errors.
    pub fn is_silent_unlock(&self) -> bool {
        self.silent_unlock
    }

    /// How long `lock()` waits at most, if a timeout is configured (see [`Wait::timeout`]).
    pub fn timeout(&self) -> Option<Duration> {
        self.wait.timeout()
    }

    /// Wrap a boxed backend handle in a [`Lock`] configured like this builder.
    ///
    /// Deprecated because its `Result` can never be an error: write
    /// `Box::new(builder.apply(concrete))`, which cannot fail, or keep the type with
    /// [`apply`](LockBuilder::apply). (`simplelock::compat_0_4`'s `LockBuilder` keeps 0.4's
    /// `wrap` without a warning, for code that must compile against 0.4 too.)
    ///
    /// # Errors
    /// Never: the `Result` is part of the 0.4 API.
    #[deprecated(
        since = "0.5.0",
        note = "use `Box::new(builder.apply(concrete))` instead, which cannot fail"
    )]
    pub fn wrap(&self, concrete: Box<dyn ConcreteLock>) -> SimpleLockResult<Box<dyn Lock>> {
        Ok(Box::new(self.apply(concrete)))
    }

    /// Wrap a backend handle in a [`Lock`] configured like this builder, keeping its type (so a
    /// `Send` backend gives a `Send` lock).
    pub fn apply<C: ConcreteLock>(&self, concrete: C) -> BuiltLock<C> {
        BuiltLock {
            concrete,
            config: *self,
        }
    }
}

/// A backend handle with the configuration of a [`LockBuilder`]; see [`LockBuilder::apply`].
#[derive(Debug)]
pub struct BuiltLock<C> {
    concrete: C,
    config: LockBuilder,
}

impl<C> BuiltLock<C> {
    /// The backend handle.
    pub fn get_ref(&self) -> &C {
        &self.concrete
    }

    /// The backend handle, mutably: acquiring or releasing through it bypasses the configuration.
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.concrete
    }

    /// The backend handle, still holding the lock if it did.
    pub fn into_inner(self) -> C {
        self.concrete
    }

    /// The configuration.
    pub fn config(&self) -> &LockBuilder {
        &self.config
    }
}

impl<C: ConcreteLock> Lock for BuiltLock<C> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.concrete.status()
    }

    fn lock(&mut self) -> SimpleLockResult<()> {
        match self.config.wait {
            Wait::Try => self.concrete.try_lock(),
            Wait::Forever => self.concrete.hang_lock(),
            Wait::For(timeout) => self.concrete.timed_lock(timeout),
            until @ Wait::Until { .. } => self
                .concrete
                .timed_lock(until.remaining().unwrap_or(Duration::ZERO)),
        }
    }

    fn unlock(&mut self) -> SimpleLockResult<()> {
        match self.concrete.try_unlock() {
            Err(_) if self.config.silent_unlock => Ok(()),
            other => other,
        }
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.concrete.previous_holder()
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        self.concrete.holder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimpleLockError;

    /// Records which method the wrapper called.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<&'static str>,
        unlock_fails: bool,
    }

    impl ConcreteLock for Recorder {
        fn status(&self) -> SimpleLockResult<LockStatus> {
            Ok(LockStatus::Open)
        }
        fn try_lock(&mut self) -> SimpleLockResult<()> {
            self.calls.push("try");
            Ok(())
        }
        fn hang_lock(&mut self) -> SimpleLockResult<()> {
            self.calls.push("hang");
            Ok(())
        }
        fn try_unlock(&mut self) -> SimpleLockResult<()> {
            self.calls.push("unlock");
            if self.unlock_fails {
                Err(SimpleLockError::unable_to_unlock("r", "gone", None))
            } else {
                Ok(())
            }
        }
        fn timed_lock(&mut self, _: Duration) -> SimpleLockResult<()> {
            self.calls.push("timed");
            Ok(())
        }
    }

    fn calls(builder: LockBuilder) -> Vec<&'static str> {
        let mut lock = builder.apply(Recorder::default());
        lock.lock().unwrap();
        lock.unlock().unwrap();
        lock.into_inner().calls
    }

    #[test]
    fn the_last_configured_mode_wins() {
        let b = LockBuilder::default();
        assert_eq!(calls(b), ["hang", "unlock"]);
        assert_eq!(calls(b.with_try_lock()), ["try", "unlock"]);
        let timed = b.with_try_lock().with_timeout(Duration::from_secs(1));
        assert_eq!(calls(timed), ["timed", "unlock"]);
        assert_eq!(timed.timeout(), Some(Duration::from_secs(1)));
        assert!(!timed.is_try_lock());
        assert_eq!(calls(timed.with_try_lock()), ["try", "unlock"]);
        assert_eq!(calls(timed.with_wait(Wait::Forever)), ["hang", "unlock"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(3600);
        let until = b.with_wait(Wait::until(deadline));
        assert_eq!(calls(until), ["timed", "unlock"]);
        assert_eq!(until.wait().deadline(), Some(deadline));
    }

    #[test]
    fn enable_forms_work_through_a_mutable_reference() {
        let mut b = LockBuilder::default();
        b.enable_try_lock();
        b.enable_silent_unlock();
        assert!(b.is_try_lock() && b.is_silent_unlock());
        b.enable_timeout(Duration::from_millis(5));
        assert_eq!(b.timeout(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn silent_unlock_swallows_errors_and_loud_unlock_reports_them() {
        let failing = || Recorder {
            unlock_fails: true,
            ..Recorder::default()
        };
        let mut loud = LockBuilder::default().apply(failing());
        let err = loud.unlock().unwrap_err();
        assert!(matches!(err, SimpleLockError::UnableToUnlock { .. }));
        let mut silent = LockBuilder::default().with_silent_unlock().apply(failing());
        silent.unlock().unwrap();
        assert_eq!(silent.get_ref().calls, ["unlock"]);
    }

    #[test]
    fn boxed_backends_and_borrowed_locks_forward_every_method() {
        let mut boxed = LockBuilder::default()
            .with_timeout(Duration::from_secs(1))
            .apply(Box::new(Recorder::default()));
        {
            let mut borrowed = &mut boxed;
            Lock::lock(&mut borrowed).unwrap();
            Lock::unlock(&mut borrowed).unwrap();
        }
        assert_eq!(
            boxed.into_inner().calls,
            ["timed", "unlock"],
            "timed_lock was not forwarded"
        );
    }

    #[test]
    #[allow(deprecated, reason = "the 0.4 method must keep working")]
    fn wrap_boxes_and_forwards() {
        let mut lock = LockBuilder::default()
            .with_try_lock()
            .wrap(Box::new(Recorder::default()))
            .unwrap();
        lock.lock().unwrap();
        assert_eq!(lock.status().unwrap(), LockStatus::Open);
        assert_eq!(lock.previous_holder(), PreviousHolder::Unknown);
        assert_eq!(lock.holder().unwrap(), None);
    }
}
