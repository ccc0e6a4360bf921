//! [`FileLock`]: the handle, its acquisition and release, the holder record bookkeeping, and the
//! timed wait; the crate docs say why it works as it does.

use std::fmt;
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(windows)]
use std::os::windows::io::{AsHandle, BorrowedHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use simplelock_core::{
    Backoff, ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
    Wait,
};

use crate::record::{self, RECORD_LEN, Record, State};
use crate::{dir, sys};

// The async wait (feature `tokio`): a child module, it uses this one's private steps.
#[cfg(all(feature = "tokio", unix))]
#[path = "async_lock.rs"]
mod async_lock;
#[cfg(all(feature = "tokio", unix))]
pub use async_lock::FileWait;

/// How a handle takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One holder at a time (`LOCK_EX`).
    Exclusive,
    /// Any number of shared holders and no exclusive one (`LOCK_SH`).
    Shared,
}

/// The first pause of `timed_lock` while nothing happens to the file.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The pause after a wake-up by an event that was not (yet) the release.
const PAUSE_AFTER_EVENT: Duration = Duration::from_micros(100);
/// How many quick tries follow an event that announces a release (the record says `free`, or
/// a descriptor was closed): the unlock lands microseconds after the event, and a pause of
/// [`PAUSE_AFTER_EVENT`] would add that much to every handoff.
const TRIES_AFTER_RELEASE: u32 = 64;
/// The longest pause of `timed_lock`: how late a release that touches nothing is noticed.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause of `timed_lock` without inotify (no instance left for this user, other
/// systems): every release is noticed within this time, at about a hundred tries a second.
const MAX_BLIND_PAUSE: Duration = Duration::from_millis(10);
/// The longest a timed waiter stays deaf to events after a run of events that did not bring
/// the lock (a holder writing the file): it bounds the waiter's wake-ups to about a hundred a
/// second, and how late it notices a release meanwhile.
const MAX_DEAF: Duration = Duration::from_millis(10);

/// What the file says after an event, for a timed waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// The record says `free`: a release is landing.
    Free,
    /// The record says `held`: someone else holds it.
    Held,
    /// The file has no record of ours: the event may have been a holder's last close.
    Maybe,
}

/// Each handle gets an id, for the deadlock registry.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// The folder for named locks: `$SIMPLELOCK_DIR`, else `/run/lock/simplelock-<uid>` (or
/// `/dev/shm/simplelock-<uid>`, or `<temp dir>/simplelock-<uid>` where that is not possible),
/// created if missing — the same for every process of the user whatever its environment.
///
/// See "Names and the lock folder" in the [crate docs](crate) for the rules.
///
/// # Errors
/// [`SimpleLockError::PermissionDenied`] naming the folder if it cannot be created, or if the
/// default folder exists but is a symbolic link, not a folder, owned by another user or
/// writable by others (the error's `source()` says which); other errors of creating it.
pub fn lock_dir() -> SimpleLockResult<PathBuf> {
    dir::lock_dir_with(|key| std::env::var_os(key), &std::env::temp_dir())
}

/// A handle on the lock in one file; see the [crate docs](crate) for how it works.
///
/// Made by [`FileLock::at_path`] (a path), [`FileLock::named`] (a name in the
/// [lock folder](lock_dir)) or [`FileLock::options`] (shared, another folder), exclusive unless
/// made [shared](FileLockOptions::with_shared). Use it through
/// [`ConcreteLock`], directly or wrapped by a [`LockBuilder`](simplelock_core::LockBuilder).
/// Dropping a handle that holds the lock releases it (ignoring errors; call
/// [`try_unlock`](ConcreteLock::try_unlock) to see them).
///
/// A `FileLock` is `Send` (acquire on one thread, release on another) and `Sync` (`status`,
/// `holder` and `previous_holder` take `&self`); it is not `Clone`: open another handle instead.
pub struct FileLock {
    path: PathBuf,
    /// `path` made absolute when the handle was made, for re-opening the file (in a forked
    /// child, or to try it for `status`): the current folder may have changed since.
    open_path: PathBuf,
    fd: sys::LockFd,
    /// The mode of the next acquisition.
    mode: Mode,
    /// The process that opened `fd`; in any other process this is an inherited copy.
    opened_by: u32,
    id: u64,
    /// `open_path` as the system takes it (a C string on Unix), for the check after each
    /// acquisition that the path still names the file we locked.
    c_path: sys::PathArg,
    /// A lock file of a lock folder (made by `named`): the only files that keep the
    /// holder record. Any other file may be someone's data, and is never written.
    managed: bool,
    /// The file holds someone's data: the record is never read again nor written.
    foreign: bool,
    /// Whether each acquisition checks that the path still names the file it locked (see
    /// [`FileLockOptions::with_path_check`]).
    check_path: bool,
    hold: Option<Hold>,
    previous: PreviousHolder,
}

/// What a handle knows about its current hold.
#[derive(Debug, Clone, Copy)]
struct Hold {
    mode: Mode,
    since: SystemTime,
    /// The record this hold wrote, if it wrote one: the release writes `free` only over these
    /// very bytes.
    record: Option<[u8; RECORD_LEN]>,
}

/// How many times in a row an acquisition may find the file replaced under it and start again
/// on the new one before it gives up: only someone replacing the file in a loop gets there.
const MAX_REPLACED: u32 = 1000;

/// How to open a [`FileLock`] beyond a name or a path, from [`FileLock::options`]: `with_*`
/// steps, then [`named`](FileLockOptions::named) or [`at_path`](FileLockOptions::at_path).
#[derive(Debug, Clone, Default)]
#[must_use = "the options open nothing until `named` or `at_path` is called"]
pub struct FileLockOptions {
    shared: bool,
    folder: Option<PathBuf>,
    /// `with_holder_record(false)`.
    no_record: bool,
    /// `with_path_check(false)`.
    no_path_check: bool,
}

impl FileLockOptions {
    /// Take the lock shared (`true`): many shared holders at once, no exclusive one meanwhile;
    /// see "Shared (reader) locks" in the [crate docs](crate). Exclusive by default.
    pub fn with_shared(mut self, shared: bool) -> FileLockOptions {
        self.shared = shared;
        self
    }

    /// Put named locks in `folder` rather than in the [lock folder](lock_dir): the folder must
    /// exist, and is used as it is.
    pub fn with_folder(mut self, folder: impl Into<PathBuf>) -> FileLockOptions {
        self.folder = Some(folder.into());
        self
    }

    /// Keep the holder record in a named lock's file (`true`, the default), or not: then
    /// [`previous_holder`](ConcreteLock::previous_holder) is `Unknown`,
    /// [`holder`](ConcreteLock::holder) of another process has no "since" (of this handle's own
    /// hold it has one, to a few milliseconds), and a lock+unlock
    /// pair saves the record's `pread` and two `pwrite`s (see "Raw speed" in the
    /// [crate docs](crate)). Handles with and without the record exclude each other as usual,
    /// but the record then only tells of the holds of handles that keep it: a handle with the
    /// record may be told of a death older than the holds without it. Use one setting per lock.
    /// Files given by path never get a record anyway.
    pub fn with_holder_record(mut self, record: bool) -> FileLockOptions {
        self.no_record = !record;
        self
    }

    /// Check after every acquisition that the path still names the file that was locked
    /// (`true`, the default), or not. Without the check a lock+unlock pair is two `flock`
    /// calls and nothing more, as with `flock(1)`, fd-lock or std's `File::lock` — and, as with
    /// them, a handle that opened the file before someone deleted or replaced it locks the old
    /// file, which excludes nobody who opens the path now: two holders. Turn it off only where
    /// nothing deletes or replaces the lock file while the lock is in use (see "The unlink
    /// race" and "Raw speed" in the [crate docs](crate)).
    pub fn with_path_check(mut self, check: bool) -> FileLockOptions {
        self.no_path_check = !check;
        self
    }

    /// A handle on the lock called `name`: the file `<name>.lock` in the folder (the
    /// [lock folder](lock_dir) unless [`with_folder`](FileLockOptions::with_folder) chose
    /// another), which is the lock's own and keeps the holder record (do not keep data in it).
    ///
    /// # Errors
    /// Those of [`FileLock::named`].
    pub fn named(self, name: &str) -> SimpleLockResult<FileLock> {
        let file = dir::lock_file_name(name)?;
        let folder = match self.folder {
            Some(ref folder) => folder.clone(),
            None => lock_dir()?,
        };
        self.opened(FileLock::at_path(folder.join(file))?.managed())
    }

    /// A handle on the lock in the file at `path`, as [`FileLock::at_path`] makes it.
    ///
    /// # Errors
    /// Those of [`FileLock::at_path`].
    pub fn at_path(self, path: impl Into<PathBuf>) -> SimpleLockResult<FileLock> {
        self.opened(FileLock::at_path(path)?)
    }

    fn opened(&self, mut lock: FileLock) -> SimpleLockResult<FileLock> {
        if self.shared {
            lock.mode = Mode::Shared;
        }
        if self.no_record {
            lock.managed = false;
        }
        lock.check_path = !self.no_path_check;
        Ok(lock)
    }
}

impl FileLock {
    /// A handle on the lock in the file at `path`, created if missing (mode 0644 less the
    /// umask), never truncated, never deleted, never written: it may be a data file that the
    /// holder writes (so there is no holder record, and
    /// [`previous_holder`](ConcreteLock::previous_holder) is `Unknown`; use
    /// [`named`](FileLockOptions::named) with [a folder](FileLockOptions::with_folder) for a
    /// lock file that keeps one). The handle does not hold the lock yet.
    ///
    /// A relative path is opened relative to the current folder now, and names that file for
    /// the life of the handle (also when it is re-opened, in a forked child, after a change of
    /// folder); [`path`](FileLock::path) returns it as given.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] if the path is empty, contains a NUL byte, is a symbolic
    /// link, goes through a symbolic link below a folder others may write to, is a folder or not
    /// a regular file, or if its folder does not exist; [`SimpleLockError::PermissionDenied`]
    /// if the file can be neither created nor opened (not even read-only), or if another user
    /// could delete or replace it while it is held (see "The unlink race" in the
    /// [crate docs](crate)); others from the system. Every error names the path.
    pub fn at_path(path: impl Into<PathBuf>) -> SimpleLockResult<FileLock> {
        let path = path.into();
        let name = path.display().to_string();
        check_path(&path, &name)?;
        sys::init();
        let fd = sys::open(&path, &name)?;
        Ok(FileLock::with_fd(path, fd))
    }

    /// A handle on the file `fd` has open, found at `path`.
    fn with_fd(path: PathBuf, fd: sys::LockFd) -> FileLock {
        let open_path = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
        let c_path = sys::path_arg(&open_path);
        FileLock {
            path,
            open_path,
            c_path,
            managed: false,
            fd,
            mode: Mode::Exclusive,
            opened_by: sys::current_pid(),
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            foreign: false,
            check_path: true,
            hold: None,
            previous: PreviousHolder::Unknown,
        }
    }

    /// A handle on the lock in the file at `path` if that file exists, without creating
    /// anything (for looking at a lock: `status`, `holder`); `Ok(None)` if the file or its
    /// folder does not exist.
    ///
    /// # Errors
    /// Those of [`at_path`](FileLock::at_path), but for a missing file or folder.
    pub fn open_existing<P: Into<PathBuf>>(path: P) -> SimpleLockResult<Option<FileLock>> {
        let path = path.into();
        let name = path.display().to_string();
        check_path(&path, &name)?;
        sys::init();
        Ok(sys::open_existing(&path, &name)?.map(|fd| FileLock::with_fd(path, fd)))
    }

    /// The path of the lock file of the lock called `name` ([`named`](FileLock::named)),
    /// without creating anything.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks.
    pub fn named_path(name: &str) -> SimpleLockResult<PathBuf> {
        let file = dir::lock_file_name(name)?;
        Ok(dir::chosen_dir(|key| std::env::var_os(key), &std::env::temp_dir()).join(file))
    }

    /// A handle on the lock called `name` if its file exists, without creating the lock
    /// folder nor the file; `Ok(None)` if either is missing.
    ///
    /// # Errors
    /// Those of [`named`](FileLock::named), but for a missing folder or file.
    pub fn named_existing(name: &str) -> SimpleLockResult<Option<FileLock>> {
        let path = FileLock::named_path(name)?;
        if let Some(folder) = path.parent()
            && folder.exists()
        {
            dir::check_existing_dir(|key| std::env::var_os(key), &std::env::temp_dir())?;
        }
        Ok(FileLock::open_existing(path)?.map(FileLock::managed))
    }

    /// This handle, keeping the holder record: for files in a lock folder.
    fn managed(mut self) -> FileLock {
        self.managed = true;
        self
    }

    /// 0.4's name of [`at_path`](FileLock::at_path).
    ///
    /// # Errors
    /// Those of [`at_path`](FileLock::at_path).
    #[deprecated(since = "0.5.0", note = "use `FileLock::at_path(path)` instead")]
    pub fn new<P: Into<PathBuf>>(path: P) -> SimpleLockResult<FileLock> {
        FileLock::at_path(path)
    }

    /// How to open a lock beyond a name or a path: shared, in a folder of your choice.
    ///
    /// ```
    /// # let dir = std::env::temp_dir();
    /// use simplelock_file::FileLock;
    /// let readers = FileLock::options().with_shared(true).with_folder(&dir).named("catalogue")?;
    /// assert!(readers.is_shared());
    /// # Ok::<(), simplelock_core::SimpleLockError>(())
    /// ```
    pub fn options() -> FileLockOptions {
        FileLockOptions::default()
    }

    /// A handle that takes the lock in the file at `path` shared.
    ///
    /// # Errors
    /// Those of [`at_path`](FileLock::at_path).
    #[deprecated(
        since = "0.5.0",
        note = "use `FileLock::options().with_shared(true).at_path(path)` instead"
    )]
    pub fn new_shared<P: Into<PathBuf>>(path: P) -> SimpleLockResult<FileLock> {
        FileLock::options().with_shared(true).at_path(path)
    }

    /// A handle on the lock called `name`: the file `<name>.lock` in the [lock folder](lock_dir),
    /// which is created if missing. The file is the lock's own, and keeps the holder record.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks (see the
    /// [crate docs](crate)), the errors of [`lock_dir`] and of [`at_path`](FileLock::at_path).
    pub fn named(name: &str) -> SimpleLockResult<FileLock> {
        FileLock::options().named(name)
    }

    /// A handle on the lock called `name` in the folder `dir`: the file `<dir>/<name>.lock`,
    /// which is the lock's own and keeps the holder record (do not keep data in it). The folder
    /// must exist; it is used as it is.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks (see the
    /// [crate docs](crate)), and the errors of [`at_path`](FileLock::at_path).
    #[deprecated(
        since = "0.5.0",
        note = "use `FileLock::options().with_folder(dir).named(name)` instead"
    )]
    pub fn named_in(dir: impl AsRef<Path>, name: &str) -> SimpleLockResult<FileLock> {
        FileLock::options().with_folder(dir.as_ref()).named(name)
    }

    /// This handle, taking the lock shared from its next acquisition on: many shared holders
    /// at once, no exclusive one meanwhile.
    ///
    /// A hold the handle has now keeps its mode until it is released: nothing is converted.
    #[must_use]
    #[deprecated(
        since = "0.5.0",
        note = "open the handle with `FileLock::options().with_shared(true)` instead"
    )]
    pub fn shared(mut self) -> FileLock {
        self.mode = Mode::Shared;
        self
    }

    /// Whether this handle takes the lock shared.
    pub fn is_shared(&self) -> bool {
        self.mode == Mode::Shared
    }

    /// Whether the file could only be opened read-only: the handle still locks (flock does not
    /// need write access), but it cannot keep the record, so its
    /// [`previous_holder`](ConcreteLock::previous_holder) is `Unknown` when it locks exclusively.
    pub fn is_read_only(&self) -> bool {
        !self.fd.writable
    }

    /// The path of the lock file, as given. (0.4 returned an owned `PathBuf`, and a return
    /// type cannot be deprecated: it stays; the copy is made off the lock's paths.)
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// How errors name the lock.
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether this handle holds the lock: it acquired it, and this is the process that did.
    fn holds(&self) -> bool {
        self.hold.is_some() && self.opened_by == sys::current_pid()
    }

    /// Checks before an acquisition: not held yet, and an open file description of our own.
    fn prepare_to_lock(&mut self) -> SimpleLockResult<()> {
        if self.holds() {
            return Err(SimpleLockError::already_held(self.name()));
        }
        if self.opened_by != sys::current_pid() {
            // Inherited across fork: the descriptor is shared with the parent, whose flock it
            // may carry. Locking through it would "succeed" while the parent holds the lock, so
            // open the file again. Dropping the copy only closes the child's descriptor.
            self.reopen()?;
            self.opened_by = sys::current_pid();
            self.hold = None;
            self.previous = PreviousHolder::Unknown;
        }
        Ok(())
    }

    /// One non-blocking attempt; `Ok(false)` if someone else holds the lock.
    fn try_acquire(&mut self) -> SimpleLockResult<bool> {
        let mut replaced = 0;
        loop {
            match self.fd.lock(self.mode, Wait::Try) {
                Ok(true) => {
                    if self.locked_the_file_at_path(&mut replaced)? {
                        self.acquired();
                        return Ok(true);
                    }
                }
                Ok(false) => return Ok(false),
                Err(err) => {
                    return Err(SimpleLockError::from_io(
                        self.name(),
                        "locking the lock file",
                        err,
                    ));
                }
            }
        }
    }

    /// Right after `flock` granted the lock: whether the path still names the file we locked.
    /// If not (deleted, replaced, its folder removed), the lock on the old file excludes
    /// nobody who opens the path now: it is given back, the path opened again, and the caller
    /// tries again on the new file.
    fn locked_the_file_at_path(&mut self, replaced: &mut u32) -> SimpleLockResult<bool> {
        if !self.check_path || self.fd.still_at(&self.c_path) {
            return Ok(true);
        }
        // Nothing is written into the old file: it is no longer the lock.
        let _ = self.fd.unlock();
        *replaced += 1;
        if *replaced > MAX_REPLACED {
            return Err(SimpleLockError::from_io(
                self.name(),
                "locking the lock file",
                std::io::Error::other(format!(
                    "the file was replaced under us {MAX_REPLACED} times in a row"
                )),
            ));
        }
        self.reopen()?;
        Ok(false)
    }

    /// Open the file at the path again (a forked child's own descriptor, or the file that
    /// replaced the one we had).
    fn reopen(&mut self) -> SimpleLockResult<()> {
        self.fd = sys::open(&self.open_path, &self.name())?;
        self.foreign = false;
        Ok(())
    }

    /// Whether the path no longer names the file we have open (a waiter checks it when it
    /// wakes, to wait on the new file).
    fn moved_away(&self) -> bool {
        self.check_path && !self.fd.still_at(&self.c_path)
    }

    /// Bookkeeping right after `flock` granted the lock: the record and the registry.
    fn acquired(&mut self) {
        let mode = self.mode;
        // The record keeps the exact time; without it, `holder()` of this handle shows it to a
        // few milliseconds (see `sys::coarse_now`).
        let since = if self.managed {
            SystemTime::now()
        } else {
            sys::coarse_now()
        };
        let can_write = mode == Mode::Exclusive && self.fd.writable;
        let mut record = false;
        self.previous = PreviousHolder::Unknown;
        if self.managed && !self.foreign && (can_write || mode == Mode::Shared) {
            let mut buf = [0u8; RECORD_LEN];
            if let Ok(len) = self.fd.read_record(&mut buf) {
                match record::parse(&buf[..len]) {
                    Record::Empty => {
                        self.previous = PreviousHolder::Released;
                        record = can_write;
                    }
                    Record::Ours(entry) => {
                        self.previous = match entry.state {
                            State::Held => PreviousHolder::Died,
                            State::Free => PreviousHolder::Released,
                        };
                        record = can_write;
                    }
                    // A torn record of ours is a file of exactly one record; a longer file
                    // that merely starts like one holds someone's data.
                    Record::Damaged if self.fd.len().is_ok_and(|len| len <= RECORD_LEN as u64) => {
                        record = can_write;
                    }
                    Record::Damaged | Record::Foreign => self.foreign = true,
                }
            }
        }
        let mut written = None;
        if record {
            let held = record::format(State::Held, self.opened_by, since);
            // A failed write leaves the lock held and correct; see "The limits" in the docs.
            if self.fd.write_record(&held).is_ok() {
                written = Some(held);
            }
        }
        sys::registry::add(sys::Held {
            dev: self.fd.dev,
            ino: self.fd.ino,
            exclusive: mode == Mode::Exclusive,
            handle: self.id,
        });
        self.hold = Some(Hold {
            mode,
            since,
            record: written,
        });
    }

    /// Release a hold of this process: the record, then the lock, then the registry.
    fn release(&mut self) -> SimpleLockResult<()> {
        let Some(hold) = self.hold else {
            return Err(SimpleLockError::not_held(self.name()));
        };
        if let Some(held) = hold.record {
            // Only over our own record: the holder may have written its data into the file
            // meanwhile, and then the file is no longer ours to write.
            let mut now = [0u8; RECORD_LEN];
            if self
                .fd
                .read_record(&mut now)
                .is_ok_and(|len| len == RECORD_LEN)
                && now == held
            {
                let free = record::format(State::Free, self.opened_by, SystemTime::now());
                // A failed write only makes the next holder report `Died`; the release goes on.
                let _ = self.fd.write_record(&free);
            }
        }
        self.fd.unlock().map_err(|err| {
            SimpleLockError::unable_to_unlock(self.name(), "unlocking the lock file", Some(err))
        })?;
        sys::registry::remove(self.id);
        self.hold = None;
        Ok(())
    }

    /// `WouldDeadlock` if this thread holds the lock through another handle in a way that
    /// excludes this handle's mode.
    fn check_deadlock(&self) -> SimpleLockResult<()> {
        let exclusive = self.mode == Mode::Exclusive;
        if sys::registry::would_deadlock(self.fd.dev, self.fd.ino, exclusive, self.id) {
            return Err(SimpleLockError::would_deadlock(self.name()));
        }
        Ok(())
    }

    /// The lock's state for a handle that does not hold it, by trying it (fallback when
    /// `/proc/locks` cannot tell).
    fn status_by_trying(&self) -> SimpleLockResult<LockStatus> {
        let fresh;
        // An inherited descriptor may carry the parent's lock: a try + unlock on it would
        // release the parent's lock. Use a descriptor of our own.
        let fd = if self.opened_by == sys::current_pid() {
            &self.fd
        } else {
            fresh = sys::open(&self.open_path, &self.name())?;
            &fresh
        };
        let failed = |err| SimpleLockError::from_io(self.name(), "trying the lock file", err);
        if fd.lock(self.mode, Wait::Try).map_err(failed)? {
            fd.unlock().map_err(|err| {
                SimpleLockError::unable_to_unlock(
                    self.name(),
                    "releasing the lock taken to check its status",
                    Some(err),
                )
            })?;
            Ok(LockStatus::Open)
        } else {
            Ok(LockStatus::Taken)
        }
    }

    /// Who holds the lock, for a handle that knows it is taken (the failure paths): from
    /// `/proc/locks`, else from the record.
    fn holder_of_others(&self) -> Option<Holder> {
        match sys::flock_holders(self.fd.dev, self.fd.ino) {
            Ok(sys::Lookup::Holders(holders)) => self.describe(&holders),
            Ok(sys::Lookup::Uncertain) | Err(_) => self.holder_from_record(),
        }
    }

    /// The holder to name among `holders`: an exclusive one if any, else the first reader.
    fn describe(&self, holders: &[sys::FlockHolder]) -> Option<Holder> {
        let chosen = holders
            .iter()
            .find(|h| h.exclusive)
            .or_else(|| holders.first())?;
        if chosen.pid == 0 {
            return None; // outside our pid namespace
        }
        // The process that took the lock may be gone while programs it started keep the open
        // file description, and so the lock: name one of those, or nobody.
        let pid = if sys::alive(chosen.pid) {
            chosen.pid
        } else {
            sys::live_holder(self.fd.dev, self.fd.ino)?
        };
        let holder = Holder::new(pid);
        Some(match self.read_entry() {
            Some(entry) if entry.state == State::Held && entry.pid == pid => {
                holder.with_since(entry.since)
            }
            _ => holder,
        })
    }

    /// The record's holder, if the record says the lock is held.
    fn holder_from_record(&self) -> Option<Holder> {
        self.read_entry()
            .filter(|entry| entry.state == State::Held)
            .map(|entry| Holder::new(entry.pid).with_since(entry.since))
    }

    fn read_entry(&self) -> Option<record::Entry> {
        let mut buf = [0u8; RECORD_LEN];
        let len = self.fd.read_record(&mut buf).ok()?;
        match record::parse(&buf[..len]) {
            Record::Ours(entry) => Some(entry),
            Record::Empty | Record::Damaged | Record::Foreign => None,
        }
    }

    /// What the file says after an event: the record of a lock file is `free` (written just
    /// before the unlock) or `held` (another waiter won, or the holder wrote into the file:
    /// nothing to try); any other file says nothing, and the event may be a close, which comes
    /// just before the kernel drops a dead holder's lock.
    fn release_announced(&self) -> Announced {
        if !self.managed {
            return Announced::Maybe;
        }
        match self.read_entry() {
            Some(entry) if entry.state == State::Free => Announced::Free,
            Some(_) => Announced::Held,
            None => Announced::Maybe,
        }
    }

    /// A few tries in a row, yielding the processor between them, until the deadline at most:
    /// for the moment between a release's announcement and its unlock.
    fn try_soon(&mut self, wait: &Wait, tries: u32) -> SimpleLockResult<bool> {
        for _ in 0..tries {
            if self.try_acquire()? {
                return Ok(true);
            }
            if wait.is_expired() {
                break;
            }
            std::thread::yield_now();
        }
        Ok(false)
    }

    /// The error for a wait that is over, naming the holder where known.
    fn out_of_time(&self, wait: &Wait) -> SimpleLockError {
        wait.out_of_time(self.name(), self.holder_of_others())
    }
}

/// An empty path or one with a NUL byte is refused before anything is opened.
fn check_path(path: &Path, name: &str) -> SimpleLockResult<()> {
    if path.as_os_str().is_empty() {
        return Err(SimpleLockError::invalid_name(name, "the path is empty"));
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(SimpleLockError::invalid_name(
            name,
            "the path contains a NUL byte",
        ));
    }
    Ok(())
}

impl ConcreteLock for FileLock {
    /// [`LockStatus::Mine`] if this handle holds the lock; otherwise, on Linux, what
    /// `/proc/locks` says (without touching the lock), elsewhere what a non-blocking try (at
    /// once undone) finds. For a shared handle, shared holders leave the lock
    /// [`Open`](LockStatus::Open).
    ///
    /// # Errors
    /// Only where the lock has to be tried: the errors of locking and unlocking it.
    fn status(&self) -> SimpleLockResult<LockStatus> {
        if self.holds() {
            return Ok(LockStatus::Mine);
        }
        match sys::flock_holders(self.fd.dev, self.fd.ino) {
            Ok(sys::Lookup::Holders(holders)) => {
                let excluded = holders
                    .iter()
                    .any(|h| self.mode == Mode::Exclusive || h.exclusive);
                Ok(if excluded {
                    LockStatus::Taken
                } else {
                    LockStatus::Open
                })
            }
            Ok(sys::Lookup::Uncertain) | Err(_) => self.status_by_trying(),
        }
    }

    /// Acquire the lock if nobody holds it in a conflicting way, or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] with the holder where known,
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds the lock, and the errors of
    /// re-opening the file in a forked child.
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.prepare_to_lock()?;
        if self.try_acquire()? {
            Ok(())
        } else {
            Err(SimpleLockError::already_locked(
                self.name(),
                self.holder_of_others(),
            ))
        }
    }

    /// Acquire the lock, waiting in a blocking `flock` as long as it takes; signals do not
    /// end the wait.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds the lock,
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds it through another handle.
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.prepare_to_lock()?;
        if self.try_acquire()? {
            return Ok(());
        }
        let mut replaced = 0;
        loop {
            self.check_deadlock()?;
            self.fd.lock(self.mode, Wait::Forever).map_err(|err| {
                SimpleLockError::from_io(self.name(), "waiting for the lock file", err)
            })?;
            // A waiter blocked on a file that was replaced meanwhile gets the old one: it then
            // waits again, on the new file.
            if self.locked_the_file_at_path(&mut replaced)? {
                self.acquired();
                return Ok(());
            }
        }
    }

    /// Release the lock: write `free` into the record (managed files, exclusive holds), then
    /// `flock(LOCK_UN)`.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle does not hold the lock (in a forked child:
    /// the parent's hold is not the child's), [`SimpleLockError::UnableToUnlock`] if `flock`
    /// fails.
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        if !self.holds() {
            return Err(SimpleLockError::not_held(self.name()));
        }
        self.release()
    }

    /// Acquire the lock, waiting at most `timeout`, woken by changes to the file (inotify)
    /// rather than by polling; see "Timed waits" in the [crate docs](crate).
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] with the holder where known, not before `timeout` has
    /// passed (at once for a zero timeout); [`SimpleLockError::AlreadyHeld`];
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds the lock through another handle
    /// (and the timeout is not zero).
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.prepare_to_lock()?;
        let wait = Wait::For(timeout).start();
        if self.try_acquire()? {
            return Ok(());
        }
        if wait.is_expired() {
            return Err(self.out_of_time(&wait));
        }
        self.check_deadlock()?;
        let mut watched = (self.fd.dev, self.fd.ino);
        let mut waiter = sys::Waiter::new(self.fd.file(), self.managed);
        // Without inotify nothing else wakes us: poll more often.
        let longest = if waiter.is_some() {
            MAX_PAUSE
        } else {
            MAX_BLIND_PAUSE
        };
        let mut pause = Backoff::new(FIRST_PAUSE, longest);
        // How long to stay deaf after an event that did not bring the lock: it doubles while
        // such events keep coming (a holder writing the file), so that they cost a few
        // wake-ups a second, not a core. `None` while events bring releases.
        let mut deaf: Option<Backoff> = None;
        loop {
            // The first round closes the race between the first try and the watch.
            if self.try_acquire()? {
                return Ok(());
            }
            if self.moved_away() {
                self.reopen()?;
            }
            if (self.fd.dev, self.fd.ino) != watched {
                // The file was replaced: wait on the new one.
                #[cfg_attr(
                    windows,
                    expect(clippy::drop_non_drop, reason = "Windows has no waiter to close")
                )]
                drop(waiter.take());
                waiter = sys::Waiter::new(self.fd.file(), self.managed);
                watched = (self.fd.dev, self.fd.ino);
                continue;
            }
            let Some(nap) = pause.next(&wait) else {
                return Err(self.out_of_time(&wait));
            };
            let wake = match &waiter {
                Some(waiter) => waiter.wait_undrained(nap),
                None => {
                    std::thread::sleep(nap);
                    sys::Wake::Timeout
                }
            };
            match wake {
                sys::Wake::Event => {
                    // Usually the release that sent the event has unlocked by the time we run:
                    // try before anything else (reading the events and the record comes after
                    // a failed try only).
                    if self.try_acquire()? {
                        return Ok(());
                    }
                    if let Some(waiter) = &waiter {
                        waiter.drain();
                    }
                    let announced = self.release_announced();
                    let tries = if deaf.is_none() {
                        TRIES_AFTER_RELEASE
                    } else {
                        1
                    };
                    if announced != Announced::Held && self.try_soon(&wait, tries)? {
                        return Ok(());
                    }
                    if announced == Announced::Free {
                        // A release another waiter won: the handoff traffic of a busy lock.
                        deaf = None;
                    } else {
                        let deafness =
                            deaf.get_or_insert_with(|| Backoff::new(PAUSE_AFTER_EVENT, MAX_DEAF));
                        wait.sleep(deafness.next(&Wait::Forever).unwrap_or(MAX_DEAF));
                    }
                    pause.reset(PAUSE_AFTER_EVENT);
                }
                sys::Wake::Timeout => deaf = None,
                // The same pause again: a signal neither ends nor extends the wait.
                sys::Wake::Interrupted => pause.reset(nap),
            }
        }
    }

    /// What this handle's last acquisition read in the record; see "The next holder can tell"
    /// in the [crate docs](crate) for when it is `Unknown`.
    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    /// This process, with the time it acquired the lock, if this handle holds it; otherwise the
    /// holder in `/proc/locks` (an exclusive one, or one of the readers), with `since` from the
    /// record where its pid matches; `None` if the lock is free or the holder cannot be told.
    ///
    /// # Errors
    /// Only where `/proc/locks` cannot be read and the lock has to be tried.
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        if let (true, Some(hold)) = (self.holds(), self.hold) {
            return Ok(Some(Holder::new(self.opened_by).with_since(hold.since)));
        }
        match sys::flock_holders(self.fd.dev, self.fd.ino) {
            Ok(sys::Lookup::Holders(holders)) => Ok(self.describe(&holders)),
            Ok(sys::Lookup::Uncertain) | Err(_) => Ok(match self.status_by_trying()? {
                LockStatus::Open => None,
                _ => self.holder_from_record(),
            }),
        }
    }
}

/// The descriptor of the open lock file, so that a program started by this process can inherit
/// the lock (as `flock(1)` does: clear its close-on-exec flag in the child, and the lock is held
/// as long as any process has the open file description, whatever happens to this one).
///
/// The descriptor is shared, not copied: an unlock through it, or through a copy a child
/// inherited, releases this handle's lock. Do not lock, unlock or close it yourself.
#[cfg(unix)]
impl AsFd for FileLock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The handle of the open lock file (Windows), for a program that is to inherit the lock: the
/// lock belongs to the handle, so a child that inherited a duplicate of it shares this
/// handle's lock. Do not lock, unlock or close it yourself.
#[cfg(windows)]
impl AsHandle for FileLock {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.fd.as_handle()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.holds() {
            // Drop cannot report an error; `try_unlock` is there for callers who care.
            let _ = self.release();
        }
        // Closing the descriptor (the `File` in `fd`) is all that is left; in a forked child it
        // only closes the child's copy.
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("held", &self.holds())
            .field("held_mode", &self.hold.map(|h| h.mode))
            .field("read_only", &!self.fd.writable)
            .field("managed", &self.managed)
            .field("check_path", &self.check_path)
            .field("foreign_content", &self.foreign)
            .field("previous_holder", &self.previous)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lock_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<FileLock>();
    }
}
