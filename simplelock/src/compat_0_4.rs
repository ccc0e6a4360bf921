//! simplelock 0.4.1's API, over today's backends: code written for 0.4 compiles and behaves as
//! 0.4.1 documented after one changed line,
//!
//! ```text
//! use simplelock::compat_0_4::*;   // was: use simplelock::*;
//! ```
//!
//! (or `simplelock::compat_0_4::X` wherever it names `simplelock::X`). Here are 0.4's
//! [`SimpleLockError`] with its six unit and tuple variants, equality, order and conversions
//! from `io`, 0.4's [`Lock`] and [`ConcreteLock`] traits (a backend hand-rolled for 0.4 still
//! implements them), [`LockBuilder`], [`default_lock`], [`lock_until_finished`], and
//! `FileLock`, `SemaphoreLock` and `FakeLock` behind the same features as in 0.4 (`file`, `sema`,
//! `fake`).
//! [`LockStatus`] is the crate's own, exhaustive as in 0.4.
//!
//! ```
//! use simplelock::compat_0_4::*;
//!
//! /// 0.4 code: runs the job unless another process is at it.
//! fn run_unless_busy(lock: &mut impl Lock) -> SimpleLockResult<bool> {
//!     match lock.lock() {
//!         Ok(()) => {}
//!         Err(SimpleLockError::AlreadyLocked) => return Ok(false),
//!         Err(other) => return Err(other),
//!     }
//!     // ... the job ...
//!     lock.unlock()?;
//!     Ok(true)
//! }
//! # #[cfg(feature = "fake")]
//! assert!(run_unless_busy(&mut FakeLock::new(false))?);
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! The crate's own API (`simplelock::*`) is better: errors that name the lock, its holder and
//! the OS error, timeouts, guards, being told that the previous holder died. Move to it when you
//! can; the changelog has a table of what to write instead of each 0.4 idiom.
//!
//! # Why a changed line, and not none
//!
//! The crate's `SimpleLockError` keeps 0.4's variant names but gives them fields, and 0.4 code
//! cannot be made to compile against that, whatever the error type looks like:
//!
//! - `Err(SimpleLockError::AlreadyLocked) => …` is a path pattern. It compiles only if the path
//!   is a unit variant or a constant of the error type `lock()` returns. A unit variant carries
//!   nothing, so that error could not name the lock nor its holder. A constant is matched by
//!   comparing every field, and Rust accepts one in a pattern only if every field's type derives
//!   its equality structurally, which `String` and `io::Error` do not. Nor does a rich error
//!   whose `kind()` is 0.4's enum help: the pattern matches what `lock()` returns, not its kind,
//!   so `SimpleLockError` would have to be that enum, and `lock()` return it.
//! - `UnableToUnlock(why)` and `UnknownError(what)` both build and bind a `String`: the payload
//!   must be exactly one `String`.
//! - A `match` over the six variants without a wildcard arm (legal in 0.4) rules out new
//!   variants (`TimedOut`, `NotHeld`, ...) and `#[non_exhaustive]`.
//!
//! This is what a constant that carries the lock's name gets:
//!
//! ```compile_fail
//! #[derive(Debug, PartialEq, Eq)]
//! pub struct SimpleLockError {
//!     kind: Kind,
//!     name: String,
//! }
//! #[derive(Debug, PartialEq, Eq)]
//! enum Kind { AlreadyLocked }
//!
//! impl SimpleLockError {
//!     #[allow(non_upper_case_globals)]
//!     pub const AlreadyLocked: SimpleLockError =
//!         SimpleLockError { kind: Kind::AlreadyLocked, name: String::new() };
//! }
//!
//! fn busy(result: Result<(), SimpleLockError>) -> bool {
//!     // error: constant of non-structural type `Vec<u8>` in a pattern
//!     matches!(result, Err(SimpleLockError::AlreadyLocked))
//! }
//! ```
//!
//! (and with a name type that is structural, the pattern would match only the errors whose name
//! equals the constant's). So the error that the crate's locks return would have to be 0.4's,
//! details and new variants gone. Keeping both means two types at two paths, and choosing the
//! path is the changed line.
//! Without it, the 0.4 idioms fail to compile (and do not silently behave differently):
//!
//! ```compile_fail,E0533
//! use simplelock::*;
//!
//! fn busy(lock: &mut impl Lock) -> bool {
//!     matches!(lock.lock(), Err(SimpleLockError::AlreadyLocked))
//! }
//! ```
//!
//! ```compile_fail,E0164
//! use simplelock::*;
//!
//! fn why(err: SimpleLockError) -> Option<String> {
//!     match err {
//!         SimpleLockError::UnableToUnlock(why) => Some(why),
//!         _ => None,
//!     }
//! }
//! ```
//!
//! # Errors: today's, as 0.4 names them
//!
//! Today's backends report richer errors; this module turns each into the 0.4 variant that
//! means the same to a 0.4 caller ([`From<simplelock::SimpleLockError>`](SimpleLockError)):
//!
//! | today's error | 0.4 error |
//! |---|---|
//! | `AlreadyLocked` | `AlreadyLocked` |
//! | `TimedOut` (never from this module's locks: 0.4 had no timeouts) | `AlreadyLocked`: someone else held it, and the caller did not wait longer |
//! | `InvalidName` | `InvalidName` |
//! | `PermissionDenied` | `PermissionDenied` |
//! | `NoLockEnabled` | `NoLockEnabled` |
//! | `UnableToUnlock` | `UnableToUnlock(text)` |
//! | `NotHeld` | `UnableToUnlock(text)` |
//! | `UnknownError`, `WouldDeadlock`, `AlreadyHeld`, any later one | `UnknownError(text)` |
//!
//! `text` is the error's message followed by its sources, e.g. `unable to unlock lock
//! "/run/user/1000/simplelock/job.lock": the file is gone: No such file or directory (os error
//! 2)`, so the lock's name and the OS error are still in the string. `WouldDeadlock` is not
//! `AlreadyLocked` because 0.4 returned that only in try-lock mode, and a deadlock found in a
//! waiting lock is an unexpected error there.
//!
//! # Behaviour: 0.4.1's, where its docs or its backends defined it
//!
//! - Locking a handle that already holds the lock succeeds and changes nothing, and unlocking
//!   a handle that does not hold it succeeds and releases nothing, as 0.4.1's backends did
//!   (its docs did not say; today's backends report `AlreadyHeld` and `NotHeld`).
//! - `LockBuilder::with_try_lock` makes `lock()` fail at once with `AlreadyLocked`, and
//!   `with_silent_unlock` makes `unlock()` swallow errors, as documented. (In the real 0.4.1
//!   both did nothing, and its `FileLock` released only when dropped; code that relied on that
//!   was relying on a bug.)
//! - If the closure of [`lock_until_finished`] panics, the lock is released and the panic goes
//!   on, even if the release fails (0.4.1 returned the release error and dropped the panic).
//! - The locks are today's: a holder that crashes releases the lock, two handles never both
//!   hold it. [`default_lock`] and [`LockBuilder::build`] use the first enabled of `file`,
//!   `sema`, `fake`, as 0.4 did, but the file lock of a name is the crate's
//!   (`<lock folder>/NAME.lock`, see `simplelock::lock_dir`), not 0.4's `/tmp/lock-NAME`, which any
//!   local user could take first. So a 0.4 process and a process built with this module do not
//!   exclude each other by name; stop the old ones first.
//! - `FakeLock` is 0.4's: one flag shared by its clones, which never makes anyone wait or fail
//!   (0.4 tests rely on that). The crate's `simplelock::FakeLock` is the one that models
//!   contention.
//!
//! # Not kept
//!
//! - `LockBuilder::enable_*` take `&mut self`, as the crate's do: 0.4.1's took `self`, so called
//!   on an immutable builder they compiled and did nothing; now that is a compile error asking
//!   for `let mut`.
//! - 0.4.1's conversions from `nix` 0.19's `Error` and `Errno` (feature `sema`) are gone; convert
//!   through `std::io::Error` (`io::Error::from(errno).into()`).
//!
//! The test crate `compat-0-4` of the workspace holds a program that uses every public item of
//! 0.4.1; `cargo xtask ci` runs it through this module and compiles the same source against the
//! real 0.4.1 from crates.io.

use std::error::Error;
use std::fmt;
use std::io;
use std::panic::{self, UnwindSafe};
#[cfg(feature = "file")]
use std::path::PathBuf;
#[cfg(feature = "fake")]
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The crate's own status: the three states, exhaustive as in 0.4.
pub use simplelock_core::LockStatus;

/// The result of every 0.4 lock operation.
pub type SimpleLockResult<T> = Result<T, SimpleLockError>;

/// simplelock 0.4's error: six variants, two of them with a message.
///
/// Errors of today's backends become these as the [module docs](self) say; the messages of
/// `UnableToUnlock` and `UnknownError` name the lock and keep the OS error's text. Besides what
/// 0.4.1 derived (`Debug`, `PartialEq`, `Eq`, `PartialOrd`, `Ord`) it is `Clone` and `Hash`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimpleLockError {
    /// Someone else holds the lock, and the lock was built to try only
    /// ([`LockBuilder::with_try_lock`]), or a backend's `try_lock` was called.
    AlreadyLocked,
    /// The name or path cannot name a lock (OS rules, a missing folder, ...).
    InvalidName,
    /// The lock could not be released; the message says why.
    UnableToUnlock(String),
    /// The lock object exists with permissions this process lacks.
    PermissionDenied,
    /// [`default_lock`] or [`LockBuilder::build`] was called with no backend feature enabled.
    NoLockEnabled,
    /// Anything else a backend ran into; the message says what.
    UnknownError(String),
}

/// The messages are 0.4.1's, word for word.
impl fmt::Display for SimpleLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimpleLockError::AlreadyLocked => f.write_str("Lock is already locked!"),
            SimpleLockError::InvalidName => f.write_str("Path or Name for lock was invalid!"),
            SimpleLockError::UnableToUnlock(why) => write!(f, "Unable to unlock, reason: {why}"),
            SimpleLockError::PermissionDenied => f.write_str("Permission Denied!"),
            SimpleLockError::NoLockEnabled => {
                f.write_str("No lock implementation was enabled, unable to create a default lock.")
            }
            SimpleLockError::UnknownError(what) => write!(f, "Unknown Error: {what:?}"),
        }
    }
}

impl Error for SimpleLockError {}

/// As in 0.4: by the error's kind (see `From<io::ErrorKind>`).
impl From<io::Error> for SimpleLockError {
    fn from(err: io::Error) -> Self {
        err.kind().into()
    }
}

/// As in 0.4: `NotFound` is `InvalidName`, `PermissionDenied` is `PermissionDenied`, any other
/// kind `UnknownError` with the kind's name.
impl From<io::ErrorKind> for SimpleLockError {
    fn from(kind: io::ErrorKind) -> Self {
        match kind {
            io::ErrorKind::NotFound => SimpleLockError::InvalidName,
            io::ErrorKind::PermissionDenied => SimpleLockError::PermissionDenied,
            other => SimpleLockError::UnknownError(format!("{other:?}")),
        }
    }
}

/// Today's error as 0.4 names it; see the table in the [module docs](self).
impl From<crate::SimpleLockError> for SimpleLockError {
    fn from(err: crate::SimpleLockError) -> Self {
        use crate::SimpleLockError as Today;
        match err {
            Today::AlreadyLocked { .. } | Today::TimedOut { .. } => SimpleLockError::AlreadyLocked,
            Today::InvalidName { .. } => SimpleLockError::InvalidName,
            Today::PermissionDenied { .. } => SimpleLockError::PermissionDenied,
            Today::NoLockEnabled => SimpleLockError::NoLockEnabled,
            Today::UnableToUnlock { .. } | Today::NotHeld { .. } => {
                SimpleLockError::UnableToUnlock(message_with_sources(&err))
            }
            _ => SimpleLockError::UnknownError(message_with_sources(&err)),
        }
    }
}

/// `err`'s message, then each of its sources after a colon.
fn message_with_sources(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a backend implements, as in 0.4; [`LockBuilder::wrap`] turns it into a [`Lock`].
pub trait ConcreteLock {
    /// The state of the lock as this handle sees it now.
    fn status(&self) -> SimpleLockResult<LockStatus>;

    /// Acquire the lock, or fail at once with [`SimpleLockError::AlreadyLocked`].
    fn try_lock(&mut self) -> SimpleLockResult<()>;

    /// Acquire the lock, waiting as long as it takes.
    fn hang_lock(&mut self) -> SimpleLockResult<()>;

    /// Release the lock.
    fn try_unlock(&mut self) -> SimpleLockResult<()>;
}

/// Implements 0.4's [`ConcreteLock`] for `$ty` by forwarding every method to `$inner` (an
/// expression of `$s`, the receiver): one forwarding for the boxed trait object and the wrapped
/// backends.
macro_rules! forward_concrete {
    ($ty:ty, $s:ident => $inner:expr) => {
        impl ConcreteLock for $ty {
            fn status(&self) -> SimpleLockResult<LockStatus> {
                let $s = self;
                $inner.status()
            }
            fn try_lock(&mut self) -> SimpleLockResult<()> {
                let $s = self;
                $inner.try_lock()
            }
            fn hang_lock(&mut self) -> SimpleLockResult<()> {
                let $s = self;
                $inner.hang_lock()
            }
            fn try_unlock(&mut self) -> SimpleLockResult<()> {
                let $s = self;
                $inner.try_unlock()
            }
        }
    };
}

forward_concrete!(Box<dyn ConcreteLock>, s => (**s));

/// What users and [`lock_until_finished`] call, as in 0.4: `lock` waits or tries as the lock
/// was built to.
pub trait Lock {
    /// The state of the lock as this handle sees it now.
    fn status(&self) -> SimpleLockResult<LockStatus>;

    /// Acquire the lock: wait, or fail at once with [`SimpleLockError::AlreadyLocked`] if the
    /// lock was built with [`LockBuilder::with_try_lock`].
    fn lock(&mut self) -> SimpleLockResult<()>;

    /// Release the lock; errors are swallowed if the lock was built with
    /// [`LockBuilder::with_silent_unlock`].
    fn unlock(&mut self) -> SimpleLockResult<()>;
}

impl Lock for Box<dyn Lock> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        (**self).status()
    }
    fn lock(&mut self) -> SimpleLockResult<()> {
        (**self).lock()
    }
    fn unlock(&mut self) -> SimpleLockResult<()> {
        (**self).unlock()
    }
}

/// Configures a [`Lock`], as in 0.4: by default `lock()` waits and `unlock()` reports errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockBuilder(simplelock_core::LockBuilder);

impl LockBuilder {
    /// Make `lock()` fail at once with [`SimpleLockError::AlreadyLocked`] instead of waiting.
    pub fn enable_try_lock(&mut self) {
        self.0.enable_try_lock();
    }

    /// Make `lock()` fail at once with [`SimpleLockError::AlreadyLocked`] instead of waiting.
    pub fn with_try_lock(mut self) -> Self {
        self.enable_try_lock();
        self
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    pub fn enable_silent_unlock(&mut self) {
        self.0.enable_silent_unlock();
    }

    /// Make `unlock()` swallow its errors; check [`Lock::status`] if you need to know.
    pub fn with_silent_unlock(mut self) -> Self {
        self.enable_silent_unlock();
        self
    }

    /// A [`Lock`] on the backend handle `concrete`, configured like this builder.
    ///
    /// # Errors
    /// None; the `Result` is 0.4's.
    pub fn wrap(&self, concrete: Box<dyn ConcreteLock>) -> SimpleLockResult<Box<dyn Lock>> {
        Ok(Box::new(Configured {
            concrete,
            config: self.0,
        }))
    }

    /// The lock called `app_name` on the first enabled of the `file`, `sema` and `fake`
    /// backends, configured like this builder (a `fake` lock is a new `FakeLock`, which never
    /// waits nor fails, as in 0.4).
    ///
    /// With `file`, the lock is the crate's named file lock (`<lock folder>/<app_name>.lock`),
    /// with `sema` the semaphore lock `/<app_name>`.
    ///
    /// # Errors
    /// [`SimpleLockError::NoLockEnabled`] with no backend feature, and the backend's errors for
    /// a bad name.
    pub fn build(&self, app_name: impl Into<String>) -> SimpleLockResult<Box<dyn Lock>> {
        let name: String = app_name.into();
        #[cfg(any(feature = "file", feature = "sema"))]
        return self.wrap(Box::new(Current(crate::default_backend(&name)?)));
        #[cfg(all(feature = "fake", not(any(feature = "file", feature = "sema"))))]
        {
            let _ = name;
            Ok(Box::new(FakeLock::default()))
        }
        #[cfg(not(any(feature = "file", feature = "sema", feature = "fake")))]
        {
            let _ = name;
            Err(SimpleLockError::NoLockEnabled)
        }
    }
}

/// A backend handle with a builder's configuration: what [`LockBuilder::wrap`] returns.
struct Configured {
    concrete: Box<dyn ConcreteLock>,
    config: simplelock_core::LockBuilder,
}

impl Lock for Configured {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.concrete.status()
    }

    fn lock(&mut self) -> SimpleLockResult<()> {
        if self.config.is_try_lock() {
            self.concrete.try_lock()
        } else {
            self.concrete.hang_lock()
        }
    }

    fn unlock(&mut self) -> SimpleLockResult<()> {
        match self.concrete.try_unlock() {
            Err(_) if self.config.is_silent_unlock() => Ok(()),
            other => other,
        }
    }
}

/// The lock called `app_name` with the default configuration:
/// `LockBuilder::default().build(app_name)`.
///
/// # Errors
/// Those of [`LockBuilder::build`].
pub fn default_lock(app_name: impl Into<String>) -> SimpleLockResult<Box<dyn Lock>> {
    LockBuilder::default().build(app_name)
}

/// Lock, run `op`, unlock, and return what `op` returned.
///
/// If `op` panics, the lock is released and then the panic goes on (also if the release
/// fails).
///
/// # Errors
/// Those of [`Lock::lock`] (then `op` does not run) and of [`Lock::unlock`] (then `op` ran and
/// its value is lost, unless the lock unlocks silently).
pub fn lock_until_finished<R>(
    lock: &mut impl Lock,
    op: impl FnOnce() -> R + UnwindSafe,
) -> SimpleLockResult<R> {
    lock.lock()?;
    let outcome = panic::catch_unwind(op);
    let unlocked = lock.unlock();
    match outcome {
        Ok(value) => unlocked.map(|()| value),
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// A lock call of today's backends as 0.4 saw it: locking a handle that holds the lock
/// succeeds (it is still held once).
#[cfg(any(feature = "file", feature = "sema", feature = "fake"))]
fn acquired(result: crate::SimpleLockResult<()>) -> SimpleLockResult<()> {
    match result {
        Err(crate::SimpleLockError::AlreadyHeld { .. }) => Ok(()),
        other => Ok(other?),
    }
}

/// An unlock call of today's backends as 0.4 saw it: unlocking a handle that does not hold the
/// lock succeeds (nothing is released).
#[cfg(any(feature = "file", feature = "sema", feature = "fake"))]
fn released(result: crate::SimpleLockResult<()>) -> SimpleLockResult<()> {
    match result {
        Err(crate::SimpleLockError::NotHeld { .. }) => Ok(()),
        other => Ok(other?),
    }
}

/// One of today's backend handles behind 0.4's [`ConcreteLock`].
#[cfg(any(feature = "file", feature = "sema"))]
#[derive(Debug)]
struct Current<C>(C);

#[cfg(any(feature = "file", feature = "sema"))]
impl<C: crate::ConcreteLock> ConcreteLock for Current<C> {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(self.0.status()?)
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        acquired(self.0.try_lock())
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        acquired(self.0.hang_lock())
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        released(self.0.try_unlock())
    }
}

/// 0.4's `FileLock`: a lock on a file of your choice, on the crate's [`crate::FileLock`].
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
#[derive(Debug)]
pub struct FileLock(Current<crate::FileLock>);

#[cfg(feature = "file")]
impl FileLock {
    /// A handle on the lock in the file at `path`, created if missing. It does not hold the lock.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] if the path is empty, a folder, a symbolic link or in a
    /// missing folder, [`SimpleLockError::PermissionDenied`] if the file cannot be opened.
    pub fn new<P: Into<PathBuf>>(path: P) -> SimpleLockResult<FileLock> {
        Ok(FileLock(Current(crate::FileLock::at_path(path)?)))
    }

    /// The path of the lock file, as given.
    pub fn path(&self) -> PathBuf {
        self.0.0.path()
    }
}

#[cfg(feature = "file")]
forward_concrete!(FileLock, s => s.0);

/// 0.4's `SemaphoreLock`: a named lock in shared memory, on the crate's
/// [`crate::SemaphoreLock`] (which a crashed holder does not block).
#[cfg(feature = "sema")]
#[cfg_attr(docsrs, doc(cfg(feature = "sema")))]
#[derive(Debug)]
pub struct SemaphoreLock(Current<crate::SemaphoreLock>);

#[cfg(feature = "sema")]
impl SemaphoreLock {
    /// Opens the lock `name` (`"name"` or `"/name"`, POSIX semaphore name rules), creating it if
    /// missing. The handle does not hold the lock.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for a name that breaks the rules,
    /// [`SimpleLockError::PermissionDenied`] if the lock exists and this process may not use it.
    pub fn new(name: impl Into<String>) -> SimpleLockResult<SemaphoreLock> {
        Ok(SemaphoreLock(Current(crate::SemaphoreLock::named(
            &name.into(),
        )?)))
    }

    /// The lock's name, `"/name"`.
    pub fn name(&self) -> String {
        self.0.0.name()
    }
}

#[cfg(feature = "sema")]
forward_concrete!(SemaphoreLock, s => s.0);

/// 0.4's `FakeLock`, for tests: a flag shared by its clones. `lock()` sets it and `unlock()`
/// clears it, always successfully; `status()` is `Mine` while it is set, else `Open`.
///
/// It never makes anyone wait or fail, so it cannot test contention: the crate's
/// [`crate::FakeLock`] can. This one is a single handle of that one, shared by the clones.
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
#[derive(Debug, Clone, Default)]
pub struct FakeLock(Arc<Mutex<crate::FakeLock>>);

#[cfg(feature = "fake")]
impl FakeLock {
    /// A new flag, set if `is_locked`.
    pub fn new(is_locked: bool) -> Self {
        let mut handle = crate::FakeLock::default();
        if is_locked {
            // A new lock is free and has no failure injected: this acquisition cannot fail.
            let _ = handle.try_lock();
        }
        FakeLock(Arc::new(Mutex::new(handle)))
    }

    /// The one handle. Its calls never wait (no other handle exists), and they leave it
    /// consistent, so a panic elsewhere that poisoned the mutex does not matter.
    fn handle(&self) -> MutexGuard<'_, crate::FakeLock> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(feature = "fake")]
impl Lock for FakeLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(self.handle().status()?)
    }
    fn lock(&mut self) -> SimpleLockResult<()> {
        acquired(self.handle().try_lock())
    }
    fn unlock(&mut self) -> SimpleLockResult<()> {
        released(self.handle().unlock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimpleLockError as Today;
    use std::time::Duration;

    #[test]
    fn todays_errors_map_to_the_04_variant_with_the_text() {
        let os = || Some(io::Error::from_raw_os_error(2));
        let cases = [
            (
                Today::already_locked("job", None),
                SimpleLockError::AlreadyLocked,
            ),
            (
                Today::timed_out("job", Duration::from_secs(1), None),
                SimpleLockError::AlreadyLocked,
            ),
            (
                Today::invalid_name("a/b", "contains a slash"),
                SimpleLockError::InvalidName,
            ),
            (
                Today::permission_denied("job", os()),
                SimpleLockError::PermissionDenied,
            ),
            (Today::NoLockEnabled, SimpleLockError::NoLockEnabled),
            (
                Today::unable_to_unlock("job", "the file is gone", os()),
                // The OS's own text for the error (it differs between systems).
                SimpleLockError::UnableToUnlock(format!(
                    r#"unable to unlock lock "job": the file is gone: {}"#,
                    io::Error::from_raw_os_error(2)
                )),
            ),
            (
                Today::not_held("job"),
                SimpleLockError::UnableToUnlock(
                    r#"lock "job" is not held by this handle, nothing was released"#.to_owned(),
                ),
            ),
            (
                Today::unknown(
                    "job",
                    "mapping",
                    Some(io::Error::from_raw_os_error(12).into()),
                ),
                SimpleLockError::UnknownError(format!(
                    r#"lock "job": mapping: {}"#,
                    io::Error::from_raw_os_error(12)
                )),
            ),
            (
                Today::would_deadlock("job"),
                SimpleLockError::UnknownError(Today::would_deadlock("job").to_string()),
            ),
            (
                Today::already_held("job"),
                SimpleLockError::UnknownError(Today::already_held("job").to_string()),
            ),
        ];
        for (today, expected) in cases {
            let shown = today.to_string();
            assert_eq!(SimpleLockError::from(today), expected, "{shown}");
        }
    }

    #[cfg(any(feature = "file", feature = "sema", feature = "fake"))]
    #[test]
    fn misuse_of_todays_backends_is_a_no_op_as_in_04() {
        assert_eq!(acquired(Err(Today::already_held("job"))), Ok(()));
        assert_eq!(released(Err(Today::not_held("job"))), Ok(()));
        assert_eq!(
            acquired(Err(Today::already_locked("job", None))),
            Err(SimpleLockError::AlreadyLocked)
        );
        assert_eq!(
            released(Err(Today::unable_to_unlock("job", "gone", None))),
            Err(SimpleLockError::UnableToUnlock(
                r#"unable to unlock lock "job": gone"#.to_owned()
            ))
        );
    }

    #[cfg(not(any(feature = "file", feature = "sema", feature = "fake")))]
    #[test]
    fn without_a_backend_build_is_no_lock_enabled() {
        assert_eq!(
            default_lock("job").err(),
            Some(SimpleLockError::NoLockEnabled)
        );
        assert_eq!(
            LockBuilder::default().with_try_lock().build("job").err(),
            Some(SimpleLockError::NoLockEnabled)
        );
    }

    #[cfg(all(feature = "fake", not(any(feature = "file", feature = "sema"))))]
    #[test]
    fn with_fake_only_build_gives_independent_flags_as_in_04() {
        let mut first = default_lock("job").unwrap();
        let mut second = LockBuilder::default().with_try_lock().build("job").unwrap();
        first.lock().unwrap();
        second.lock().unwrap();
        assert!(matches!(second.status().unwrap(), LockStatus::Mine));
        first.unlock().unwrap();
        second.unlock().unwrap();
    }

    #[cfg(feature = "fake")]
    #[test]
    fn fake_lock_errors_of_the_handle_reach_the_caller() {
        let mut lock = FakeLock::new(false);
        lock.handle()
            .fail_next_unlock(Today::unable_to_unlock("fake", "injected", None));
        lock.lock().unwrap();
        assert_eq!(
            lock.unlock(),
            Err(SimpleLockError::UnableToUnlock(
                r#"unable to unlock lock "fake": injected"#.to_owned()
            ))
        );
        assert!(matches!(lock.status().unwrap(), LockStatus::Mine));
        lock.unlock().unwrap();
        assert!(matches!(lock.status().unwrap(), LockStatus::Open));
    }
}
