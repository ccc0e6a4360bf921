//! [`FileLock`]: a lock between processes (and threads) on a file, with `flock(2)`, for
//! [simplelock](https://crates.io/crates/simplelock).
//!
//! A `FileLock` is a handle on the lock that lives in one file. Two handles on the same file —
//! in one process or in two — never hold it at once; a holder that crashes releases it at once;
//! the next holder learns that its predecessor died instead of releasing
//! ([`PreviousHolder::Died`]) and can repair what it left half done; and a waiter can tell who
//! holds it ([`ConcreteLock::holder`]). It implements [`ConcreteLock`], so
//! [`LockBuilder`](simplelock_core::LockBuilder) turns it into a [`Lock`](simplelock_core::Lock)
//! that waits, tries once or times out.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use simplelock_core::{ConcreteLock, Lock, LockBuilder, LockStatus, SimpleLockError};
//! use simplelock_file::FileLock;
//!
//! # let dir = std::env::temp_dir().join(format!("simplelock-file-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! // A lock called "deploy" in a lock folder of your choice: the file deploy.lock there ...
//! let mut deploy = FileLock::named_in(&dir, "deploy")?;
//! // ... or in the user's lock folder (see `lock_dir`): FileLock::named("deploy")?
//! // ... or on any file, a data file included (never written): FileLock::new(path)?
//!
//! deploy.try_lock()?;
//! if deploy.previous_holder().died() {
//!     // The last holder died inside its critical section: check what it left behind.
//! }
//! // Another handle, as another process would have it, sees who holds the lock:
//! let mut other = FileLock::named_in(&dir, "deploy")?;
//! assert_eq!(other.status()?, LockStatus::Taken);
//! match other.try_lock() {
//!     Err(SimpleLockError::AlreadyLocked { holder, .. }) => {
//!         assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
//!     }
//!     unexpected => panic!("{unexpected:?}"),
//! }
//! // This thread holds the lock through `deploy`: waiting for it through `other` would never
//! // end, and is refused.
//! assert!(matches!(
//!     other.timed_lock(Duration::from_secs(5)),
//!     Err(SimpleLockError::WouldDeadlock { .. })
//! ));
//! deploy.try_unlock()?;
//!
//! // Through the builder, with a guard that releases on every way out of the block:
//! let mut lock = LockBuilder::default()
//!     .with_timeout(Duration::from_secs(5))
//!     .apply(other);
//! let guard = lock.guard()?;
//! assert!(!guard.previous_holder_died()); // `deploy` released it cleanly
//! drop(guard);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! # Names and the lock folder
//!
//! [`FileLock::named`] puts the lock for `name` at `<lock_dir>/<name>.lock`, in the folder
//! [`lock_dir`] returns. **A name means the same lock for every process of one user on one
//! machine, whatever its environment**: a login shell, a cron job (`env -i`) and a systemd
//! service with `PrivateTmp=yes` all get the same folder:
//!
//! 1. `$SIMPLELOCK_DIR` if set: the user's explicit choice, created (mode 0700) if missing and
//!    otherwise used as it is — it may be a group-shared folder for locks between users (every
//!    process that is to share a lock must then be given the same value);
//! 2. else `/run/lock/simplelock-<uid>`, if `/run/lock` is a sticky, world-writable folder (the
//!    FHS place for lock files: a tmpfs of the whole machine, which `PrivateTmp=` does not
//!    replace and which needs no login session, unlike `$XDG_RUNTIME_DIR`, which cron jobs do
//!    not have);
//! 3. else `/dev/shm/simplelock-<uid>` if `/dev/shm` is one (distributions that keep
//!    `/run/lock` for root);
//! 4. else `<temp dir>/simplelock-<uid>` (other systems; there a private `/tmp` does change the
//!    folder — set `SIMPLELOCK_DIR`).
//!
//! The folders of 2 to 4 are created with mode 0700; if one exists already it must be a real
//! folder (not a symbolic link), owned by this user and writable by nobody else, or
//! [`SimpleLockError::PermissionDenied`] names it and says to set `SIMPLELOCK_DIR`: another user
//! could otherwise have planted it. [`FileLock::named_in`] uses a folder of your choice instead.
//! Looking at a lock creates nothing: [`FileLock::named_existing`], [`FileLock::open_existing`]
//! and [`FileLock::named_path`] create neither the folder nor the file.
//!
//! A name can never reach outside the folder. It is refused with
//! [`SimpleLockError::InvalidName`], saying which rule it breaks, if it is empty, contains `/`,
//! `\` or a NUL byte, is `.` or `..`, or is longer than 250 bytes (so that `<name>.lock` fits
//! the 255-byte file name limit). Every other string is a valid name, Unicode included.
//!
//! # Shared (reader) locks
//!
//! [`FileLock::new_shared`] (or [`FileLock::shared`] on any handle) makes a handle that takes
//! the lock shared (`LOCK_SH`): any number of shared holders at once, no exclusive holder
//! meanwhile. The same `try_lock`, `hang_lock`, `timed_lock` and `try_unlock` apply. For a
//! shared handle, [`LockStatus::Taken`] means "held exclusively by someone else".
//!
//! There is no upgrade from shared to exclusive: flock's conversion is not atomic (it releases
//! the shared lock before it waits for the exclusive one, and a failed non-blocking upgrade
//! leaves nothing held), so it would hide a window in which another writer gets in. Release the
//! shared lock and take the exclusive one, and re-check what you read.
//!
//! # Counting semaphores
//!
//! [`FilePermits`] (Linux) is a semaphore of N permits in one file of the lock folder
//! (`<name>.permits`), each permit a byte range under an OFD lock: at most N holders, a dead
//! holder's permit released by the kernel, waits woken by inotify, N fixed in the file's header.
//! Its handle is a lock that takes one permit; the module [`permits`] argues the design.
//!
//! # Why it is correct
//!
//! **Two holders never coexist.** Each `FileLock` opens the file itself, so it has its own
//! *open file description*, and `flock` grants an exclusive lock to one open file description
//! at a time, across all processes — even two handles in one thread exclude each other. A
//! `FileLock` is not `Clone`, its methods that lock take `&mut self`, so two threads cannot
//! share one handle (and so one hold) without a `Mutex` around it; and a copy made by `fork`
//! never locks through the parent's open file description (see below).
//!
//! **A crash releases the lock.** The kernel drops a flock when the last descriptor of its open
//! file description closes, and it closes every descriptor of a process that ends, however it
//! ends (SIGKILL, OOM kill, `abort`). Waiters get it at once.
//!
//! **The next holder can tell that the previous one died** — for lock files of a lock folder,
//! the files [`FileLock::named`] and [`FileLock::named_in`] use. They carry a record in their
//! first 64 bytes, one line of ASCII:
//!
//! ```text
//! simplelock 1 held pid=4242 since=1732712345.123456
//! simplelock 1 free pid=4242 since=1732712399.000001
//! ```
//!
//! (magic word, format version, state, process id of the writer, time of the change in seconds
//! since the Unix epoch; padded with spaces to 63 bytes and a newline). An exclusive holder
//! reads the record right after `flock` grants it the lock (`pread`): `held` means the previous
//! exclusive holder never released it, so it died ([`PreviousHolder::Died`]); `free` or an empty
//! file means [`PreviousHolder::Released`]. It then writes `held` with its pid (`pwrite` at
//! offset 0), and on release writes `free` *before* it unlocks. All of this happens while the
//! writer holds the lock exclusively, so the record never races. A shared holder only reads
//! the record: it reports `Died` if the last exclusive holder died and no exclusive holder ran
//! since (a reader that dies leaves nothing half-written, and leaves no trace).
//!
//! **Data is never overwritten.** Locking a data file itself is the most common flock idiom
//! (`simplelock --file data.json -- edit-it`), and the holder writes into that file while it
//! holds the lock: so a file given by path ([`FileLock::new`]) is never written at all, whether
//! it is empty, created by us or not — a record written at acquisition would be read by the
//! holder as data, and one written at release would overwrite what the holder wrote. Its
//! `previous_holder()` is [`PreviousHolder::Unknown`]. A lock folder's file is reserved for the
//! lock; even there, the release writes `free` only over the very bytes its acquisition wrote,
//! read again just before (`pread`): if the holder wrote into the lock file meanwhile, the file
//! is left as it is (and the next holder reports `Died` or `Unknown`). A file there with
//! someone's data in it (non-empty, without a record, or longer than a record) is never written
//! either. (Only a writer that does not respect the lock could slip a write between that
//! `pread` and the `pwrite`.)
//!
//! The limits, honestly: a lock folder's file with someone's data in it is used as a lock but
//! never written: its `previous_holder()` is [`PreviousHolder::Unknown`], and so is that of a
//! handle that could only open the file read-only (it cannot write `held`). Because such a holder leaves no trace, a holder that dies
//! after it while holding through a read-only handle is reported as `Released`. A write of the
//! record that fails (I/O error, disk full on a new file) is ignored: the lock is still held and
//! released correctly, only the report of the next holder may be wrong. A holder that ends
//! without releasing in any way (`std::mem::forget`, `std::process::exit` without dropping the
//! handle) is reported as `Died` — it did not release.
//!
//! **Who holds it.** On Linux, [`ConcreteLock::holder`], [`ConcreteLock::status`] and the
//! `AlreadyLocked`/`TimedOut` errors read `/proc/locks`, which lists every flock with the
//! device, inode and process id of its holder, without touching the lock. The pid is that of the
//! process that took the lock, as seen from this process's pid namespace (none if the holder is
//! outside it). A lock belongs to an open file description, which a holder may hand down to
//! programs it starts (`simplelock`'s command, `flock(1)`'s): if the process that took it is
//! gone, a live process that still has it open is named instead, found in `/proc/*/fdinfo`
//! (none if this process may not look at it). `since` comes from the record when its pid is
//! that holder's; after a pid reuse (a holder that is not a simplelock one, with the pid of a
//! dead simplelock holder) it could be that of the earlier holder. The kernel builds
//! `/proc/locks` a page at a time and a list longer than a page (about 80 locks in the whole
//! system) is not one snapshot: a lock listed after locks that were released between two pages
//! can be missed. Such a list is read up to four times, and a lock missing from all four counts
//! as free — wrong only if locks came and went at the wrong moment each time; `status()` never
//! takes the lock to find out, since that would make another process's `try_lock` fail during
//! those microseconds. Only where `/proc/locks` cannot tell at all (a file system whose device
//! numbers differ from those of `stat`: btrfs subvolumes, overlayfs) or cannot be read (other
//! systems, no `/proc`) does `status()` try the lock and release it at once, and the holder
//! comes from the record alone.
//!
//! **Timed waits hand over promptly without polling.** `flock` has no timeout. `timed_lock`
//! tries the lock; if it is taken, it watches the file with inotify and sleeps in `ppoll` until
//! something happens to it: a simplelock release rewrites the record of a lock folder's file
//! (`IN_MODIFY`, watched for those files only: writes into any other file are the holder's
//! data), and the descriptors of a holder that dies are closed (`IN_CLOSE_*`), so the waiter
//! wakes within microseconds and tries again. An event can come a moment before the release
//! lands (the record is written before the unlock, and the kernel reports a close before it
//! drops the lock), so after an event that may announce a release (the record says `free`, or
//! the file has no record) the waiter tries up to 64 times in a row, yielding the processor
//! between tries. An event that brings nothing (the record says `held`, or the tries fail)
//! makes the waiter deaf for 100 µs, doubling up to 10 ms while such events keep coming: a
//! holder that writes or opens the file thousands of times a second costs the waiter about a
//! hundred wake-ups a second (well under 5 % of a core), not a core; a `free` record ends the
//! deafness. The inotify instances are kept in a small per-process pool and reused (a wait adds
//! and removes its watch, a few µs): closing an instance makes the kernel wait for an RCU grace
//! period, about half a millisecond, which would otherwise land on every handoff. The pool keeps
//! at most 4 idle instances (the per-user limit is 128 by default, and other programs of the
//! user need theirs); the others are closed when their wait ends. A holder that releases
//! without touching the file (`flock(1)`, a read-only or foreign holder) is noticed by a backoff
//! that starts at 1 ms and doubles up to 50 ms. Without inotify (other systems, the per-user
//! instance limit reached) the backoff alone is used, up to 10 ms. The deadline is on the
//! monotonic clock, checked after every wake-up, with one last try at the deadline.
//! `hang_lock` is a blocking `flock`: the kernel wakes it.
//!
//! **Signals.** A signal handler installed without `SA_RESTART` makes a blocking `flock` or
//! `ppoll` fail with `EINTR`; both are retried, `ppoll` with the time left until the same
//! deadline, so a signal neither fails, shortens nor extends a wait.
//!
//! **fork.** A forked child shares its parent's open file descriptions, and so its flocks: an
//! unlock in the child would release the parent's lock. A `FileLock` knows the process that
//! opened it (a process id cached in a static that a `pthread_atfork` handler refreshes, so
//! checking it costs no system call), and in any other process its copy holds nothing: it never
//! unlocks nor writes the record, `try_unlock` returns [`SimpleLockError::NotHeld`], dropping it
//! only closes the child's descriptor, `status()` sees the parent's hold as
//! [`LockStatus::Taken`], and locking through it first opens the file again, so the child gets
//! an open file description of its own and is excluded by its parent like any other process.
//! One caveat is flock's, not ours: until the child drops its copy (or execs), the descriptor it
//! inherited keeps the parent's open file description alive — if the parent dies while holding
//! the lock, the lock stays held until the child drops the copy or ends. Processes made with a
//! raw `clone`/`fork` system call that bypasses libc's `fork()` do not run the handler and must
//! not use inherited handles.
//!
//! **exec.** The file is opened close-on-exec (`O_CLOEXEC`): a program started by this process
//! does not inherit the descriptor, so it can neither keep the lock alive nor release it —
//! unless you hand it down on purpose, as `flock(1)` and the `simplelock` command do: the
//! handle implements [`AsFd`], and a program that inherits the descriptor (its close-on-exec
//! flag cleared in the child) keeps the lock as long as it has the descriptor open, whatever
//! happens to this process.
//!
//! **Two handles in one process, one thread.** flock makes two handles on one file exclude each
//! other even in one thread, so a thread that holds the lock through one handle and then waits
//! for it through another would wait forever. A small process-wide registry records which thread
//! acquired which file (device and inode) through which handle and how; `hang_lock` and
//! `timed_lock` consult it after a failed first try, and return
//! [`SimpleLockError::WouldDeadlock`] instead of waiting when the calling thread itself holds the
//! lock in a mode that excludes the one it asks for (exclusive and anything, or shared then
//! exclusive; two shared holds are fine). The registry knows the thread that *acquired* a hold: a
//! handle moved to another thread while holding still counts for the thread that acquired it.
//!
//! **The unlink race.** A lock file is never deleted by this crate. If someone deletes or
//! replaces it (renames another file over it) while holding its lock — as tools do that delete
//! their lock file when they release it — a process that opened the old file and was waiting
//! would get a lock on a file nobody else opens any more, while newcomers lock the new file at
//! the path: two holders. So after every acquisition (`try_lock`, `hang_lock`, each try of
//! `timed_lock`) the handle checks that the path still names the file it locked (`lstat` of the
//! path against the device and inode of its descriptor: a deleted file or a removed folder
//! fails it too); if not, it lets the old file go, opens the path again and starts over on the
//! new file. A timed waiter that wakes to find the file replaced waits on the new one.
//! Replacing the file while *someone else* holds the lock cannot be detected by anybody — the
//! holder of the old file and the newcomer would both hold it — so a lock file that another user
//! could delete or replace is refused with [`SimpleLockError::PermissionDenied`], saying why: in
//! a world-writable folder that is not sticky, and, in a sticky one such as `/tmp`, a file that
//! belongs to a user other than us, root or the folder's owner (the per-user lock folder is ours,
//! mode 0700, so nobody else can touch the files in it). Do not delete lock files, or the lock
//! folder, yourself while they are held; they are small (64 bytes at most) and live in the lock
//! folder, that is their price.
//!
//! **Hostile folders.** In a folder others can write to (`/tmp`), a symbolic link planted at the
//! lock path, or anywhere on the way to it, could redirect us to another file (root creating a
//! file in `/etc` through `nobody`'s link). The file is opened with `O_NOFOLLOW`, and below the
//! first folder on the path that others may write to (group- or world-writable), the rest of the
//! path is resolved with `openat2(RESOLVE_NO_SYMLINKS)` from a descriptor of that folder: a
//! symbolic link there is refused with [`SimpleLockError::InvalidName`], saying so, its target
//! untouched (give the path with the link resolved). Links above that folder, in folders only
//! their owners can change, are followed as usual. Where `openat2` is missing (Linux before
//! 5.6, other systems) each component is checked with `lstat` before the open, which a link
//! planted in between could still defeat. Files are never opened with `O_TRUNC`, and never
//! `chmod`ed. New files get mode 0644 less the umask. If the file exists but
//! `O_CREAT` is refused (`fs.protected_regular` does that for another user's file in a sticky
//! folder) the open is retried without it, and if the file is not writable it is opened
//! read-only — flock does not need write access. Only regular files are accepted: a folder, a
//! FIFO, a socket or a device is an [`SimpleLockError::InvalidName`] (a FIFO cannot make the
//! open hang: it is opened non-blocking; a socket's `ENXIO` says "not a regular file" too). A missing folder, an empty path and a NUL byte are
//! [`SimpleLockError::InvalidName`]; a file nobody may open for us,
//! [`SimpleLockError::PermissionDenied`]; every error names the path and keeps the system's
//! error as its `source()`.
//!
//! **Network file systems.** On NFS, Linux emulates flock with POSIX byte-range locks on the
//! server: exclusion holds between machines, but an exclusive lock needs a descriptor opened
//! for writing, a lock can be lost silently when the client loses its lease (NFSv4), and
//! `/proc/locks` and inotify only see the local machine. Keep lock files on a local file system
//! (the lock folder always is one on Linux).
//!
//! # Why `flock` directly and not fd-lock
//!
//! [fd-lock](https://crates.io/crates/fd-lock) hands out a guard that borrows the lock, which
//! fits RAII but not [`ConcreteLock`]'s separate `try_lock`/`try_unlock` calls on `&mut self`
//! (storing the guard next to what it borrows needs `unsafe` lifetime tricks); it also returns
//! `EINTR` to the caller, and has no timed wait. std's `File::lock`/`try_lock`/`unlock`
//! (Rust 1.89) make the same `flock` call, but a blocking `lock()` interrupted by a signal
//! fails with `Interrupted`, and we need the raw `EWOULDBLOCK`/`EINTR` distinction. So this
//! crate calls `flock(2)` through libc, in one place (`src/sys/unix.rs`), retrying on `EINTR`.
//! fd-lock and std's locking stay as peers in the benchmark (`benches/uncontended.rs`).
//!
//! # Costs
//!
//! An uncontended exclusive `try_lock` + `try_unlock` on a lock folder's file is two `flock`
//! calls, one `lstat` of the path (the check that it still names the locked file), two `pread`s
//! and two `pwrite`s of 64 bytes (the record is the price of [`PreviousHolder::Died`]; the second
//! `pread` makes sure the release writes only over its own record), plus about 80 ns of
//! bookkeeping (the fork check, the deadlock registry, the time of acquisition); on any other
//! file, two `flock` calls and the `lstat`. `holder()`, `status()` and the holder in `AlreadyLocked`/`TimedOut` read
//! `/proc/locks`, on the failure path only. `benches/uncontended.rs` measures it against the bare
//! `flock` pair, std's `File::lock` and fd-lock. On the development machine (2 cores, Linux 6.18,
//! tmpfs and ext4 alike) a pair took about 0.44 µs with bare `flock`, std and fd-lock, 0.57 µs
//! with `FileLock` on a foreign file, and 2.0 µs with `FileLock` on a managed file before the
//! checks of issue 8 (the `lstat` and the second `pread`); with them, measured on the same
//! machine under load, the record path went from 3.8 to 4.5 µs and the path without record
//! stayed at 1.2 µs (bare `flock`: 0.9 to 1.1 µs). Each `pwrite` of the record costs more than
//! a `flock`. A cheaper record would need a shared
//! mapping of the file, which a process that truncates the file turns into a `SIGBUS` in every
//! holder; the record stays a `pread`/`pwrite` one.
//!
//! # Supported platforms
//!
//! Linux is the tested platform (x86_64, glibc), where everything above holds. Other Unix-like
//! systems (macOS, the BSDs) compile the same code with the portable fallbacks: no
//! `/proc/locks` (status by trying, holder from the record) and no inotify (timed waits poll
//! with the 1 to 50 ms backoff); they are not tested. Windows and other systems are not
//! supported yet: the crate does not compile there, with a message saying so.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is **1.89**, as for the whole simplelock workspace.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!(
    "simplelock-file supports Unix-like systems only (Linux is tested); \
     on this platform use another simplelock backend"
);

mod dir;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod permits;
mod record;
#[allow(
    unsafe_code,
    reason = "the system calls std does not wrap; see its Safety section"
)]
mod sys;

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult,
};

use crate::record::{RECORD_LEN, Record, State};

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

/// The time until `deadline` (none: forever).
fn time_left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}

/// Each handle gets an id, for the deadlock registry.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use permits::FilePermits;

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
/// Made by [`FileLock::new`] (a path), [`FileLock::named`] (a name in the [lock folder](lock_dir))
/// or [`FileLock::named_in`], exclusive unless made [shared](FileLock::shared). Use it through
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
    /// `open_path` as a C string, for the check after each acquisition that the path still
    /// names the file we locked.
    c_path: CString,
    /// A lock file of a lock folder (made by `named`/`named_in`): the only files that keep the
    /// holder record. Any other file may be someone's data, and is never written.
    managed: bool,
    /// The file holds someone's data: the record is never read again nor written.
    foreign: bool,
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

impl FileLock {
    /// A handle on the lock in the file at `path`, created if missing (mode 0644 less the
    /// umask), never truncated, never deleted, never written: it may be a data file that the
    /// holder writes (so there is no holder record, and
    /// [`previous_holder`](ConcreteLock::previous_holder) is `Unknown`; use
    /// [`named_in`](FileLock::named_in) for a lock file that keeps one). The handle does not
    /// hold the lock yet.
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
    pub fn new<P: Into<PathBuf>>(path: P) -> SimpleLockResult<FileLock> {
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
        let c_path = CString::new(open_path.as_os_str().as_bytes()).unwrap_or_default();
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
            hold: None,
            previous: PreviousHolder::Unknown,
        }
    }

    /// A handle on the lock in the file at `path` if that file exists, without creating
    /// anything (for looking at a lock: `status`, `holder`); `Ok(None)` if the file or its
    /// folder does not exist.
    ///
    /// # Errors
    /// Those of [`new`](FileLock::new), but for a missing file or folder.
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

    /// A handle that takes the lock in the file at `path` shared; see
    /// [`new`](FileLock::new) and [`shared`](FileLock::shared).
    ///
    /// # Errors
    /// Those of [`new`](FileLock::new).
    pub fn new_shared<P: Into<PathBuf>>(path: P) -> SimpleLockResult<FileLock> {
        FileLock::new(path).map(FileLock::shared)
    }

    /// A handle on the lock called `name`: the file `<name>.lock` in the [lock folder](lock_dir),
    /// which is created if missing. The file is the lock's own, and keeps the holder record.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks (see the
    /// [crate docs](crate)), the errors of [`lock_dir`] and of [`new`](FileLock::new).
    pub fn named(name: &str) -> SimpleLockResult<FileLock> {
        let file = dir::lock_file_name(name)?;
        FileLock::new(lock_dir()?.join(file)).map(FileLock::managed)
    }

    /// A handle on the lock called `name` in the folder `dir`: the file `<dir>/<name>.lock`,
    /// which is the lock's own and keeps the holder record (do not keep data in it). The folder
    /// must exist; it is used as it is.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] saying which rule `name` breaks (see the
    /// [crate docs](crate)), and the errors of [`new`](FileLock::new).
    pub fn named_in(dir: impl AsRef<Path>, name: &str) -> SimpleLockResult<FileLock> {
        let file = dir::lock_file_name(name)?;
        FileLock::new(dir.as_ref().join(file)).map(FileLock::managed)
    }

    /// This handle, taking the lock shared from its next acquisition on: many shared holders
    /// at once, no exclusive one meanwhile.
    ///
    /// A hold the handle has now keeps its mode until it is released: nothing is converted.
    #[must_use]
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

    /// The path of the lock file, as given.
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
            match self.fd.lock(self.mode, false) {
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
        if self.fd.still_at(&self.c_path) {
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
        !self.fd.still_at(&self.c_path)
    }

    /// Bookkeeping right after `flock` granted the lock: the record and the registry.
    fn acquired(&mut self) {
        let mode = self.mode;
        let since = SystemTime::now();
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
            thread: sys::registry::this_thread(),
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
            SimpleLockError::unable_to_unlock(self.name(), "flock(LOCK_UN) failed", Some(err))
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
        if fd.lock(self.mode, false).map_err(failed)? {
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
    fn try_soon(&mut self, deadline: Option<Instant>, tries: u32) -> SimpleLockResult<bool> {
        for _ in 0..tries {
            if self.try_acquire()? {
                return Ok(true);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            std::thread::yield_now();
        }
        Ok(false)
    }

    fn timed_out(&self, timeout: Duration) -> SimpleLockError {
        SimpleLockError::timed_out(self.name(), timeout, self.holder_of_others())
    }
}

/// An empty path or one with a NUL byte is refused before anything is opened.
fn check_path(path: &Path, name: &str) -> SimpleLockResult<()> {
    if path.as_os_str().is_empty() {
        return Err(SimpleLockError::invalid_name(name, "the path is empty"));
    }
    if path.as_os_str().as_bytes().contains(&0) {
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
            self.fd.lock(self.mode, true).map_err(|err| {
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
        let deadline = Instant::now().checked_add(timeout);
        if self.try_acquire()? {
            return Ok(());
        }
        if timeout.is_zero() {
            return Err(self.timed_out(timeout));
        }
        self.check_deadlock()?;
        let mut watched = (self.fd.dev, self.fd.ino);
        let mut waiter = sys::Waiter::new(self.fd.file(), self.managed);
        let mut pause = FIRST_PAUSE;
        // Zero, or how long to stay deaf after an event that did not bring the lock: it
        // doubles while such events keep coming (a holder writing the file), so that they cost
        // a few wake-ups a second, not a core.
        let mut deaf = Duration::ZERO;
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
                drop(waiter.take());
                waiter = sys::Waiter::new(self.fd.file(), self.managed);
                watched = (self.fd.dev, self.fd.ino);
                continue;
            }
            let left = time_left(deadline);
            if left.is_zero() {
                return Err(self.timed_out(timeout));
            }
            let nap = pause.min(left);
            let wake = match &waiter {
                Some(waiter) => waiter.wait(nap),
                None => {
                    std::thread::sleep(nap);
                    sys::Wake::Timeout
                }
            };
            pause = match wake {
                sys::Wake::Event => {
                    let announced = self.release_announced();
                    let tries = if deaf.is_zero() {
                        TRIES_AFTER_RELEASE
                    } else {
                        1
                    };
                    if announced != Announced::Held && self.try_soon(deadline, tries)? {
                        return Ok(());
                    }
                    if announced == Announced::Free {
                        // A release another waiter won: the handoff traffic of a busy lock.
                        deaf = Duration::ZERO;
                    } else {
                        deaf = (deaf * 2).clamp(PAUSE_AFTER_EVENT, MAX_DEAF);
                        std::thread::sleep(deaf.min(time_left(deadline)));
                    }
                    PAUSE_AFTER_EVENT
                }
                sys::Wake::Timeout => {
                    deaf = Duration::ZERO;
                    // Without inotify nothing else wakes us: poll more often.
                    let longest = if waiter.is_some() {
                        MAX_PAUSE
                    } else {
                        MAX_BLIND_PAUSE
                    };
                    (pause * 2).min(longest)
                }
                sys::Wake::Interrupted => pause,
            };
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
impl AsFd for FileLock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
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
