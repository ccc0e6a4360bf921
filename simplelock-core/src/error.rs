//! [`SimpleLockError`], the one error type of every simplelock backend.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::Holder;

/// The result of every lock operation.
pub type SimpleLockResult<T> = Result<T, SimpleLockError>;

/// The boxed error a backend may attach to [`SimpleLockError::UnknownError`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Everything that can go wrong with a lock.
///
/// The variant names are those of simplelock 0.4, so `matches!(e, SimpleLockError::AlreadyLocked
/// { .. })` keeps working; the payloads say which lock, what was wrong, and keep the operating
/// system's error as [`source()`](Error::source). Build errors with the constructors
/// ([`SimpleLockError::already_locked`], ...): the variants are `#[non_exhaustive]` so that they
/// can learn more without breaking anyone.
///
/// `name` is how the backend names the lock to a person: the path of a file lock, the name of a
/// semaphore.
#[non_exhaustive]
#[derive(Debug)]
pub enum SimpleLockError {
    /// Someone else holds the lock and this call was not allowed to wait (try-lock mode).
    #[non_exhaustive]
    AlreadyLocked {
        /// The lock.
        name: String,
        /// Who holds it, where the backend can tell.
        holder: Option<Holder>,
    },
    /// The name or path cannot name a lock.
    #[non_exhaustive]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
        /// The operating system's refusal, where it came from there.
        source: Option<io::Error>,
    },
    /// The lock could not be released (file vanished, permissions changed, ...).
    #[non_exhaustive]
    UnableToUnlock {
        /// The lock.
        name: String,
        /// What went wrong.
        reason: String,
        /// The operating system's error, if there was one.
        source: Option<io::Error>,
    },
    /// The lock object exists with permissions this process lacks.
    #[non_exhaustive]
    PermissionDenied {
        /// The lock.
        name: String,
        /// The operating system's error.
        source: Option<io::Error>,
    },
    /// A default lock was asked for, but no backend feature of `simplelock` is enabled.
    NoLockEnabled,
    /// Anything else a backend ran into. Its [`kind`](SimpleLockError::kind) says what sort of
    /// trouble it is, so that no caller has to read the message.
    #[non_exhaustive]
    UnknownError {
        /// The lock.
        name: String,
        /// What the backend was doing.
        message: String,
        /// The underlying error.
        source: Option<BoxError>,
        /// What sort of error it is: the kind of `source` when that is an [`io::Error`], else
        /// what the backend said with [`with_kind`](SimpleLockError::with_kind), else
        /// [`Other`](io::ErrorKind::Other).
        kind: io::ErrorKind,
    },
    /// The lock was not acquired before the timeout ran out.
    #[non_exhaustive]
    TimedOut {
        /// The lock.
        name: String,
        /// How long the call waited.
        timeout: Duration,
        /// Who held the lock when the wait ended, where the backend can tell.
        holder: Option<Holder>,
    },
    /// `unlock` was called on a handle that does not hold the lock. Nothing was released.
    #[non_exhaustive]
    NotHeld {
        /// The lock.
        name: String,
    },
    /// `lock` was called on a handle that already holds the lock. It is still held, once.
    #[non_exhaustive]
    AlreadyHeld {
        /// The lock.
        name: String,
    },
    /// Waiting would never end: this thread already holds the lock through another handle.
    #[non_exhaustive]
    WouldDeadlock {
        /// The lock.
        name: String,
    },
}

impl SimpleLockError {
    /// Someone else holds `name`.
    pub fn already_locked(name: impl Into<String>, holder: Option<Holder>) -> Self {
        SimpleLockError::AlreadyLocked {
            name: name.into(),
            holder,
        }
    }

    /// `name` breaks the rule described by `reason`.
    pub fn invalid_name(name: impl Into<String>, reason: impl Into<String>) -> Self {
        SimpleLockError::InvalidName {
            name: name.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The operating system refused `name` with `source`, because of `reason`.
    pub fn invalid_name_os(
        name: impl Into<String>,
        reason: impl Into<String>,
        source: io::Error,
    ) -> Self {
        SimpleLockError::InvalidName {
            name: name.into(),
            reason: reason.into(),
            source: Some(source),
        }
    }

    /// Releasing `name` failed.
    pub fn unable_to_unlock(
        name: impl Into<String>,
        reason: impl Into<String>,
        source: Option<io::Error>,
    ) -> Self {
        SimpleLockError::UnableToUnlock {
            name: name.into(),
            reason: reason.into(),
            source,
        }
    }

    /// The lock object `name` exists with permissions this process lacks.
    pub fn permission_denied(name: impl Into<String>, source: Option<io::Error>) -> Self {
        SimpleLockError::PermissionDenied {
            name: name.into(),
            source,
        }
    }

    /// Anything else, with what the backend was doing and the error it got.
    ///
    /// Its [`kind`](SimpleLockError::kind) is that of `source` if it is an [`io::Error`],
    /// else [`Other`](io::ErrorKind::Other): give errors that have no OS error behind them a
    /// kind with [`with_kind`](SimpleLockError::with_kind), so that callers can tell them apart
    /// without reading the message.
    pub fn unknown(
        name: impl Into<String>,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        let kind = source
            .as_deref()
            .and_then(|source| source.downcast_ref::<io::Error>())
            .map_or(io::ErrorKind::Other, io::Error::kind);
        SimpleLockError::UnknownError {
            name: name.into(),
            message: message.into(),
            source,
            kind,
        }
    }

    /// Waiting `timeout` for `name` was not enough.
    pub fn timed_out(name: impl Into<String>, timeout: Duration, holder: Option<Holder>) -> Self {
        SimpleLockError::TimedOut {
            name: name.into(),
            timeout,
            holder,
        }
    }

    /// Unlock of a handle that does not hold `name`.
    pub fn not_held(name: impl Into<String>) -> Self {
        SimpleLockError::NotHeld { name: name.into() }
    }

    /// Lock of a handle that already holds `name`.
    pub fn already_held(name: impl Into<String>) -> Self {
        SimpleLockError::AlreadyHeld { name: name.into() }
    }

    /// Waiting for `name` would deadlock this thread.
    pub fn would_deadlock(name: impl Into<String>) -> Self {
        SimpleLockError::WouldDeadlock { name: name.into() }
    }

    /// Classify an operating system error met while `doing` something with `name`.
    ///
    /// Permission errors become [`PermissionDenied`](SimpleLockError::PermissionDenied), names
    /// the OS rejects become [`InvalidName`](SimpleLockError::InvalidName), "would block"
    /// becomes [`AlreadyLocked`](SimpleLockError::AlreadyLocked) and the rest
    /// [`UnknownError`](SimpleLockError::UnknownError); the OS error is kept as the source.
    pub fn from_io(name: impl Into<String>, doing: &str, err: io::Error) -> Self {
        let name = name.into();
        match err.kind() {
            io::ErrorKind::PermissionDenied => SimpleLockError::permission_denied(name, Some(err)),
            io::ErrorKind::WouldBlock => SimpleLockError::already_locked(name, None),
            io::ErrorKind::InvalidFilename | io::ErrorKind::InvalidInput => {
                SimpleLockError::invalid_name_os(name, doing, err)
            }
            _ => SimpleLockError::unknown(name, doing, Some(Box::new(err))),
        }
    }

    /// The lock this error is about, if it is about one.
    pub fn name(&self) -> Option<&str> {
        match self {
            SimpleLockError::AlreadyLocked { name, .. }
            | SimpleLockError::InvalidName { name, .. }
            | SimpleLockError::UnableToUnlock { name, .. }
            | SimpleLockError::PermissionDenied { name, .. }
            | SimpleLockError::UnknownError { name, .. }
            | SimpleLockError::TimedOut { name, .. }
            | SimpleLockError::NotHeld { name }
            | SimpleLockError::AlreadyHeld { name }
            | SimpleLockError::WouldDeadlock { name } => Some(name),
            SimpleLockError::NoLockEnabled => None,
        }
    }

    /// Who held the lock, for [`AlreadyLocked`](SimpleLockError::AlreadyLocked) and
    /// [`TimedOut`](SimpleLockError::TimedOut), where the backend could tell.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            SimpleLockError::AlreadyLocked { holder, .. }
            | SimpleLockError::TimedOut { holder, .. } => holder.as_ref(),
            _ => None,
        }
    }

    /// The operating system error behind this one, if any.
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            SimpleLockError::InvalidName { source, .. }
            | SimpleLockError::UnableToUnlock { source, .. }
            | SimpleLockError::PermissionDenied { source, .. } => source.as_ref(),
            SimpleLockError::UnknownError {
                source: Some(source),
                ..
            } => source.downcast_ref(),
            _ => None,
        }
    }

    /// The [`io::ErrorKind`] that best describes this error: the one to match on, never the
    /// message (whose wording may change).
    ///
    /// Each variant has its kind ([`AlreadyLocked`](SimpleLockError::AlreadyLocked) is
    /// [`WouldBlock`](io::ErrorKind::WouldBlock), [`TimedOut`](SimpleLockError::TimedOut)
    /// [`TimedOut`](io::ErrorKind::TimedOut), ...); an
    /// [`UnknownError`](SimpleLockError::UnknownError) has the kind it was made with (see
    /// [`with_kind`](SimpleLockError::with_kind)); the rest take the kind of their OS error, or
    /// [`Other`](io::ErrorKind::Other). [`From<SimpleLockError> for io::Error`](io::Error)
    /// keeps this kind.
    ///
    /// Kinds the backends use for errors with no OS error behind them:
    /// [`InvalidData`](io::ErrorKind::InvalidData) for a lock object that is not one of ours or
    /// is damaged, [`Unsupported`](io::ErrorKind::Unsupported) for what this platform or
    /// setup cannot do.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            SimpleLockError::UnknownError { kind, .. } => *kind,
            SimpleLockError::AlreadyLocked { .. } => io::ErrorKind::WouldBlock,
            SimpleLockError::InvalidName { .. } => io::ErrorKind::InvalidInput,
            SimpleLockError::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            SimpleLockError::NoLockEnabled => io::ErrorKind::Unsupported,
            SimpleLockError::TimedOut { .. } => io::ErrorKind::TimedOut,
            SimpleLockError::WouldDeadlock { .. } => io::ErrorKind::Deadlock,
            SimpleLockError::UnableToUnlock { .. }
            | SimpleLockError::NotHeld { .. }
            | SimpleLockError::AlreadyHeld { .. } => self
                .os_error()
                .map_or(io::ErrorKind::Other, io::Error::kind),
        }
    }

    /// The same error with the kind `new`, for an
    /// [`UnknownError`](SimpleLockError::UnknownError); the other variants' kinds follow from
    /// the variant (or its OS error), and they are returned unchanged.
    ///
    /// ```
    /// use std::io;
    /// use simplelock_core::SimpleLockError;
    ///
    /// let err = SimpleLockError::unknown("deploy", "the object has a bad header", None)
    ///     .with_kind(io::ErrorKind::InvalidData);
    /// assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    /// ```
    #[must_use]
    pub fn with_kind(mut self, new: io::ErrorKind) -> Self {
        if let SimpleLockError::UnknownError { kind, .. } = &mut self {
            *kind = new;
        }
        self
    }

    /// The same error with its holder replaced, for the variants that carry one.
    #[must_use]
    pub fn with_holder(mut self, new: Option<Holder>) -> Self {
        if let SimpleLockError::AlreadyLocked { holder, .. }
        | SimpleLockError::TimedOut { holder, .. } = &mut self
        {
            *holder = new;
        }
        self
    }
}

fn write_holder(f: &mut fmt::Formatter<'_>, holder: &Option<Holder>) -> fmt::Result {
    match holder {
        Some(holder) => write!(f, " (held by {holder})"),
        None => Ok(()),
    }
}

impl fmt::Display for SimpleLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimpleLockError::AlreadyLocked { name, holder } => {
                write!(f, "lock {name:?} is already locked")?;
                write_holder(f, holder)
            }
            SimpleLockError::InvalidName { name, reason, .. } => {
                write!(f, "invalid lock name {name:?}: {reason}")
            }
            SimpleLockError::UnableToUnlock { name, reason, .. } => {
                write!(f, "unable to unlock lock {name:?}: {reason}")
            }
            SimpleLockError::PermissionDenied { name, .. } => {
                write!(f, "permission denied for lock {name:?}")
            }
            SimpleLockError::NoLockEnabled => f.write_str(
                "no lock backend is enabled: turn on the `file`, `sema` or `fake` feature of simplelock",
            ),
            SimpleLockError::UnknownError { name, message, .. } => {
                write!(f, "lock {name:?}: {message}")
            }
            SimpleLockError::TimedOut {
                name,
                timeout,
                holder,
            } => {
                write!(f, "timed out after {timeout:?} waiting for lock {name:?}")?;
                write_holder(f, holder)
            }
            SimpleLockError::NotHeld { name } => {
                write!(f, "lock {name:?} is not held by this handle, nothing was released")
            }
            SimpleLockError::AlreadyHeld { name } => {
                write!(f, "lock {name:?} is already held by this handle")
            }
            SimpleLockError::WouldDeadlock { name } => write!(
                f,
                "lock {name:?} is already held by this thread through another handle, waiting would deadlock"
            ),
        }
    }
}

impl Error for SimpleLockError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SimpleLockError::InvalidName { source, .. }
            | SimpleLockError::UnableToUnlock { source, .. }
            | SimpleLockError::PermissionDenied { source, .. } => {
                source.as_ref().map(|e| e as &(dyn Error + 'static))
            }
            SimpleLockError::UnknownError { source, .. } => {
                source.as_deref().map(|e| e as &(dyn Error + 'static))
            }
            _ => None,
        }
    }
}

impl From<SimpleLockError> for io::Error {
    fn from(err: SimpleLockError) -> Self {
        io::Error::new(err.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Permission denied" and "out of memory" as the OS numbers them (errno, or Windows'
    /// system error codes), for errors made from raw OS errors.
    #[cfg(not(windows))]
    const ACCESS_DENIED: i32 = 13; // EACCES
    #[cfg(not(windows))]
    const OUT_OF_MEMORY: i32 = 12; // ENOMEM
    #[cfg(windows)]
    const ACCESS_DENIED: i32 = 5; // ERROR_ACCESS_DENIED
    #[cfg(windows)]
    const OUT_OF_MEMORY: i32 = 8; // ERROR_NOT_ENOUGH_MEMORY

    #[test]
    fn messages_name_the_lock_and_keep_the_os_error() {
        let os = io::Error::from_raw_os_error(ACCESS_DENIED);
        let err = SimpleLockError::from_io("/run/x.lock", "opening the lock file", os);
        assert!(matches!(err, SimpleLockError::PermissionDenied { .. }));
        assert_eq!(
            err.to_string(),
            r#"permission denied for lock "/run/x.lock""#
        );
        let source = err.source().expect("the OS error is the source");
        assert_eq!(
            source.downcast_ref::<io::Error>().unwrap().raw_os_error(),
            Some(ACCESS_DENIED)
        );
        assert_eq!(err.name(), Some("/run/x.lock"));
    }

    #[test]
    fn unknown_errors_keep_their_source_and_kind() {
        let err =
            SimpleLockError::from_io("x", "mapping", io::Error::from_raw_os_error(OUT_OF_MEMORY));
        assert!(matches!(err, SimpleLockError::UnknownError { .. }));
        assert_eq!(err.os_error().unwrap().raw_os_error(), Some(OUT_OF_MEMORY));
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(err.to_string(), r#"lock "x": mapping"#);
    }

    #[test]
    fn unknown_errors_without_an_os_error_carry_the_kind_they_are_given() {
        let err = SimpleLockError::unknown("x", "bad header", None);
        assert_eq!(err.kind(), io::ErrorKind::Other);
        let err = err.with_kind(io::ErrorKind::InvalidData);
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            r#"lock "x": bad header"#,
            "the message is unchanged"
        );
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        let boxed: BoxError = "not an io::Error".into();
        let err = SimpleLockError::unknown("x", "talking to the server", Some(boxed))
            .with_kind(io::ErrorKind::ConnectionRefused);
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.os_error().is_none());
        let other = SimpleLockError::not_held("x").with_kind(io::ErrorKind::InvalidData);
        assert_eq!(
            other.kind(),
            io::ErrorKind::Other,
            "only UnknownError takes a kind"
        );
    }

    #[test]
    fn holder_is_shown_and_replaceable() {
        let err = SimpleLockError::already_locked("deploy", None);
        assert_eq!(err.to_string(), r#"lock "deploy" is already locked"#);
        let err = err.with_holder(Some(Holder::new(4242)));
        assert_eq!(
            err.to_string(),
            r#"lock "deploy" is already locked (held by pid 4242)"#
        );
        assert_eq!(err.holder().map(|h| h.pid), Some(4242));
        let err = SimpleLockError::timed_out("deploy", Duration::from_millis(1500), None);
        assert_eq!(
            err.to_string(),
            r#"timed out after 1.5s waiting for lock "deploy""#
        );
    }

    #[test]
    fn names_with_control_characters_are_escaped() {
        let err = SimpleLockError::invalid_name("a\0b", "contains a NUL byte");
        assert_eq!(
            err.to_string(),
            r#"invalid lock name "a\0b": contains a NUL byte"#
        );
    }

    #[test]
    fn converts_into_io_error_with_matching_kind() {
        let cases = [
            (
                SimpleLockError::already_locked("x", None),
                io::ErrorKind::WouldBlock,
            ),
            (
                SimpleLockError::timed_out("x", Duration::ZERO, None),
                io::ErrorKind::TimedOut,
            ),
            (
                SimpleLockError::invalid_name("x", "r"),
                io::ErrorKind::InvalidInput,
            ),
            (
                SimpleLockError::would_deadlock("x"),
                io::ErrorKind::Deadlock,
            ),
            (SimpleLockError::not_held("x"), io::ErrorKind::Other),
        ];
        for (err, kind) in cases {
            let text = err.to_string();
            let io: io::Error = err.into();
            assert_eq!(io.kind(), kind, "{text}");
            assert_eq!(io.to_string(), text);
            assert!(io.get_ref().unwrap().is::<SimpleLockError>());
        }
    }

    #[test]
    fn errors_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<SimpleLockError>();
    }
}
