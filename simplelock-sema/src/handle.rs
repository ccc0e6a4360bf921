//! [`SemaphoreLock`] and its [options](SemaphoreLockOptions): the one public type on every
//! platform, with its docs; the platform's code is `imp` (fd-lock's `sys::` mirror): the Linux
//! handle of `lock.rs`, or `unsupported.rs` elsewhere, which offer the same crate-private API.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::task::{Context, Poll};

use simplelock_core::{
    AsyncConcreteLock, ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockResult,
};

#[cfg(target_os = "linux")]
use crate::lock as imp;
#[cfg(not(target_os = "linux"))]
use crate::unsupported as imp;

#[cfg(doc)]
use simplelock_core::SimpleLockError;

/// A named lock shared by all processes of the machine that open the same name: a futex-speed
/// replacement for a POSIX named semaphore that also survives a holder that crashed.
///
/// See the [crate documentation](crate) for the design, the name rules, permissions and the
/// guarantees. In short:
///
/// - `SemaphoreLock::named("deploy")` opens (or creates) the lock `/deploy`; it is held by at most
///   one handle at a time, across all processes.
/// - Ownership belongs to the handle and its process: any thread of the holding process may
///   unlock through the handle (it is `Send` and `Sync`), other handles cannot, and a child made
///   by `fork` does not inherit it.
/// - A holder that dies is noticed by the next locker, which takes the lock over and sees
///   [`PreviousHolder::Died`].
/// - [`SemaphoreLock::remove`] deletes the lock's object, safely even while others use it.
///
/// ```
/// use simplelock_core::{ConcreteLock, LockStatus};
/// use simplelock_sema::SemaphoreLock;
///
/// # let name = format!("doc-handle-{}", std::process::id());
/// let mut lock = SemaphoreLock::named(&name)?;
/// let other = SemaphoreLock::named(&name)?; // another handle, as another process would have
/// lock.hang_lock()?;
/// assert_eq!(lock.status()?, LockStatus::Mine);
/// assert_eq!(other.status()?, LockStatus::Taken);
/// lock.try_unlock()?;
/// assert_eq!(other.status()?, LockStatus::Open);
/// SemaphoreLock::remove(&name)?;
/// # Ok::<(), simplelock_core::SimpleLockError>(())
/// ```
pub struct SemaphoreLock {
    imp: imp::Handle,
}

/// How to open a [`SemaphoreLock`] beyond its name, from [`SemaphoreLock::options`]: `with_*`
/// steps, then [`named`](SemaphoreLockOptions::named).
///
/// ```
/// use simplelock_sema::SemaphoreLock;
/// # let name = format!("doc-options-{}", std::process::id());
/// // A lock the user's group may use too:
/// let lock = SemaphoreLock::options().with_mode(0o660).named(&name)?;
/// # drop(lock); SemaphoreLock::remove(&name)?;
/// # Ok::<(), simplelock_core::SimpleLockError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the options open nothing until `named` is called"]
pub struct SemaphoreLockOptions {
    mode: u32,
    owner: Option<u32>,
}

impl Default for SemaphoreLockOptions {
    fn default() -> SemaphoreLockOptions {
        SemaphoreLockOptions {
            mode: crate::DEFAULT_MODE,
            owner: None,
        }
    }
}

impl SemaphoreLockOptions {
    /// A newly created object gets `mode` (exactly: the umask does not narrow it), e.g. `0o660`
    /// for a lock shared by a group or `0o666` for all users; [`DEFAULT_MODE`](crate::DEFAULT_MODE)
    /// (`0o600`) if not said. An existing object is used only if it is this user's (or the
    /// [`owner`](SemaphoreLockOptions::with_owner)'s), with a mode no wider than `mode` (it
    /// keeps its mode). Other users need read and write permission, and must name this user
    /// with [`with_owner`](SemaphoreLockOptions::with_owner).
    pub fn with_mode(mut self, mode: u32) -> SemaphoreLockOptions {
        self.mode = mode;
        self
    }

    /// Also accept an existing object of the user `owner` (a numeric user id): the opt-in for a
    /// lock shared across users, for the users who did not create it. Say `0` to share a lock
    /// that root created.
    ///
    /// Whoever may open the object — its owner, and everyone its mode lets in — can write any
    /// bytes into it, and so can break the lock: free it while it is held (two holders), fill
    /// in a live process as holder (everyone waits), or truncate the object (every process that
    /// then touches it dies of SIGBUS). Trust `owner` and `mode` only as far as that.
    pub fn with_owner(mut self, owner: u32) -> SemaphoreLockOptions {
        self.owner = Some(owner);
        self
    }

    /// Opens the lock `name` with these options, creating it if it does not exist.
    ///
    /// # Errors
    /// As [`SemaphoreLock::named`], with the mode asked for in place of `0o600`.
    pub fn named(self, name: &str) -> SimpleLockResult<SemaphoreLock> {
        imp::Handle::open(name.to_owned(), self.mode, self.owner).map(SemaphoreLock::from)
    }
}

impl From<imp::Handle> for SemaphoreLock {
    fn from(imp: imp::Handle) -> SemaphoreLock {
        SemaphoreLock { imp }
    }
}

impl SemaphoreLock {
    /// Opens the lock `name`, creating it (mode `0o600`: only its owner may use it) if it does
    /// not exist. The handle does not hold the lock.
    ///
    /// `name` is `"/name"` or `"name"` (the same lock), at most 251 bytes after the `/`,
    /// without any other `/` or a NUL.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] naming the broken rule;
    /// [`SimpleLockError::PermissionDenied`] if the object exists and we may not read and write
    /// it, it belongs to another user, or its mode is wider than `0o600` (the source names the
    /// owner, the mode and the way out; see "Permissions" in the crate docs);
    /// [`SimpleLockError::UnknownError`] if the object is not a lock object (another size, no
    /// valid header: foreign, truncated or zeroed), if it is used from another pid or time
    /// namespace, if `/proc` or `/proc/self/ns` cannot be read, if `/dev/shm` is full (the
    /// source is `ENOSPC`, kind `StorageFull`), or if a system call fails.
    pub fn named(name: &str) -> SimpleLockResult<SemaphoreLock> {
        SemaphoreLock::options().named(name)
    }

    /// How to open a lock beyond its name: its mode, another owner to accept.
    pub fn options() -> SemaphoreLockOptions {
        SemaphoreLockOptions::default()
    }

    /// 0.4's name of [`named`](SemaphoreLock::named).
    ///
    /// # Errors
    /// As [`named`](SemaphoreLock::named).
    #[deprecated(since = "0.5.0", note = "use `SemaphoreLock::named(name)` instead")]
    pub fn new(name: impl Into<String>) -> SimpleLockResult<SemaphoreLock> {
        SemaphoreLock::named(&name.into())
    }

    /// The lock `name`, created with `mode`; see [`SemaphoreLockOptions::with_mode`].
    ///
    /// # Errors
    /// As [`named`](SemaphoreLock::named).
    #[deprecated(
        since = "0.5.0",
        note = "use `SemaphoreLock::options().with_mode(mode).named(name)` instead"
    )]
    pub fn with_mode(name: impl Into<String>, mode: u32) -> SimpleLockResult<SemaphoreLock> {
        SemaphoreLock::options().with_mode(mode).named(&name.into())
    }

    /// The lock `name`, created with `mode`, accepting `owner`'s object; see
    /// [`SemaphoreLockOptions::with_owner`].
    ///
    /// # Errors
    /// As [`named`](SemaphoreLock::named).
    #[deprecated(
        since = "0.5.0",
        note = "use `SemaphoreLock::options().with_mode(mode).with_owner(owner).named(name)` instead"
    )]
    pub fn with_mode_and_owner(
        name: impl Into<String>,
        mode: u32,
        owner: u32,
    ) -> SimpleLockResult<SemaphoreLock> {
        SemaphoreLock::options()
            .with_mode(mode)
            .with_owner(owner)
            .named(&name.into())
    }

    /// The name of the lock, in its canonical form `"/name"` (also when opened as `"name"`).
    ///
    /// 0.4 returned an owned `String`, and a return type cannot be deprecated: it stays (the
    /// copy is made off the lock's paths).
    pub fn name(&self) -> String {
        self.imp.name()
    }

    /// The file of the lock `name`'s shared memory object, `/dev/shm/sl.NAME`, for tools that
    /// show where a lock lives; nothing is opened or created (as
    /// `FileLock::named_path` for a file lock).
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] naming the broken rule.
    pub fn named_path(name: &str) -> SimpleLockResult<PathBuf> {
        Ok(PathBuf::from(crate::name::check(name)?.path()))
    }

    /// Deletes the lock `name`'s shared memory object (like `sem_unlink`), safely even while
    /// other processes use the name. Returns `false` if there was nothing to delete.
    ///
    /// It waits until it holds the lock, unlinks the name, and marks the old object removed in
    /// the same step as it lets go; every handle that later uses the old object opens the name
    /// again (creating a new object) and goes on there. So, unlike `sem_unlink` followed by a
    /// new `sem_open`, removing never lets two holders in. Holders are not interrupted: removal
    /// waits for them.
    ///
    /// # Errors
    /// Those of [`named`](SemaphoreLock::named) and of [`ConcreteLock::hang_lock`] (among them
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds the lock through another handle),
    /// and [`SimpleLockError::PermissionDenied`] if we may use the object but not delete it
    /// (only its owner may, in the sticky `/dev/shm`).
    pub fn remove(name: impl Into<String>) -> SimpleLockResult<bool> {
        imp::Handle::remove(name)
    }

    /// Like [`remove`](SemaphoreLock::remove), but waits at most `timeout` for the holder: the
    /// way out when a process holds the lock for good (a stopped process, or one that never
    /// releases). Then it fails with [`SimpleLockError::TimedOut`] naming the holder and deletes
    /// nothing; end that process, and the next removal (or lock) takes the lock over.
    ///
    /// # Errors
    /// As [`remove`](SemaphoreLock::remove), and [`SimpleLockError::TimedOut`].
    pub fn remove_within(name: impl Into<String>, timeout: Duration) -> SimpleLockResult<bool> {
        imp::Handle::remove_within(name, timeout)
    }

    /// Opens the lock `name` only if its shared memory object exists, without creating it:
    /// for looking at a lock that may not be there (`status`, `holder`). `Ok(None)` if there is
    /// none. The handle is a full handle; should the object be removed later, it opens the name
    /// again like any other handle, creating the object with mode `0o600`.
    ///
    /// # Errors
    /// As [`named`](SemaphoreLock::named).
    pub fn open_existing(name: impl Into<String>) -> SimpleLockResult<Option<SemaphoreLock>> {
        Ok(imp::Handle::open_existing(name)?.map(SemaphoreLock::from))
    }

    /// Deletes this lock's shared memory object, like [`remove`](SemaphoreLock::remove): at
    /// once if this handle holds the lock, else after waiting for it.
    ///
    /// # Errors
    /// As [`remove`](SemaphoreLock::remove). On an error the lock is not held by this handle
    /// any more (it was released, or never acquired).
    pub fn unlink(self) -> SimpleLockResult<()> {
        self.imp.unlink()
    }
}

/// What `SemaphorePermits` needs of the lock words it is made of (see `lock.rs`).
#[cfg(target_os = "linux")]
impl SemaphoreLock {
    pub(crate) fn try_lock_after_sleep(&mut self) -> SimpleLockResult<()> {
        self.imp.try_lock_after_sleep()
    }

    pub(crate) fn looks_free(&self) -> bool {
        self.imp.looks_free()
    }

    pub(crate) fn record_since(&self, since: std::time::SystemTime) {
        self.imp.record_since(since);
    }

    pub(crate) fn holder_since(&self) -> SimpleLockResult<Option<Holder>> {
        self.imp.holder_since()
    }

    pub(crate) fn arm_waiter(&self) -> Option<(&std::sync::atomic::AtomicU64, u32)> {
        self.imp.arm_waiter()
    }

    pub(crate) fn watch_holder(
        &self,
        death: &mut crate::death::HolderWatch,
    ) -> SimpleLockResult<bool> {
        self.imp.watch_holder(death)
    }

    /// For the tests: the lock looks held by `token` (see `lock::testing`).
    #[cfg(test)]
    pub(crate) fn held_by(&self, token: u64) {
        self.imp.held_by(token);
    }
}

/// Each method is the platform handle's, inlined: the uncontended `try_lock` + `try_unlock`
/// stay one compare-and-swap each.
/// Async waits without blocking the runtime's thread, on any runtime: the async waiters of one
/// lock in a process share one watcher thread asleep on the futex (with the feature `tokio`, on
/// a tokio runtime, one io_uring futex wait its reactor watches, where the kernel has it); see
/// "Async waits" in the [crate docs](crate).
impl AsyncConcreteLock for SemaphoreLock {
    /// The waker lives with the lock's watcher, keyed by the handle.
    type WaitState = ();

    /// Takes the lock by the same compare-and-swap as `try_lock`; when it is held, registers
    /// the task with the lock's watcher thread and returns `Pending`. A holder that died is
    /// taken over. Unlike `hang_lock`, it never reports `WouldDeadlock`: tasks on one thread
    /// interleave, so another handle of the same thread holding the lock will release it.
    fn poll_lock(
        &mut self,
        _: &mut Option<()>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        self.imp.poll_lock(cx)
    }

    fn cancel_wait(&mut self) {
        self.imp.cancel_wait()
    }
}

impl ConcreteLock for SemaphoreLock {
    #[inline]
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.imp.status()
    }
    #[inline]
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.imp.try_lock()
    }
    #[inline]
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.imp.hang_lock()
    }
    #[inline]
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.imp.try_unlock()
    }
    #[inline]
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.imp.timed_lock(timeout)
    }
    #[inline]
    fn previous_holder(&self) -> PreviousHolder {
        self.imp.previous_holder()
    }
    #[inline]
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        self.imp.holder()
    }
}

impl fmt::Debug for SemaphoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.imp, f)
    }
}
