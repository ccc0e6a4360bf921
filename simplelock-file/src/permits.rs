//! [`FilePermits`]: a counting semaphore of N permits in one file, each permit a byte range
//! under an open-file-description lock (`F_OFD_SETLK`).
//!
//! # The file
//!
//! ```text
//! 0..64                 header: "slperm01", N (u32 LE), zeros; byte 63 is the wake-up byte
//! 64 + 32*i .. +32      permit i: its OFD write lock is the permit; its bytes the holder record
//!                       (state: 0 never taken, 1 held, 2 given back; pid; since)
//! ```
//!
//! # Why OFD byte-range locks
//!
//! - **The kernel gives a permit back when its holder dies**: an OFD lock belongs to the open
//!   file description, and the last close of it — at the latest when the process ends, SIGKILL
//!   included — drops the lock. No liveness check, no pid reuse question.
//! - **One file, N ranges**, rather than N lock files (portalocker's `BoundedSemaphore`): one
//!   object whose header says N, so a handle that asks for another N is refused (see below),
//!   and one inotify watch sees every release.
//! - **Per handle, not per process**: unlike classic `fcntl` locks, OFD locks of two handles in
//!   one process exclude each other, and closing some other descriptor of the file drops
//!   nothing (SQLite's trap). `flock` cannot lock ranges.
//!
//! # Waiting without polling
//!
//! A waiter watches the file with inotify (the crate's `Waiter`, reused from `FileLock`),
//! *before* it tries the N ranges, so that no release between its try and its sleep is missed.
//! A release writes "given back" into its permit's record, unlocks the range, then writes the
//! wake-up byte: that write (`IN_MODIFY`) comes after the unlock, so a woken waiter finds the
//! range free. A holder that dies writes nothing, but the kernel closes its descriptor, opened
//! for writing, which sends `IN_CLOSE_WRITE` — after the lock was dropped (locks are removed
//! when the file is closed, before the close notification). Every waiter wakes on every
//! release and tries again (a herd, cheap at the numbers of waiters semaphores see).
//!
//! One order is not promised: in `__fput` the kernel sends the close notification
//! (`fsnotify_close`) just before it drops the description's locks (`locks_remove_file`). A
//! waiter that tries at once could find the range still locked, and no later event would come.
//! (Measured here: a holder SIGKILLed 200 times, `IN_CLOSE_WRITE` seen every time, the range
//! free at the watcher's try every time — but nothing guarantees it.) So a wake-up that found
//! nothing is followed by short sleeps (50 µs, doubling) before the waiter settles into its
//! long one. Each sleep is capped at 250 ms as a safety net for releases that write
//! nothing (a foreign program unlocking a range).
//!
//! # Disagreeing N
//!
//! The first opener writes the header under a write lock on the header range (which no permit
//! holder uses), and every opener reads it under that lock: a semaphore that says 4 refuses a
//! handle that asks for 8 with [`SimpleLockError::permits_disagree`]'s error. The header lock
//! is held for two system calls; a crash inside drops it.
//!
//! # The previous holder
//!
//! Each permit's record says whether its last holder gave it back (state 2) or still held it
//! (state 1). A taker that finds "held" on the range it just locked knows the holder ended
//! without giving it back: [`PreviousHolder::Died`]. A holder killed between taking the range
//! and writing its record leaves "given back" behind: the next taker is told `Released`,
//! which is true in effect (it had done nothing yet).
//!
//! # What it does not cover
//!
//! - A forked child shares its parent's open file description, and so its OFD locks: the
//!   handle remembers the process that took its permit, and in any other process unlocking it
//!   is [`NotHeld`](SimpleLockError::NotHeld) and dropping it releases nothing (the parent's
//!   descriptor keeps the lock).
//! - The file deleted or replaced: after taking a range the handle checks that the path still
//!   names the file it has open (as `FileLock` does), and if not lets go and opens the path
//!   again, so no permit is ever *taken* on a file the path no longer names. Permits held when
//!   the file was deleted stay held on the old file, unseen by the new one's takers — as for
//!   `FileLock`, do not delete a semaphore's file while it is in use (in the lock folder, no
//!   other user can).
//! - Linux only: `F_OFD_SETLK` exists on Linux (3.15+); NFS and other network file systems are
//!   not supported (their locks may be lost silently).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use simplelock_core::permits::{HeldPermit, check_permits, first_holder, out_of_time};
use simplelock_core::{
    Backoff, ConcreteLock, Holder, LockStatus, PermitState, Permits, PreviousHolder,
    SimpleLockError, SimpleLockResult, Wait,
};

use crate::sys::{self, LockFd, Waiter, Wake};
use crate::{dir, lock_dir};

// The async wait (feature `tokio`): a child module, it uses this one's private steps.
#[cfg(feature = "tokio")]
#[path = "permits_async.rs"]
mod permits_async;

const MAGIC: &[u8; 8] = b"slperm01";
const HEADER_LEN: u64 = 64;
/// The byte a release writes to wake waiters: the header's last, which nothing reads.
const WAKE_BYTE: u64 = HEADER_LEN - 1;
const SLOT_LEN: u64 = 32;

const HELD: u8 = 1;
const GIVEN_BACK: u8 = 2;

/// The file name suffix of a named semaphore: not `.lock`, so that a lock and a semaphore of
/// the same name are two objects.
const SUFFIX: &str = ".permits";

/// `<name>.permits`, or the rule `name` breaks.
fn file_name(name: &str) -> SimpleLockResult<String> {
    let file = dir::lock_file_name(name)?;
    let stem = file.strip_suffix(".lock").unwrap_or(&file);
    let file = format!("{stem}{SUFFIX}");
    if file.len() > 255 {
        return Err(SimpleLockError::invalid_name(
            name,
            format!(
                "the name is {} bytes long, at most {} are allowed for a semaphore",
                name.len(),
                255 - SUFFIX.len()
            ),
        ));
    }
    Ok(file)
}

/// The first sleep after a wake-up that found no free permit, and of polling.
const FIRST_NAP: Duration = Duration::from_micros(50);
/// The longest sleep between tries where inotify is not available (then the waiter polls).
const POLL_MAX: Duration = Duration::from_millis(10);
/// The longest sleep in one inotify wait: a safety net for a release that wrote nothing (a
/// foreign program unlocking a range), never the normal way to notice one.
const WAKE_MAX: Duration = Duration::from_millis(250);

/// A handle on a counting semaphore of N permits kept in a file; it takes at most one permit.
///
/// A [`ConcreteLock`] whose lock takes one of the N permits (see [`simplelock_core::permits`]),
/// plus [`Permits`]. Dropping a holding handle gives its permit back; so does the death of its
/// process (the kernel drops the lock). See the [module docs](self) for the design.
///
/// ```no_run
/// use simplelock_core::{Lock, LockBuilder, SimpleLockError};
/// use simplelock_file::FilePermits;
///
/// // At most 4 builds at once, in every process of this user:
/// let mut build = LockBuilder::default().apply(FilePermits::named("builds", 4)?);
/// let guard = build.guard()?;
/// if guard.previous_holder_died() {
///     // the last build that held this permit was killed half way
/// }
/// # Ok::<(), SimpleLockError>(())
/// ```
pub struct FilePermits {
    fd: LockFd,
    path: PathBuf,
    name: String,
    permits: u32,
    /// The permit held, in the process that took it (a forked child is not the holder).
    held: HeldPermit,
    /// The process that opened `fd`: a forked child shares the description, and its locks.
    opened_by: u32,
    previous: PreviousHolder,
}

impl FilePermits {
    /// The most permits a file semaphore has.
    pub const MAX: u32 = 4096;

    /// A handle on the semaphore called `name` with `permits` permits: the file
    /// `<name>.permits` in the [lock folder](lock_dir), created if missing.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for a bad name, 0 permits or more than
    /// [`MAX`](FilePermits::MAX); the error of [`SimpleLockError::permits_disagree`] if the
    /// semaphore exists with another number of permits; the errors of [`lock_dir`] and
    /// [`at_path`](FilePermits::at_path).
    pub fn named(name: &str, permits: u32) -> SimpleLockResult<FilePermits> {
        let file = file_name(name)?;
        FilePermits::at_path(lock_dir()?.join(file), permits)
    }

    /// The file of the semaphore called `name`, without creating anything.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks.
    pub fn named_path(name: &str) -> SimpleLockResult<PathBuf> {
        let file = file_name(name)?;
        Ok(dir::chosen_dir(|key| std::env::var_os(key), &std::env::temp_dir()).join(file))
    }

    /// A handle on the semaphore called `name` if its file exists, creating nothing (no
    /// folder, no file, no header); `Ok(None)` if it does not exist.
    ///
    /// # Errors
    /// Those of [`named`](FilePermits::named), a disagreeing number of permits included, but
    /// for a missing folder or file.
    pub fn named_existing(name: &str, permits: u32) -> SimpleLockResult<Option<FilePermits>> {
        let path = FilePermits::named_path(name)?;
        if let Some(folder) = path.parent()
            && folder.exists()
        {
            dir::check_existing_dir(|key| std::env::var_os(key), &std::env::temp_dir())?;
        }
        let name = path.display().to_string();
        check_permits(&name, permits, FilePermits::MAX)?;
        let Some(fd) = sys::open_existing(&path, &name)? else {
            return Ok(None);
        };
        if fd
            .len()
            .map_err(|err| SimpleLockError::from_io(&name, "reading the semaphore", err))?
            == 0
        {
            return Ok(None); // created by an opener that has not written the header yet
        }
        FilePermits::with_fd(fd, path, name, permits).map(Some)
    }

    /// A handle on the semaphore with `permits` permits kept in the file at `path`, created if
    /// missing (opened as `FileLock` opens its files: no symbolic links followed where others
    /// could plant them, never truncated, regular files only). The file must be the
    /// semaphore's own: it holds the header and the holder records.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for 0 permits or more than [`MAX`](FilePermits::MAX);
    /// [`SimpleLockError::PermissionDenied`] if it can only be opened read-only; an error of
    /// kind `InvalidData` if the file is not a semaphore of ours; the error of
    /// [`SimpleLockError::permits_disagree`] if it has another number of permits; the errors
    /// of opening it.
    pub fn at_path(path: impl Into<PathBuf>, permits: u32) -> SimpleLockResult<FilePermits> {
        let path = path.into();
        let name = path.display().to_string();
        check_permits(&name, permits, FilePermits::MAX)?;
        let fd = sys::open(&path, &name)?;
        FilePermits::with_fd(fd, path, name, permits)
    }

    fn with_fd(
        fd: LockFd,
        path: PathBuf,
        name: String,
        permits: u32,
    ) -> SimpleLockResult<FilePermits> {
        if !fd.writable {
            return Err(SimpleLockError::permission_denied(
                &name,
                Some(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the semaphore file can only be opened read-only; its permits are write locks",
                )),
            ));
        }
        let handle = FilePermits {
            held: HeldPermit::new(format!("file:{}", path.display())),
            fd,
            path,
            name,
            permits,
            opened_by: std::process::id(),
            previous: PreviousHolder::Unknown,
        };
        handle.agree_on_permits()?;
        Ok(handle)
    }

    /// The semaphore's name as errors carry it: the path of its file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The semaphore's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the header if the file is new, else checks it, under the header lock.
    fn agree_on_permits(&self) -> SimpleLockResult<()> {
        let doing = |what: &str, err: io::Error| SimpleLockError::from_io(&self.name, what, err);
        self.range(libc::F_WRLCK, 0, HEADER_LEN, true)
            .map_err(|err| doing("locking the semaphore's header", err))?;
        let outcome = self.read_or_write_header();
        let unlocked = self.range(libc::F_UNLCK, 0, HEADER_LEN, false);
        outcome?;
        unlocked
            .map(drop)
            .map_err(|err| doing("unlocking the semaphore's header", err))
    }

    fn read_or_write_header(&self) -> SimpleLockResult<()> {
        let file = self.fd.file();
        let len = file
            .metadata()
            .map_err(|err| SimpleLockError::from_io(&self.name, "reading the semaphore", err))?
            .len();
        if len == 0 {
            let mut header = vec![0u8; (HEADER_LEN + SLOT_LEN * u64::from(self.permits)) as usize];
            header[..8].copy_from_slice(MAGIC);
            header[8..12].copy_from_slice(&self.permits.to_le_bytes());
            return file.write_all_at(&header, 0).map_err(|err| {
                SimpleLockError::from_io(&self.name, "writing the semaphore's header", err)
            });
        }
        let mut header = [0u8; HEADER_LEN as usize];
        let damaged = |why: String| {
            SimpleLockError::unknown(
                &self.name,
                format!("the file is not a simplelock semaphore: {why}"),
                None,
            )
            .with_kind(io::ErrorKind::InvalidData)
        };
        match file.read_exact_at(&mut header, 0) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(damaged(format!("it is {len} bytes long")));
            }
            Err(err) => {
                return Err(SimpleLockError::from_io(
                    &self.name,
                    "reading the semaphore's header",
                    err,
                ));
            }
        }
        if &header[..8] != MAGIC {
            return Err(damaged(
                "its header does not start with \"slperm01\"".into(),
            ));
        }
        let existing = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if existing != self.permits {
            return Err(SimpleLockError::permits_disagree(
                &self.name,
                existing,
                self.permits,
            ));
        }
        if len < HEADER_LEN + SLOT_LEN * u64::from(existing) {
            return Err(damaged(format!(
                "it is {len} bytes long, too short for {existing} permits"
            )));
        }
        Ok(())
    }

    /// Sets (or, with `F_UNLCK`, removes) this description's lock on `len` bytes at `start`;
    /// waits for it if `wait`. `Ok(false)`: held by another description (no wait).
    fn range(&self, kind: libc::c_int, start: u64, len: u64, wait: bool) -> io::Result<bool> {
        let flock = flock(kind, start, len);
        loop {
            let arg = if wait {
                FcntlArg::F_OFD_SETLKW(&flock)
            } else {
                FcntlArg::F_OFD_SETLK(&flock)
            };
            match fcntl(self.fd.file(), arg) {
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::EACCES) if !wait => return Ok(false),
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Whether another description holds a lock on permit `slot`'s range.
    fn taken_by_others(&self, slot: u32) -> io::Result<bool> {
        let (start, len) = slot_range(slot);
        let mut probe = flock(libc::F_WRLCK, start, len);
        fcntl(self.fd.file(), FcntlArg::F_OFD_GETLK(&mut probe))?;
        Ok(i32::from(probe.l_type) != libc::F_UNLCK)
    }

    fn read_slot(&self, slot: u32) -> io::Result<[u8; SLOT_LEN as usize]> {
        let mut record = [0u8; SLOT_LEN as usize];
        self.fd
            .file()
            .read_exact_at(&mut record, slot_range(slot).0)?;
        Ok(record)
    }

    fn write_slot(&self, slot: u32, state: u8, pid: u32, since: SystemTime) -> io::Result<()> {
        let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut record = [0u8; SLOT_LEN as usize];
        record[0] = state;
        record[4..8].copy_from_slice(&pid.to_le_bytes());
        record[8..16].copy_from_slice(&since.as_secs().to_le_bytes());
        record[16..20].copy_from_slice(&since.subsec_nanos().to_le_bytes());
        self.fd.file().write_all_at(&record, slot_range(slot).0)
    }

    /// Tries every permit once. `Ok(true)`: one is ours now.
    fn try_take(&mut self) -> SimpleLockResult<bool> {
        for slot in 0..self.permits {
            let (start, len) = slot_range(slot);
            let taken = self
                .range(libc::F_WRLCK, start, len, false)
                .map_err(|err| SimpleLockError::from_io(&self.name, "taking a permit", err))?;
            if !taken {
                continue;
            }
            if !self.still_at_path() {
                // Deleted or replaced: a permit of this file excludes nobody who opens the
                // path now. Let go, open the path again, and start over.
                let _ = self.range(libc::F_UNLCK, start, len, false);
                self.reopen()?;
                return self.try_take();
            }
            let record = self
                .read_slot(slot)
                .map_err(|err| self.give_up_slot(slot, "reading the permit's record", err))?;
            let pid = std::process::id();
            self.write_slot(slot, HELD, pid, SystemTime::now())
                .map_err(|err| self.give_up_slot(slot, "writing the permit's record", err))?;
            self.previous = if record[0] == HELD {
                PreviousHolder::Died
            } else {
                PreviousHolder::Released
            };
            self.held.took(slot);
            return Ok(true);
        }
        Ok(false)
    }

    /// Unlocks `slot` after a failure while taking it, and makes the error.
    fn give_up_slot(&self, slot: u32, doing: &str, err: io::Error) -> SimpleLockError {
        let (start, len) = slot_range(slot);
        let _ = self.range(libc::F_UNLCK, start, len, false);
        SimpleLockError::from_io(&self.name, doing, err)
    }

    fn still_at_path(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|named| named.dev() == self.fd.dev && named.ino() == self.fd.ino)
    }

    /// Opens the path again: a new open file description, whose locks are its own.
    fn reopen(&mut self) -> SimpleLockResult<()> {
        self.fd = sys::open(&self.path, &self.name)?;
        self.opened_by = std::process::id();
        self.agree_on_permits()
    }

    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        self.prepare_to_take(wait)?;
        if self.try_take()? {
            return Ok(());
        }
        let wait = wait.start();
        let mut backoff = Backoff::new(FIRST_NAP, POLL_MAX);
        let mut step = WAKE_MAX;
        loop {
            // Watch first, then try: a release between the try and the sleep wakes the sleep.
            let waiter = Waiter::new(self.fd.file(), true);
            if self.try_take()? {
                return Ok(());
            }
            let nap = match &waiter {
                Some(_) => wait.sleep_slice(step),
                None => backoff.next(&wait),
            };
            let Some(nap) = nap else {
                return Err(out_of_time(&wait, &self.name, self.holders()));
            };
            match waiter {
                Some(waiter) => match waiter.wait(nap) {
                    // A dead holder's close is notified just before the kernel drops its
                    // locks: a try right after the event may still find the range locked,
                    // and no later event comes. So after an event, the next sleeps are short
                    // (50 µs, doubling), until the herd has settled.
                    Wake::Event => step = FIRST_NAP,
                    Wake::Timeout => step = (step * 2).min(WAKE_MAX),
                    Wake::Interrupted => {}
                },
                None => std::thread::sleep(nap),
            }
        }
    }

    /// Before taking a permit with `wait`: the errors of [`HeldPermit::before_acquire`]
    /// (held already, a wait for ever by a thread that holds them all); in a forked child,
    /// forgets the parent's permit and takes a description of its own.
    fn prepare_to_take(&mut self, wait: Wait) -> SimpleLockResult<()> {
        self.held.before_acquire(&self.name, self.permits, wait)?;
        if self.opened_by != std::process::id() {
            // A forked child: the description is the parent's, and a range the parent holds
            // would be "taken" again by the child at once. Take permits on a description of
            // our own.
            self.reopen()?;
        }
        Ok(())
    }

    /// Whether this handle holds a permit, in this process (not a forked child).
    fn holds(&self) -> bool {
        self.held.permit().is_some()
    }
}

fn slot_range(slot: u32) -> (u64, u64) {
    (HEADER_LEN + SLOT_LEN * u64::from(slot), SLOT_LEN)
}

fn flock(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start as libc::off_t,
        l_len: len as libc::off_t,
        // F_OFD_* require 0 here.
        l_pid: 0,
    }
}

impl ConcreteLock for FilePermits {
    /// `Mine` if this handle holds a permit, `Taken` if other handles hold all of them, else
    /// `Open` (one `F_OFD_GETLK` per permit until a free one is found).
    fn status(&self) -> SimpleLockResult<LockStatus> {
        if self.holds() {
            return Ok(LockStatus::Mine);
        }
        for slot in 0..self.permits {
            let taken = self
                .taken_by_others(slot)
                .map_err(|err| SimpleLockError::from_io(&self.name, "probing a permit", err))?;
            if !taken {
                return Ok(LockStatus::Open);
            }
        }
        Ok(LockStatus::Taken)
    }

    /// Take a free permit, or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] naming a holder if all are taken,
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds one.
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    /// Take a permit, waiting (woken by inotify) as long as it takes.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds one.
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    /// Take a permit, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] naming a holder, [`SimpleLockError::AlreadyHeld`].
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.acquire(Wait::For(timeout))
    }

    /// Give the permit back: record "given back", unlock its range, wake the waiters.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle holds no permit in this process,
    /// [`SimpleLockError::UnableToUnlock`] if the range could not be unlocked.
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        let Some(slot) = self.held.permit() else {
            return Err(SimpleLockError::not_held(&self.name));
        };
        // A failed record write only makes the next taker think we died: still unlock.
        let _ = self.write_slot(slot, GIVEN_BACK, std::process::id(), SystemTime::now());
        let (start, len) = slot_range(slot);
        self.range(libc::F_UNLCK, start, len, false)
            .map_err(|err| {
                SimpleLockError::unable_to_unlock(
                    &self.name,
                    "unlocking the permit's range",
                    Some(err),
                )
            })?;
        self.held.gave_back();
        let _ = self.fd.file().write_all_at(&[0], WAKE_BYTE);
        Ok(())
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(first_holder(&self.holders()?))
    }
}

impl Permits for FilePermits {
    fn permits(&self) -> u32 {
        self.permits
    }

    fn held_permit(&self) -> Option<u32> {
        self.held.permit()
    }

    /// Each permit's state: `F_OFD_GETLK` says whether it is held, its record by whom.
    fn holders(&self) -> SimpleLockResult<Vec<PermitState>> {
        (0..self.permits)
            .map(|slot| {
                let mine = self.held_permit() == Some(slot);
                let failed = |err| SimpleLockError::from_io(&self.name, "reading a permit", err);
                if !mine && !self.taken_by_others(slot).map_err(failed)? {
                    return Ok(PermitState::Free);
                }
                let record = self.read_slot(slot).map_err(failed)?;
                Ok(PermitState::Held(holder_of(&record)))
            })
            .collect()
    }
}

/// The holder a record names, if it says "held".
fn holder_of(record: &[u8; SLOT_LEN as usize]) -> Option<Holder> {
    if record[0] != HELD {
        return None;
    }
    let pid = u32::from_le_bytes(record[4..8].try_into().ok()?);
    let secs = u64::from_le_bytes(record[8..16].try_into().ok()?);
    let nanos = u32::from_le_bytes(record[16..20].try_into().ok()?);
    let since = UNIX_EPOCH.checked_add(Duration::new(secs, nanos.min(999_999_999)))?;
    Some(Holder::new(pid).with_since(since))
}

impl Drop for FilePermits {
    fn drop(&mut self) {
        if self.holds() {
            let _ = self.try_unlock();
        }
    }
}

/// The semaphore's open file, for a program that is to inherit the permit (as `simplelock`'s
/// command does): the permit is a lock of the open file description, so it stays held while
/// any process has the description open, even after this handle's process ended.
impl AsFd for FilePermits {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for FilePermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePermits")
            .field("path", &self.path)
            .field("permits", &self.permits)
            .field("held_permit", &self.held_permit())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_holder_only_while_held() {
        let mut record = [0u8; SLOT_LEN as usize];
        assert_eq!(holder_of(&record), None);
        record[0] = HELD;
        record[4..8].copy_from_slice(&42u32.to_le_bytes());
        record[8..16].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        let holder = holder_of(&record).unwrap();
        assert_eq!(holder.pid, 42);
        assert!(holder.since.is_some());
        record[0] = GIVEN_BACK;
        assert_eq!(holder_of(&record), None);
    }
}
