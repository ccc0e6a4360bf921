//! [`SemaphoreLock`]: a named lock between processes (and threads) at the speed of a POSIX
//! semaphore, that survives a holder that crashed, for
//! [simplelock](https://crates.io/crates/simplelock).
//!
//! The original `SemaphoreLock` wrapped a POSIX named semaphore. It was fast, but a holder that
//! died (SIGKILL, the OOM killer, `abort`) left the semaphore at zero and every later process
//! hung until someone deleted `/dev/shm/sem.NAME` by hand; an extra `sem_post` or a
//! `sem_unlink` and re-create while it was held let two holders in. This one keeps the speed —
//! the uncontended lock and unlock are one atomic instruction each, no system call — and fixes
//! the rest:
//!
//! - a holder that dies is noticed by the next locker (a waiter that already sleeps is woken by
//!   the death itself, through a `pidfd` of the holder), which takes the lock over and learns that its predecessor died
//!   ([`PreviousHolder::Died`]), so it can repair what was left half done;
//! - only the handle that holds the lock can release it: an unlock without holding is
//!   [`SimpleLockError::NotHeld`] and changes nothing;
//! - [`SemaphoreLock::remove`] deletes a lock safely while others use it;
//! - waits sleep in the kernel (a futex) and wake at the release; timeouts run on the
//!   monotonic clock; signals neither end nor stretch a wait;
//! - it uses only objects it can trust — its own user's (or one the caller names), with no
//!   wider mode than asked, complete, in its own namespaces — and notices one that was zeroed
//!   under it: another user cannot break, hang or crash it, and a full `/dev/shm` is an error,
//!   not a SIGBUS (see "Permissions" and "What another process can still do").
//!
//! It implements [`ConcreteLock`], so [`LockBuilder`](simplelock_core::LockBuilder) turns it
//! into a [`Lock`](simplelock_core::Lock) that waits, tries once or times out. Linux only (see
//! "Platforms").
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use simplelock_core::{ConcreteLock, Lock, LockBuilder, LockStatus, SimpleLockError};
//! use simplelock_sema::SemaphoreLock;
//!
//! # let name = format!("/doc-crate-{}", std::process::id());
//! // The lock "/deploy-..." (shared memory object /dev/shm/sl.deploy-...), created if missing.
//! let mut deploy = SemaphoreLock::named(&name)?;
//! deploy.try_lock()?;
//! if deploy.previous_holder().died() {
//!     // The last holder died inside its critical section: check what it left behind.
//! }
//!
//! // Another handle, as another process would have it, sees who holds the lock.
//! let mut other = SemaphoreLock::named(&name)?;
//! assert_eq!(other.status()?, LockStatus::Taken);
//! match other.timed_lock(Duration::from_millis(10)) {
//!     Err(SimpleLockError::TimedOut { holder, .. }) => {
//!         assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
//!     }
//!     unexpected => panic!("{unexpected:?}"),
//! }
//! // Nobody but the holder can release it.
//! assert!(matches!(other.try_unlock(), Err(SimpleLockError::NotHeld { .. })));
//! deploy.try_unlock()?;
//!
//! // Through the builder, with a guard that releases on every way out of the block.
//! let mut lock = LockBuilder::default()
//!     .with_timeout(Duration::from_secs(5))
//!     .apply(other);
//! let guard = lock.guard()?;
//! assert!(!guard.previous_holder_died()); // `deploy` released it cleanly
//! drop(guard);
//!
//! // Delete the lock's object when the lock is no longer needed (safe while in use).
//! drop(lock);
//! assert!(SemaphoreLock::remove(&name)?);
//! # Ok::<(), SimpleLockError>(())
//! ```
//!
//! # Counting semaphores
//!
//! [`SemaphorePermits`] is a semaphore of N permits made of N of these lock words (so each
//! permit has its owner token and is taken over from a dead holder), waited on all at once with
//! `futex_waitv`. Its handle is a lock that takes one permit; the module [`permits`] argues
//! the design.
//!
//! # How it works
//!
//! The lock `/NAME` is a POSIX shared memory object, `/dev/shm/sl.NAME`, of 64 bytes, mapped
//! into every process that opens it: the lock word, the holding thread's mark, and a header —
//! the namespace fingerprint of its creator, a magic number and a random *generation*. The
//! creator makes the object complete before anyone can see it: an unnamed file (`O_TMPFILE` in
//! `/dev/shm`) gets its final mode (`fchmod`) and its 64 bytes (`pwrite`, which allocates the
//! memory for real, so a full `/dev/shm` is `ENOSPC` here and not a SIGBUS at the first store),
//! and only then its name (`linkat`, which never replaces an existing name; the loser of a race
//! opens the winner's object). Nobody writes the header afterwards and nobody resizes an
//! object: an object of another size, or whose header is not exactly what it was, is refused.
//!
//! Its first 8 bytes are the *lock word*:
//!
//! ```text
//!  63                          32 31 30                      0
//! +------------------------------+--+-------------------------+
//! | start time of the owner      |W | process id of the owner |
//! +------------------------------+--+-------------------------+
//! ```
//!
//! 0 means free. A process's *token* is its process id and the low 32 bits of its start time
//! (field 22 of `/proc/PID/stat`, in clock ticks since boot): the pair names one process even
//! after its id is reused (within the limits said in 4. below). `W` says a waiter may be
//! asleep. The low half is a futex word.
//!
//! - **Lock**: compare-and-swap the word from 0 to our token (`Acquire` ordering), then compare
//!   the object's generation with the one read at open. This is the whole uncontended path:
//!   the token is cached in memory, no system call. A waiter that slept claims the word with
//!   `W` and then wakes one more sleeper, which asks to be woken by the new owner's death
//!   and sleeps again (see `death.rs`, "Who registers").
//! - **Unlock**: compare-and-swap from our token to 0 (`Release`); if `W` was set, wake one
//!   waiter with `FUTEX_WAKE`.
//! - **Wait**: ask this process's death watcher to wake us if the owner dies (a `pidfd` of the
//!   owner, see below), set `W` (compare-and-swap), then `FUTEX_WAIT` on the low half for at
//!   most 10 ms (the *slice*) or until the deadline, whichever is first; then look again.
//! - **Dead owner**: a locker that finds the word held by another process checks the owner in
//!   `/proc` (see below): `try_lock` at once, a waiter once the same owner has held the lock
//!   for a whole slice while it waited (a normal handoff is much quicker, and costs no `/proc`
//!   read) or as soon as the death watcher reports that the owner's process ended, a timed
//!   lock also before it gives up. If the owner is dead, the locker
//!   compare-and-swaps the word from exactly the value it saw to its own token (keeping `W`)
//!   and reports [`PreviousHolder::Died`].
//!
//! # Why two holders can never coexist
//!
//! Among processes that use the lock through this crate, on an object nobody else writes (see
//! 8. for who can write it, and what they can do):
//!
//! 1. **Every acquisition is one compare-and-swap on the word**, from 0 or from the token of a
//!    dead owner, to the acquirer's token. Of several compare-and-swaps from the same value
//!    only one succeeds, so the word names one owner at a time and every change of owner is
//!    seen by exactly one new owner. Right after its compare-and-swap an acquirer compares the
//!    generation (one load of the cache line it just wrote; see 8.).
//! 2. **Only the owner frees the word, and only its own token.** Unlock compare-and-swaps from
//!    this process's token, never stores blindly, and only on the handle that acquired it (the
//!    handle records the token it acquired with). An unlock without holding is `NotHeld` and
//!    writes nothing: there is no "extra post" that could let a second holder in. If the word
//!    no longer holds our token (see "Limits"), unlock reports `UnableToUnlock` and leaves it.
//! 3. **One holder per process, too.** Two handles of one process share the token, but only the
//!    handle whose compare-and-swap succeeded records it; the other finds the word held by its
//!    own process — which is alive by definition, so never taken over — and waits.
//! 4. **A takeover needs a dead owner, and death is final.** An owner is dead only on facts that
//!    cannot be undone: no process has its id (`kill(pid, 0)` fails with `ESRCH`); or the
//!    process with its id started at another time (the id was reused, which the kernel only
//!    does after the owner was reaped); or it is a zombie (`Z`/`X`) with no other live thread;
//!    or it is a kernel thread (which never calls this crate: such a word was written by
//!    someone else). When in doubt — `/proc/PID/stat` unreadable (a `hidepid` mount) for a
//!    process that exists — the owner counts as alive. A dead process never writes again, and
//!    the compare-and-swap from the exact value the checker saw succeeds for one checker only.
//!    What this does *not* exclude: a new process with the dead owner's process id *and* start
//!    time (its id reused within the clock tick the owner started in — rare, but a process
//!    that controls `ns_last_pid` can make it happen — or a start time equal modulo 2³² ticks)
//!    *is* the owner as far as the word can tell. It counts as alive, so the lock stays held
//!    until that process ends: stuck, not shared. Its own calls do not misfire (the thread mark
//!    mixes in a random secret of each process, so it never mistakes the dead process's mark
//!    for its own and answers `WouldDeadlock`); they wait like any other. Only if the word
//!    went from the dead token through a takeover and a release back to the *newcomer's*
//!    identical token while another checker sat between its check and its compare-and-swap
//!    could that checker get in beside the newcomer; all of that inside one clock tick of the
//!    dead owner's start.
//! 5. **A fork does not copy ownership.** The token is cached in a page marked
//!    `MADV_WIPEONFORK`: the kernel gives a child created by `fork` (or any `clone` without
//!    `CLONE_VM`, even one that skips `pthread_atfork` handlers) that page filled with zeros, so
//!    the child computes its own token. Its copy of a holding handle recorded the parent's
//!    token, which is not the child's: it does not hold (see "Fork").
//! 6. **Removal never makes two objects live at once.** [`SemaphoreLock::remove`] acquires the
//!    lock, unlinks the name, and only then stores a *removed* mark in the word (a value whose
//!    process id field, 2³¹−1 or 2³¹−2, no process can have). The word of a removed object never
//!    changes again, and a handle that finds the mark opens the name anew (creating a new
//!    object) before trying again. Between the unlink and the mark, the old object is held by
//!    the remover, which runs no user code meanwhile; if the remover dies there, whoever takes
//!    the dead remover's lock over checks that the name still leads to its object, and if not,
//!    finishes the removal and moves on. So a holder always holds the object the name leads
//!    to, and unlink plus re-create — fatal for a POSIX semaphore — admits nobody twice. If the
//!    remover had taken the lock over from a dead holder, the mark says so (2³¹−2), and the
//!    handle that creates the new object creates it held by a token of no process: its first
//!    locker takes it over and is told [`PreviousHolder::Died`].
//! 7. **Ordering**: acquisitions are `Acquire` and releases `Release` operations on the word, so
//!    everything a holder wrote is visible to the next holder, in any process.
//! 8. **Only a trusted, complete, unchanged object is used.** Opening (and opening again after
//!    a removal) refuses, before touching it: anything but a regular file (no symbolic links:
//!    `O_NOFOLLOW`); an object of another user than ours, unless the caller named that user
//!    ([`with_owner`](SemaphoreLockOptions::with_owner)); a mode wider than the caller asked for; a size
//!    other than 64 bytes; a header without the magic number or generation (a zeroed or foreign
//!    object — a new object is complete before it has a name, so no opener ever sees a
//!    half-made one or has to fill one in; the one exception is an object of an earlier 0.5
//!    pre-release, which has the magic number but no generation yet and gets one from its first
//!    opener, once); another namespace fingerprint (9.). After opening,
//!    the generation read then is compared after every acquisition (the uncontended one too:
//!    one load) and at every turn of the slow path: an object whose memory was zeroed
//!    (truncated and grown again, a hole punched into it) looks free but has generation 0, so
//!    the acquirer puts the word back and fails with an error, and so does everyone after it;
//!    the holder's release fails too. Nobody ever writes a generation after creation, so a
//!    zeroed object stays refused. What a process that may *write* the object can still do is
//!    listed under "What another process can still do".
//! 9. **Owners are judged only from the namespaces they were written in.** A process's pid and
//!    time namespaces make its fingerprint; the creator writes its own into the header, and
//!    every opener must match it. No fingerprint, no lock: if `/proc/self/ns` cannot be read
//!    (a sandboxed `/proc`, an LSM), opening fails instead of skipping the check. The
//!    fingerprint is read afresh at every open and before every judgement of an owner (two
//!    `stat`s, off the uncontended paths), so a process that moved into another time namespace
//!    with `setns` — where every start time in `/proc` reads shifted, and live owners would
//!    look dead — gets an error instead of a takeover.
//!
//! # Why a dead holder is always recovered
//!
//! Whatever point a process dies at, the word is left in a state the others repair:
//!
//! | the process dies ... | the word then | recovered by |
//! |---|---|---|
//! | before its acquiring compare-and-swap | unchanged | nothing to do |
//! | after it, inside the critical section, or in unlock before the releasing compare-and-swap | its token | the next locker: `try_lock` checks at once, a sleeping waiter when the death wakes it (within one 10 ms slice where pidfds are unavailable), and takes over |
//! | after the releasing compare-and-swap, before `FUTEX_WAKE` | 0, `W` was set | the sleeping waiters' slice ends within 10 ms; they find it free |
//! | while waiting (it held nothing) | maybe `W` left set | the next unlock wakes one waiter too many, once; harmless |
//! | after taking over from a dead owner | its token | as any holder |
//! | removing, before the unlink | its token | as any holder |
//! | removing, between unlink and mark | its token, on an object without a name | the next locker takes over, sees the name gone, finishes the removal |
//!
//! - **Zombies**: a process that exited but was not reaped yet (`Z`) is dead: its memory is
//!   gone, it will never unlock. Unless it is a *zombie leader*: its main thread exited but
//!   other threads run (`num_threads` > 1) — they may be the holders, so it is alive.
//! - **Process id reuse**: the start time differs, so the old owner is dead.
//! - **Stopped processes** (SIGSTOP, a debugger) are alive: the lock waits for them, as it would
//!   for any slow holder. Only death frees a lock without its holder's unlock.
//! - **No reaper needed**: recovery happens in whoever locks next. The only thing that runs in
//!   the background is the death watcher of a process whose threads wait (one thread, ended
//!   about a second after the last wait), and it only wakes waiters.
//! - How fast: a waiter that already sleeps is woken by the holder's death itself, about as
//!   soon as a file lock's waiter is woken by the kernel's release of a dead holder's `flock`.
//!   A watcher thread of the waiter's process sleeps in `epoll_wait` on a `pidfd` of every
//!   holder its waiters wait for; when one becomes readable (the process ended), it marks the
//!   holder dead and wakes the futex, and the waiter checks `/proc` at once. The module
//!   `death.rs` argues the design (the normal handoff is not touched: a waiter still sleeps in
//!   one `FUTEX_WAIT`). Where pidfds cannot tell — before Linux 5.3, a seccomp filter, a
//!   holder's process id reused before the waiter's `pidfd_open`, a forked child whose parent
//!   was registering at the fork — the slice remains: the waiter checks the holder after 10 ms
//!   with the same holder. Every kind of waiter registers its holder so: a blocking wait, the
//!   watcher thread of async waits (below), and a waiter on the permits of a
//!   [`SemaphorePermits`] (one registration per permit). `cargo xtask bench` measures the
//!   recovery of each (see the README).
//!
//! # Waits, time and signals
//!
//! [`hang_lock`](ConcreteLock::hang_lock) and [`timed_lock`](ConcreteLock::timed_lock) sleep in
//! the kernel (`FUTEX_WAIT`, a shared futex, so releases in other processes wake them) and wake
//! at the release — no polling for the normal handoff — or at the holder's death (see "How
//! fast" above). They wake every 10 ms anyway to check that the holder lives, the fallback
//! where the death cannot wake them. The deadline of a timed lock is fixed at the start on the monotonic
//! clock ([`Instant`](std::time::Instant), `CLOCK_MONOTONIC`; `FUTEX_WAIT`'s relative timeout
//! runs on the same clock), and every sleep is the time left until it, so a jump of the wall
//! clock neither stretches nor cuts a wait, and a signal handler (even one without
//! `SA_RESTART`) neither fails a wait (EINTR never surfaces) nor extends it. A zero timeout
//! tries once. There is no fairness: a running process may take the lock before a woken
//! waiter, as with any futex mutex.
//!
//! # Async waits
//!
//! `SemaphoreLock` implements [`AsyncConcreteLock`](simplelock_core::AsyncConcreteLock):
//! `lock.lock_async().await` waits without blocking the runtime's thread, on any runtime (no
//! runtime dependency), and is cancel-safe. A futex has no file descriptor a runtime could
//! watch, so some thread must sleep in `FUTEX_WAIT`. Rather than one per waiter
//! (`spawn_blocking`: 1,000 waiters are 1,000 threads, and a dropped future leaves a thread that
//! later takes the lock for nobody) or one per process in `futex_waitv` (Linux 5.16+, at most
//! 128 futexes per call, a second futex to announce new locks and a polling fallback), the
//! async waiters of one lock in a process share **one watcher thread**: it sleeps on the lock
//! word exactly as a blocking waiter does (it sets `W`, so a release wakes it), wakes every
//! waiting task when the word changes, has the owner's death wake it as a blocking waiter
//! does (then checks the owner in `/proc`, one read for all the waiters; once per 10 ms slice
//! where the death cannot wake it) and ends 10 ms after its last waiter went. Threads are bounded by the number of distinct locks awaited at once. The watcher never
//! acquires: the task's poll takes the lock by the same compare-and-swap as `try_lock` (and
//! takes over from a dead owner the watcher reported), so a dropped future leaves at most a
//! registration, which its drop removes. A release wakes one futex sleeper: if blocking waiters
//! of other processes sleep on the same lock, the watcher may learn of the change only at the
//! end of its slice (10 ms). An async wait never reports `WouldDeadlock` (tasks of one thread
//! interleave).
//!
//! With the feature **`tokio`** (enabled by the `simplelock` facade's `tokio`), a wait polled
//! on a tokio runtime skips the watcher's extra wake-up where the kernel allows: the tasks
//! waiting for one lock share one io_uring `FUTEX_WAIT` (Linux 6.7+) on the same futex, whose
//! completion tokio's reactor watches, so the release's own wake wakes the runtime's thread
//! (on a current-thread runtime through an eventfd the kernel signals at the wake). It only
//! waits: the task still takes the lock by the compare-and-swap in its poll, so cancel-safety
//! is unchanged, and a dropped wait's pending futex wait is cancelled. Where no tokio runtime
//! is current, or io_uring or its futex wait cannot be had (older kernels,
//! `kernel.io_uring_disabled`, a seccomp filter), the watcher thread serves the wait; that is
//! found once per process. The runtime must have IO enabled (`enable_io`/`enable_all`), as for
//! any tokio IO.
//!
//! # Ownership, threads and handles
//!
//! The lock is held by a *handle* of a *process*. [`SemaphoreLock`] is `Send` and `Sync`: any
//! thread of the holding process may unlock through the holding handle (the holding is not
//! tied to the thread that locked, unlike a robust pthread mutex). Two handles on one name in
//! one process exclude each other like handles in two processes.
//!
//! A thread that holds the lock through one handle and calls
//! [`hang_lock`](ConcreteLock::hang_lock) on another would wait for itself forever: that call
//! returns [`SimpleLockError::WouldDeadlock`] instead (the acquiring thread is recorded next to
//! the word with one plain store, and only compared when the word names this process); so does
//! a [`timed_lock`](ConcreteLock::timed_lock) whose timeout is too large to have a deadline,
//! which would wait just as long. The check is by thread: if you locked in thread A, moved the
//! holding handle to thread B (which will unlock it) and then call `hang_lock` on another
//! handle in A, you get `WouldDeadlock` although B would have released; use a `timed_lock`
//! with a real timeout for such handoffs (it ends by itself, so it is never refused).
//! `try_lock` reports `AlreadyLocked` in either case.
//!
//! # Fork
//!
//! A child made by `fork` has its own token, so of a handle its parent held:
//!
//! - `status()` is [`LockStatus::Taken`] (the parent holds it) and `holder()` the parent's pid;
//! - `try_unlock()` is `NotHeld`, and dropping the handle releases nothing;
//! - `try_lock()` is `AlreadyLocked`, `hang_lock()` and `timed_lock()` wait for the parent,
//!   like any other process; once the child acquires, the handle is the child's.
//!
//! A child of `vfork` (or `posix_spawn`) shares its parent's memory until it execs, and must
//! not use locks, as POSIX says of everything but `exec` and `_exit`.
//!
//! # Names
//!
//! `"/name"` and `"name"` are the same lock on every platform ([`SemaphoreLock::name`] returns
//! `"/name"`). A name is refused with [`SimpleLockError::InvalidName`], saying which rule it
//! breaks, before the system sees it, when it is empty or only `"/"`, contains a `/` other than
//! a leading one (`"/a/b"`, and `"//x"`, which glibc's `sem_open` accepts and others refuse),
//! contains a NUL byte, or has more than [`MAX_NAME_LEN`] (251) bytes after the leading `/` —
//! the limit glibc's `sem_open` has, so every name that works there works here. Any other
//! bytes are allowed, Unicode included. The object is `/dev/shm/sl.NAME`.
//!
//! # Permissions
//!
//! [`SemaphoreLock::named`] creates a missing object with mode `0o600`: only its owner (and
//! root) may open it. [`SemaphoreLock::options()`](SemaphoreLock::options)
//! [`.with_mode(mode)`](SemaphoreLockOptions::with_mode) sets another mode, e.g. `0o660` for a group or
//! `0o666` for everyone; the creator sets it before the object has a name, so the umask does
//! not narrow it and no opener ever sees another mode. Existing objects are opened without
//! `O_CREAT`, so `fs.protected_regular` does not refuse another user's object in the sticky
//! `/dev/shm`.
//!
//! An existing object is used only if it belongs to the opening process's (effective) user and
//! its mode is no wider than the mode asked for (`0o600` for `named`). Anything else is
//! [`SimpleLockError::PermissionDenied`], whose source names the object, its owner and mode and
//! the way out: if someone else took the name first (any user can create `/dev/shm/sl.NAME`
//! before you, and would then own the lock's memory), delete it as its owner or root; to share
//! a lock across users on purpose, the users who did not create it open it with
//! `SemaphoreLock::options().with_mode(mode).with_owner(creator_uid).named(name)`
//! ([`with_owner`](SemaphoreLockOptions::with_owner)) and a mode at least as wide as the
//! object's. The same rule holds when a handle opens the name again after a
//! removal, so a name re-created by another user in between is refused too. Removing needs the
//! right to delete the file in the sticky `/dev/shm`: only its owner (or root) may.
//!
//! # What another process can still do
//!
//! Permission is the security boundary: every process that may open the object read-write —
//! its owner's, those of the users its mode lets in, root's — can write any bytes into it. With
//! the opt-in above, that includes the trusted user. Such a process can:
//!
//! - **free the word while it is held** (two holders) or **write a live process's token into
//!   it** (everyone waits for that process): no lock in shared memory can prevent that;
//! - **truncate the object**: every process that then touches its mapping — a holder's
//!   release, anyone's uncontended lock — dies of SIGBUS, as with any shared mapping of a file
//!   that shrinks (the size is checked only when an object is opened). Once the object is
//!   grown again its memory is zeros: then the generation check (8.) turns every use into an
//!   error, and nobody gets in beside the old holder;
//! - **delete it by hand** while it is in use (see "Removal").
//!
//! Another user who may not open the object can do none of this: they cannot open it, resize
//! it or delete it, and a name they create first is refused rather than used.
//!
//! # Removal
//!
//! [`SemaphoreLock::remove`] (by name) and [`SemaphoreLock::unlink`] (by handle) delete a lock's
//! object, like `sem_unlink`, but safely while others use the name (see 6. above): removal waits
//! for the holder, and handles in other processes move to a new object on their own.
//! [`SemaphoreLock::remove_within`] waits at most a given time, the way out when a process holds
//! the lock for good (a stopped one, or a pid-reuse namesake, see 4.): it fails with
//! [`SimpleLockError::TimedOut`] naming the holder and deletes nothing. Do not delete
//! `/dev/shm/sl.NAME` by hand while the lock is in use: handles that opened the old object
//! would keep using it while new ones create another, and both could hold "the" lock.
//!
//! # Limits
//!
//! - **Linux only**, 4.14 or later (`MADV_WIPEONFORK`), with procfs at `/proc` (including
//!   `/proc/self/ns`) and POSIX shared memory in `/dev/shm` (a tmpfs: `O_TMPFILE` is used).
//! - **One pid namespace** (and time namespace): owners are checked by their process id and
//!   start time in `/proc`, which mean something else in another namespace. A process of other
//!   namespaces than the object's creator, one whose namespaces cannot be read, one that moved
//!   into another time namespace after its first lock, and one whose `/proc` belongs to
//!   another pid namespace than its own all get an error instead of a lock they could break.
//! - **Start times** have clock-tick resolution (10 ms on most systems) and 32 bits are kept
//!   (497 days at 100 Hz). A new process with a dead owner's process id *and* the same start
//!   time modulo 2³² ticks is taken for the dead owner (see 4.): the lock stays held until
//!   that process ends — stuck, never shared.
//! - **Checkpoint/restore** (CRIU) gives a restored process a new start time: a lock it held
//!   when checkpointed counts as held by a dead process after the restore.
//! - **Recovery needs a locker**: a lock whose holder died stays held until someone locks it.
//!   `status()` already reports it `Open`, and `holder()` reports nobody.
//! - **A death across a removal** is reported to the first locker of the new object when the
//!   new object was created by a handle that saw the removal's mark; a process that opens the
//!   name for the first time between the unlink and the mark creates a plain new object, and
//!   nobody is told.
//! - **A contended `try_lock`** against another process reads `/proc/PID/stat` (a few
//!   microseconds) and the namespace fingerprint (two `stat`s) to check the holder; the
//!   uncontended paths never do.
//! - `Holder::since` is not recorded: it would cost the fast path a clock read.
//! - **`exec` while holding** keeps the lock held by the process (same pid, same start time) but
//!   loses the handle: nobody can release it until the new program ends, after which the next
//!   locker recovers it as [`PreviousHolder::Died`]. Release before `exec`.
//! - If the word is overwritten behind our back (a process writing the object directly), unlock
//!   reports `UnableToUnlock` rather than freeing someone else's lock.
//! - **Mappings**: all handles of one object in a process share one mapping of it (a process
//!   may have only `vm.max_map_count` mappings, 65,530 by default), so the number of handles is
//!   not limited by it; each distinct lock a process has open costs one mapping. (A child made
//!   by `fork` while another thread was registering a mapping maps its objects each on their
//!   own: correct, only not shared.)
//!
//! # Platforms
//!
//! On Linux everything above applies. On other systems the crate compiles, so that code naming
//! [`SemaphoreLock`] builds everywhere (one public type, the same API on every platform), but
//! opening a lock ([`SemaphoreLock::named`], `open_existing`, `remove`; after checking the name)
//! fails with an error whose [`kind`](SimpleLockError::kind) is
//! [`Unsupported`](std::io::ErrorKind::Unsupported); there is no panic.
//!
//! # Performance
//!
//! An uncontended lock + unlock is one compare-and-swap each way, as a raw POSIX named
//! semaphore's `sem_wait` + `sem_post` is; the rest (two virtual calls, the
//! cached token, the holding thread's mark) is noise next to them. A contended handoff costs a
//! `FUTEX_WAKE` in the releaser and a wake-up in the waiter. `cargo bench -p simplelock-sema`
//! compares the pair with the raw semaphore's, through [`ConcreteLock`] and behind a
//! `Box<dyn Lock>`; the measured times are in the README's generated
//! [Benchmarks](https://github.com/simplelock/simplelock#benchmarks) section, not here, where
//! they would go stale.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is **1.89**, that of the whole workspace.
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
mod death;
mod handle;
#[cfg(target_os = "linux")]
mod lock;
mod name;
#[cfg(target_os = "linux")]
pub mod permits;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(not(target_os = "linux"))]
mod unsupported;
// Compiled on Linux too, in tests, so that the code other platforms get is checked.
#[cfg(all(target_os = "linux", test))]
#[allow(dead_code, unreachable_pub)]
mod unsupported;
#[cfg(target_os = "linux")]
mod word;

pub use handle::{SemaphoreLock, SemaphoreLockOptions};
pub use name::MAX_NAME_LEN;
#[cfg(target_os = "linux")]
pub use permits::SemaphorePermits;

#[cfg(doc)]
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};

/// The mode of an object created by [`SemaphoreLock::named`]: read and write for its owner only.
pub const DEFAULT_MODE: u32 = 0o600;
