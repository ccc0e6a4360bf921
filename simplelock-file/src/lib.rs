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
//! let mut deploy = FileLock::options().with_folder(&dir).named("deploy")?;
//! // ... or in the user's lock folder (see `lock_dir`): FileLock::named("deploy")?
//! // ... or on any file, a data file included (never written): FileLock::at_path(path)?
//!
//! deploy.try_lock()?;
//! if deploy.previous_holder().died() {
//!     // The last holder died inside its critical section: check what it left behind.
//! }
//! // Another handle, as another process would have it, sees who holds the lock:
//! let mut other = FileLock::options().with_folder(&dir).named("deploy")?;
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
//! # drop((lock, deploy)); // Windows refuses to delete a file that a handle has open
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
//! could otherwise have planted it.
//! [`FileLock::options()`](FileLock::options)[`.with_folder(dir)`](FileLockOptions::with_folder)
//! uses a folder of your choice instead.
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
//! [`FileLock::options()`](FileLock::options)[`.with_shared(true)`](FileLockOptions::with_shared)
//! makes a handle that takes
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
//! the files [`FileLock::named`] and [`FileLockOptions::named`] use. They carry a record in their
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
//! holds the lock: so a file given by path ([`FileLock::at_path`]) is never written at all, whether
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
//! deafness. A woken waiter tries the lock before it reads the events or the record: the
//! release's unlock usually lands while the wake-up is under way. The inotify instances are
//! kept in a small per-process pool and reused, each with the watch its last wait left on it:
//! closing an instance makes the kernel wait for an RCU grace period, about half a millisecond,
//! and removing a watch costs several µs, both of which would otherwise land between the
//! acquisition and the return, on every handoff (the next wait on another file moves the
//! watch, before it sleeps). The pool keeps at most 4 idle instances (the per-user limit is 128
//! by default, and other programs of the user need theirs), each pinning the inode it watches
//! in memory until it is reused; the others are closed when their wait ends. A holder that releases
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
//! # Async waits (feature `tokio`)
//!
//! `FileLock` implements [`AsyncConcreteLock`](simplelock_core::AsyncConcreteLock):
//! `lock.lock_async().await` waits without blocking a tokio worker, and is cancel-safe.
//! `flock` has no readiness event, and a blocking `flock` cannot be cancelled (on a
//! `spawn_blocking` thread it takes the lock later, for a future that is gone), so an async
//! waiter never calls a blocking `flock`: it tries with `LOCK_NB` and sleeps until something
//! happens to the file, as the timed wait does — only the inotify instance is registered with
//! tokio's reactor (`AsyncFd`) instead of a `ppoll` on the thread. A release rewrites the
//! record and a dead holder's descriptor is closed: both wake the task at once; right after
//! such an event the task tries again a bounded number of times, yielding to the runtime in
//! between (the unlock lands microseconds after the record says `free`). Releases that touch
//! nothing are caught by a tokio timer backing off from 1 ms to 50 ms (10 ms without inotify:
//! only 128 instances per user by default, so most of 1,000 waiters poll). The lock is only
//! ever taken by a try inside a poll that returns it; the watch and the timer belong to the
//! future, and dropping it removes them. An async wait never reports `WouldDeadlock`: tasks of
//! one thread interleave, so another handle of the same thread will release while this task
//! waits. Poll it inside a tokio runtime with IO and time enabled.
//!
//! `FilePermits` waits the same way (its own module `permits_async`, on `FileLock`'s watch
//! and timer): it tries every permit with `F_OFD_SETLK` and sleeps on the semaphore file's
//! inotify watch through the reactor.
//!
//! # Costs
//!
//! An uncontended exclusive `try_lock` + `try_unlock` on a lock folder's file is two `flock`
//! calls, one `lstat` of the path (the check that it still names the locked file), two `pread`s
//! and two `pwrite`s of 64 bytes (the record is the price of [`PreviousHolder::Died`]; the second
//! `pread` makes sure the release writes only over its own record), plus some
//! bookkeeping (the fork check, the deadlock registry, the time of acquisition); on any other
//! file, two `flock` calls and the `lstat`. `holder()`, `status()` and the holder in `AlreadyLocked`/`TimedOut` read
//! `/proc/locks`, on the failure path only. `benches/uncontended.rs` measures it against the bare
//! `flock` pair, std's `File::lock` and fd-lock; the measured times are in the README's
//! generated [Benchmarks](https://github.com/simplelock/simplelock#benchmarks) section (not
//! here, where they would go stale). Each `pwrite` of the record costs more than a `flock`, so
//! the record path is the slower one. A cheaper record would need a shared
//! mapping of the file, which a process that truncates the file turns into a `SIGBUS` in every
//! holder; the record stays a `pread`/`pwrite` one.
//!
//! **The floor of the record.** `benches/record_parts.rs` measures each part next to a bare
//! `flock` pair, on tmpfs and on a disk file system. A `pwrite` alone costs about as much as
//! the `flock` pair (it dirties the page and updates the file's times), so a record that tells
//! "released" from "died" — one write to say "held", one to say "free" — costs more than twice
//! the bare pair with system calls, whatever else it saves; what it costs today (one more `pread` each way,
//! to learn the previous state and to release only over our own record) is in the README's
//! generated section with the parts' floor. Hence the two opt-outs below.
//!
//! # Raw speed
//!
//! Where the record's answers are not needed, [`FileLockOptions::with_holder_record`]`(false)`
//! drops it (no `pread`/`pwrite`; `previous_holder()` is `Unknown`). The pair is then the two
//! `flock` calls and the path check. [`FileLockOptions::with_path_check`]`(false)` drops the
//! check too: what is left is the bare `flock` pair plus the bookkeeping, as fast as `flock(1)`,
//! fd-lock or std's `File::lock`, and exposed like them to the unlink race above — use it only
//! for lock files that nothing deletes or replaces while they are in use:
//!
//! ```
//! # use simplelock_core::{ConcreteLock, SimpleLockError};
//! # use simplelock_file::FileLock;
//! # let dir = std::env::temp_dir().join(format!("simplelock-file-raw-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let mut hot = FileLock::options()
//!     .with_folder(&dir)
//!     .with_holder_record(false)
//!     .with_path_check(false)
//!     .named("hot-path")?;
//! hot.try_lock()?;
//! hot.try_unlock()?;
//! # drop(hot);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! # Supported platforms
//!
//! Linux is the tested platform (x86_64, glibc), where everything above holds. Other Unix-like
//! systems (macOS, the BSDs) compile the same code with the portable fallbacks: no
//! `/proc/locks` (status by trying, holder from the record) and no inotify (timed waits poll
//! with the 1 to 10 ms backoff of a waiter without events); CI only compiles them (`cargo
//! check` for macOS on arm64 and x86_64 and for FreeBSD, warnings denied). Other systems are not
//! supported: the crate does not compile there, with a message saying so.
//!
//! ## Windows
//!
//! `FileLock` runs on Windows with the same API, errors and name rules; CI cross-compiles the
//! crate to `x86_64-pc-windows-gnu` and runs its conformance suite and `tests/windows.rs` under
//! **Wine** (not Windows: see below). What differs:
//!
//! - **The lock** is `LockFileEx`/`UnlockFileEx` (exclusive or shared, try or blocking) on one
//!   byte at offset 2⁶², not on the whole file. Windows byte-range locks are mandatory: a locked
//!   range cannot be read or written through other handles. So the range never covers the
//!   record (the next holder and `holder()` read it while the lock is held) nor the data of a
//!   file locked with [`FileLock::at_path`], which others keep reading and writing. A contended
//!   try (`ERROR_LOCK_VIOLATION`, or `ERROR_SHARING_VIOLATION` which some file systems give)
//!   is [`SimpleLockError::AlreadyLocked`], as `EWOULDBLOCK` is on Unix.
//! - **The file stays at its path.** The lock file is opened without `FILE_SHARE_DELETE`:
//!   while any handle has it open, Windows refuses to delete or rename it, so the check after
//!   each acquisition that the path still names the locked file (the `lstat` of Unix) has
//!   nothing to find, and a lock file cannot be removed while in use.
//! - **A holder that dies** (`TerminateProcess` included) has its locks released by Windows when
//!   its handles are closed — Microsoft warns that this may take a moment; the record says
//!   `held`, and the next holder gets [`PreviousHolder::Died`]. There is no `/proc/locks`:
//!   [`ConcreteLock::status`] tries the lock, and [`ConcreteLock::holder`] names the pid in the
//!   record (named locks only, as on Unix).
//! - **Named locks** live in `%SIMPLELOCK_DIR%`, else `%LOCALAPPDATA%\simplelock` (the user's
//!   own profile folder, which its access list keeps to the user), else `simplelock` in the
//!   temporary folder; the folder must be a real folder, not a link or junction.
//! - **Timed waits** poll with the 1 to 10 ms backoff. Windows can wait for a byte-range lock
//!   with a timeout (an overlapped `LockFileEx` on a handle opened with
//!   `FILE_FLAG_OVERLAPPED`, a wait on its event, `CancelIoEx` at the deadline), but Wine
//!   does not implement a pending lock request (it never completes), so that path could not be
//!   tested; an untested wait on the lock's critical path is worse than a bounded poll.
//! - **No fork, no descriptors**: `FileLock` implements `AsHandle` instead of `AsFd`; the
//!   deadlock registry is a plain `Mutex`.
//! - **What Wine does not check**: Wine does not enforce byte-range locks on reads and writes,
//!   so that the record and a data file stay readable while locked rests on Microsoft's
//!   documentation, not on a test.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is **1.89**, as for the whole simplelock workspace.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(unix, windows)))]
compile_error!(
    "simplelock-file supports Unix-like systems and Windows only (Linux is tested, Windows \
     under Wine); on this platform use another simplelock backend"
);

mod dir;
mod lock;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod permits;
mod record;
mod sys;

#[cfg(all(feature = "tokio", unix))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use crate::lock::FileWait;
pub use crate::lock::{FileLock, FileLockOptions, lock_dir};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use crate::permits::FilePermits;

#[cfg(doc)]
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};
#[cfg(all(doc, unix))]
use std::os::fd::AsFd;
