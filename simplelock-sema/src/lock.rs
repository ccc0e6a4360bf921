//! [`Handle`]: the handle, its fast paths and its slow paths.
//!
//! The reasoning behind every step is in the crate docs ("Why two holders can never coexist",
//! "Why a dead holder is always recovered"); the comments here point at the case they handle.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult, Wait,
};

use crate::DEFAULT_MODE;
use crate::death;
use crate::name::{self, LockName};
use crate::process::{self, Liveness};
use crate::sys::{self, Header, Object, OpenError, Trust, Woke};

// The async acquisition (a child module: it uses this one's private steps).
#[path = "async_lock.rs"]
mod async_lock;
// The async acquisition on tokio through io_uring (feature `tokio`).
#[cfg(feature = "tokio")]
#[path = "async_uring.rs"]
mod async_uring;
use crate::word::{self, DEAD_HOLDER, REMOVED, REMOVED_AFTER_DEATH, WAITERS, Word};

/// Written into every lock object's header by its first opener; anything else there means the
/// object is not ours.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"slsema01");

/// How long a waiter sleeps at most before it checks that the holder is still alive. A holder
/// killed while others wait is thus noticed within about this long.
const SLICE: Duration = Duration::from_millis(10);

/// The widest mode `remove` accepts on an object of our own: deleting it is our right anyway.
const ANY_MODE: u32 = 0o777;

/// The Linux handle behind [`Handle`](crate::Handle); the docs are there.
pub(crate) struct Handle {
    name: LockName,
    /// The path of the object, `/dev/shm/sl.NAME`, for the system calls.
    object_name: CString,
    /// The mode a newly created object gets, and whose objects we accept.
    trust: Trust,
    /// The object this handle uses; replaced when it finds the object removed.
    object: Object,
    /// The generation in the header of `object` when we opened it. Compared after every
    /// acquisition: a different value means the object was zeroed or overwritten.
    generation: u64,
    /// The token with which this handle holds the lock, or 0. Compared with the current
    /// process's token, so a forked child (another token) does not count as holding.
    owner: u64,
    previous: PreviousHolder,
    /// The io_uring of the object that this handle's async waits used on a tokio runtime
    /// (shared with the object's other handles there; see `async_uring.rs`).
    #[cfg(feature = "tokio")]
    ring: Option<std::sync::Arc<async_uring::Ring>>,
    /// For the tests: async waits use the watcher thread even where io_uring works.
    #[cfg(all(test, feature = "tokio"))]
    no_uring: bool,
}

impl Handle {
    /// Opens (or creates) the lock `name`: a new object gets `mode`; an existing one must be
    /// this user's or `owner`'s, with a mode no wider than `mode`.
    pub(crate) fn open(name: String, mode: u32, owner: Option<u32>) -> SimpleLockResult<Handle> {
        Handle::open_with(
            name,
            Trust {
                owner,
                ..Trust::mine(mode)
            },
        )
    }

    /// The lock `name` with the default mode (for the tests of this module).
    #[cfg(test)]
    fn new(name: impl Into<String>) -> SimpleLockResult<Handle> {
        Handle::open(name.into(), DEFAULT_MODE, None)
    }

    fn open_with(name: String, trust: Trust) -> SimpleLockResult<Handle> {
        let (name, object_name) = checked(name)?;
        let (object, generation) =
            open_object(&name, &object_name, trust, Some(0))?.ok_or_else(|| {
                SimpleLockError::unknown(&name.canonical, "the new object vanished", None)
                    .with_kind(io::ErrorKind::NotFound)
            })?;
        Ok(Handle::opened(name, object_name, trust, object, generation))
    }

    /// The name of the lock, in its canonical form `"/name"` (also when opened as `"name"`).
    pub(crate) fn name(&self) -> String {
        self.name.canonical.clone()
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
    /// Those of [`new`](Handle::new) and of [`ConcreteLock::hang_lock`] (among them
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds the lock through another handle),
    /// and [`SimpleLockError::PermissionDenied`] if we may use the object but not delete it
    /// (only its owner may, in the sticky `/dev/shm`).
    pub(crate) fn remove(name: impl Into<String>) -> SimpleLockResult<bool> {
        let Some(handle) = Handle::open_to_remove(name.into())? else {
            return Ok(false);
        };
        handle.unlink()?;
        Ok(true)
    }

    /// Like [`remove`](Handle::remove), but waits at most `timeout` for the holder: the
    /// way out when a process holds the lock for good (a stopped process, or one that never
    /// releases). Then it fails with [`SimpleLockError::TimedOut`] naming the holder and deletes
    /// nothing; end that process, and the next removal (or lock) takes the lock over.
    ///
    /// # Errors
    /// As [`remove`](Handle::remove), and [`SimpleLockError::TimedOut`].
    pub(crate) fn remove_within(
        name: impl Into<String>,
        timeout: Duration,
    ) -> SimpleLockResult<bool> {
        let Some(mut handle) = Handle::open_to_remove(name.into())? else {
            return Ok(false);
        };
        let me = handle.me()?;
        handle.timed_lock(timeout)?;
        let died = handle.previous == PreviousHolder::Died;
        handle.unlink_held(me, died)?;
        Ok(true)
    }

    /// A handle for removing: an existing object of our own user, of any mode.
    fn open_to_remove(name: String) -> SimpleLockResult<Option<Handle>> {
        Handle::existing_with(
            name,
            Trust {
                widest: ANY_MODE,
                ..Trust::mine(DEFAULT_MODE)
            },
        )
    }

    /// Opens the lock `name` only if its shared memory object exists, without creating it:
    /// for looking at a lock that may not be there (`status`, `holder`). `Ok(None)` if there is
    /// none. The handle is a full handle; should the object be removed later, it opens the name
    /// again like any other handle, creating the object with mode `0o600`.
    ///
    /// # Errors
    /// As [`new`](Handle::new).
    pub(crate) fn open_existing(name: impl Into<String>) -> SimpleLockResult<Option<Handle>> {
        Handle::existing_with(name.into(), Trust::mine(DEFAULT_MODE))
    }

    fn existing_with(name: String, trust: Trust) -> SimpleLockResult<Option<Handle>> {
        let (name, object_name) = checked(name)?;
        let Some((object, generation)) = open_object(&name, &object_name, trust, None)? else {
            return Ok(None);
        };
        Ok(Some(Handle::opened(
            name,
            object_name,
            trust,
            object,
            generation,
        )))
    }

    /// A handle on the object just opened, holding nothing.
    fn opened(
        name: LockName,
        object_name: CString,
        trust: Trust,
        object: Object,
        generation: u64,
    ) -> Handle {
        Handle {
            name,
            object_name,
            trust,
            object,
            generation,
            owner: 0,
            previous: PreviousHolder::Unknown,
            #[cfg(feature = "tokio")]
            ring: None,
            #[cfg(all(test, feature = "tokio"))]
            no_uring: false,
        }
    }

    /// Deletes this lock's shared memory object, like [`remove`](Handle::remove): at
    /// once if this handle holds the lock, else after waiting for it.
    ///
    /// # Errors
    /// As [`remove`](Handle::remove). On an error the lock is not held by this handle
    /// any more (it was released, or never acquired).
    pub(crate) fn unlink(mut self) -> SimpleLockResult<()> {
        let me = self.me()?;
        // Taken over from a dead holder for the removal: nobody was told yet, so the mark
        // carries it on (a holder that was told already needs no second telling).
        let mut died = false;
        if !self.holds(me) {
            self.hang_lock()?;
            died = self.previous == PreviousHolder::Died;
        }
        self.unlink_held(me, died)
    }

    /// The token of this process, from the page a fork wipes; computed on first use.
    #[inline]
    fn me(&self) -> SimpleLockResult<u64> {
        if let Some(local) = sys::fork_local() {
            let token = local.token.load(Ordering::Acquire);
            if token != 0 {
                return Ok(token);
            }
        }
        identity(&self.name.canonical).map(|(token, _)| token)
    }

    /// Whether this handle holds the lock.
    #[inline]
    fn holds(&self, me: u64) -> bool {
        self.owner != 0 && self.owner == me
    }

    /// Every acquisition: refuse a second hold, try the fast path, then wait as `wait` says
    /// (started only on the slow path, so the fast path reads no clock).
    #[inline]
    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        let me = self.me()?;
        if self.holds(me) {
            return Err(SimpleLockError::already_held(&self.name.canonical));
        }
        if self.acquire_fast(me) {
            return Ok(());
        }
        self.acquire_slow(me, wait.start())
    }

    /// The uncontended acquisition: one compare-and-swap, no system call.
    #[inline]
    fn acquire_fast(&mut self, me: u64) -> bool {
        self.claim_free(me, me)
    }

    /// Takes a free lock by storing `word` (our token, with or without the waiters bit) in
    /// place of 0; `false` if the word was not 0.
    ///
    /// Taken with the waiters bit (we slept, so others may sleep too), it wakes one sleeper:
    /// a release wakes one, so the others went to sleep on an earlier holder, and asked to be
    /// woken by *its* death, not ours. The one woken looks at the word again, finds us, asks
    /// to be woken by our death and sleeps again; so whenever waiters sleep, one of them is
    /// woken by the current holder's death (see `death.rs`, "Who registers"). Not on the fast
    /// path, whose `word` has no waiters bit.
    #[inline]
    fn claim_free(&mut self, me: u64, word: u64) -> bool {
        let shared = self.object.map.shared();
        if shared
            .word
            .compare_exchange(0, word, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // A zeroed object (truncated and grown again, a hole punched into it) looks free:
            // its generation, which nobody but the creator writes, tells. Put the word back and
            // let the slow path report it. One load of the cache line we just wrote.
            if shared.generation.load(Ordering::Relaxed) != self.generation {
                let _ = shared
                    .word
                    .compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed);
                return false;
            }
            shared
                .holder_thread
                .store(thread_mark(me), Ordering::Relaxed);
            self.owner = me;
            self.previous = PreviousHolder::Released;
            if word & WAITERS != 0 {
                // A failed wake leaves the sleepers to their slice, as before.
                let _ = sys::futex_wake(&shared.word, 1);
            }
            true
        } else {
            false
        }
    }

    /// Acquires, waiting as `wait` (started) says. Handles everything but the uncontended
    /// case, in the steps the word's states call for (see [`Word`]): each round reads the word
    /// once and either ends the acquisition or goes round again after a sleep.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&mut self, me: u64, wait: Wait) -> SimpleLockResult<()> {
        self.acquire_sliced(me, wait, SLICE)
    }

    /// [`acquire_slow`](Handle::acquire_slow), checking a holder nobody reported dead after
    /// `slice` ([`SLICE`]; longer in a test that must tell a wake by a death from the end of a
    /// slice).
    fn acquire_sliced(&mut self, me: u64, wait: Wait, slice: Duration) -> SimpleLockResult<()> {
        let mut waiting = Waiting::new(slice);
        loop {
            self.check_header()?;
            let current = self.object.map.shared().word.load(Ordering::Acquire);
            let (owner, waiters) = match Word::decode(current) {
                // Step 1, free: claim it (keeping the waiters bit if we slept).
                Word::Free => {
                    if self.claim_free(me, waiting.token(me)) {
                        return Ok(());
                    }
                    continue;
                }
                // Step 1, removed: follow the name to its new object, and start over there.
                Word::Removed { died } => {
                    self.reopen(died)?;
                    waiting = Waiting::new(slice);
                    continue;
                }
                Word::Held { owner, waiters } => (owner, waiters),
            };
            // Step 2, held: is the owner alive (and not this very thread)?
            let expired = wait.is_expired();
            if self.owner_died(me, owner, &wait, expired, &mut waiting)? {
                if self.take_over(me, current)? {
                    return Ok(());
                }
                continue;
            }
            // Step 3: out of time?
            if expired {
                let holder = Some(Holder::new(word::pid_of(owner)));
                return Err(wait.out_of_time(&self.name.canonical, holder));
            }
            // The deadline came during step 2: check the owner once more before giving up.
            let Some(nap) = wait.sleep_slice(slice) else {
                continue;
            };
            // Step 4: have the holder's death wake us (see `death.rs`); set the waiters bit
            // and sleep on the futex.
            if waiting.death.watch(&self.object.map, owner, me) {
                // It died since we looked: check it now rather than sleep.
                continue;
            }
            self.sleep(current, waiters, nap)?;
            waiting.slept = true;
        }
    }

    /// Step 2 of [`acquire_slow`](Handle::acquire_slow): whether `owner`, which holds
    /// the lock, is dead. Reading /proc costs microseconds, more than a normal handoff takes, so
    /// a waiter checks an owner only once its death was reported (see `death.rs`), or once it
    /// has held the lock for a whole [`SLICE`] while we watched — and before giving up
    /// (`expired`).
    ///
    /// # Errors
    /// [`SimpleLockError::WouldDeadlock`] if this thread holds the lock through another handle
    /// and `wait` is [`Wait::Forever`]; the errors of the namespace check.
    fn owner_died(
        &self,
        me: u64,
        owner: u64,
        wait: &Wait,
        expired: bool,
        waiting: &mut Waiting,
    ) -> SimpleLockResult<bool> {
        if owner == me {
            // Another handle of this process holds it: alive by definition.
            let shared = self.object.map.shared();
            if *wait == Wait::Forever
                && shared.holder_thread.load(Ordering::Relaxed) == thread_mark(me)
            {
                return Err(SimpleLockError::would_deadlock(&self.name.canonical));
            }
            return Ok(false);
        }
        let now = Instant::now();
        let due = expired
            || waiting.death.reported(owner)
            || matches!(waiting.watch, Some((seen, since))
                if seen == owner && now.duration_since(since) >= waiting.slice);
        if !matches!(waiting.watch, Some((seen, _)) if seen == owner) {
            waiting.watch = Some((owner, now));
        }
        if !due {
            return Ok(false);
        }
        self.check_namespace()?;
        match process::liveness(owner) {
            Liveness::Dead => Ok(true),
            Liveness::Alive => {
                waiting.watch = Some((owner, now));
                // A death report we cannot confirm (a `hidepid` /proc): back to the slice.
                waiting.death.checked();
                Ok(false)
            }
        }
    }

    /// Step 4 of [`acquire_slow`](Handle::acquire_slow): set the waiters bit on the word
    /// `current` (unless `waiters` says it is set) and sleep on the futex for `nap` at most.
    /// Every way out means "look at the word again": a signal neither ends the wait nor extends
    /// it, since the next nap is cut from the same deadline.
    fn sleep(&self, current: u64, waiters: bool, nap: Duration) -> SimpleLockResult<()> {
        let shared = self.object.map.shared();
        let expected = current | WAITERS;
        if !waiters
            && shared
                .word
                .compare_exchange(current, expected, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        match sys::futex_wait(&shared.word, word::futex_half(expected), nap) {
            Ok(Woke::Woken | Woke::Changed | Woke::TimedOut | Woke::Interrupted) => Ok(()),
            Err(err) => Err(SimpleLockError::unknown(
                &self.name.canonical,
                "waiting on the futex",
                Some(Box::new(err)),
            )),
        }
    }

    /// Takes the lock over from the dead owner of `dead` (the whole word we saw). `Ok(false)` if
    /// someone changed the word first (another waiter took over, or a removal): look again.
    fn take_over(&mut self, me: u64, dead: u64) -> SimpleLockResult<bool> {
        let shared = self.object.map.shared();
        // Only one compare-and-swap from `dead` can succeed, and no live process can write
        // `dead` again (it would need the dead owner's process id *and* start time).
        let new = me | (dead & WAITERS);
        if shared
            .word
            .compare_exchange(dead, new, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(false);
        }
        shared
            .holder_thread
            .store(thread_mark(me), Ordering::Relaxed);
        self.owner = me;
        // The dead owner may have been removing the lock: it unlinks the name before it marks
        // the object removed. Holding an object that has no name any more would let us in
        // next to a holder of the new object, so check that the name still leads here.
        match sys::object_id(&self.object_name) {
            Ok(Some(id)) if id == self.object.id => {
                self.previous = PreviousHolder::Died;
                Ok(true)
            }
            Ok(_) => {
                // Finish the dead remover's work, then look at the name again.
                self.retire(false);
                self.reopen(false)?;
                Ok(false)
            }
            Err(err) => {
                // Put the dead owner back, so that the next try sees the same situation.
                self.owner = 0;
                self.give_back(me, dead);
                Err(SimpleLockError::unknown(
                    &self.name.canonical,
                    "checking the shared memory object after taking over from a dead holder",
                    Some(Box::new(err)),
                ))
            }
        }
    }

    /// Hands a word we took over from the dead owner `dead` back to it, after a failed check.
    ///
    /// Waiters may have set the waiters bit since we took it (we looked alive to them), so a
    /// compare-and-swap from exactly the value we wrote could fail and leave the word naming us
    /// while this handle no longer holds it: stuck for as long as this process lives. Keep the
    /// bit instead, so the next locker finds the dead owner and takes over.
    fn give_back(&self, me: u64, dead: u64) {
        let shared = self.object.map.shared();
        shared.holder_thread.store(0, Ordering::Relaxed);
        let mut current = shared.word.load(Ordering::Relaxed);
        while current & !WAITERS == me {
            let back = (dead & !WAITERS) | (current & WAITERS);
            match shared.word.compare_exchange_weak(
                current,
                back,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
    }

    /// Marks the object we hold removed, wakes every waiter (they will open the name again) and
    /// forgets the holding.
    ///
    /// `died`: the lock was taken over from a dead holder for this removal, and nobody was told
    /// yet; the mark says so, and the new object starts held by a dead holder.
    fn retire(&mut self, died: bool) {
        let shared = self.object.map.shared();
        shared.holder_thread.store(0, Ordering::Relaxed);
        let mark = if died { REMOVED_AFTER_DEATH } else { REMOVED };
        shared.word.store(mark, Ordering::Release);
        self.owner = 0;
        // A failed wake leaves waiters to their slice timeout.
        let _ = sys::futex_wake(&shared.word, i32::MAX);
    }

    /// Opens the name again after finding our object removed.
    ///
    /// `died`: the object was retired after its holder died; if we create the new object, it
    /// starts held by [`DEAD_HOLDER`], so its first locker is told.
    fn reopen(&mut self, died: bool) -> SimpleLockResult<()> {
        // A holder never sees its object removed, but a forked child's copy of a holding handle
        // still records its parent's token (it does not hold): that record means nothing on the
        // new object.
        self.owner = 0;
        let initial = if died { DEAD_HOLDER } else { 0 };
        let (object, generation) =
            open_object(&self.name, &self.object_name, self.trust, Some(initial))?.ok_or_else(
                || {
                    SimpleLockError::unknown(&self.name.canonical, "the new object vanished", None)
                        .with_kind(io::ErrorKind::NotFound)
                },
            )?;
        if object.id == self.object.id {
            // This crate marks an object removed only once its name is gone; the name leading
            // to it still means someone wrote the mark by other means. Opening again would
            // find it again, forever.
            return Err(SimpleLockError::unknown(
                &self.name.canonical,
                format!(
                    "the shared memory object {} is marked removed but still has its name; \
                     delete it when nobody uses it",
                    self.name.object
                ),
                None,
            )
            .with_kind(io::ErrorKind::InvalidData));
        }
        self.object = object;
        self.generation = generation;
        Ok(())
    }

    /// Fails if the header of our object is not what it was when we opened it: the object was
    /// truncated and grown again, zeroed or overwritten, and its word means nothing.
    fn check_header(&self) -> SimpleLockResult<()> {
        let shared = self.object.map.shared();
        if shared.magic.load(Ordering::Relaxed) == MAGIC
            && shared.generation.load(Ordering::Relaxed) == self.generation
        {
            return Ok(());
        }
        Err(SimpleLockError::unknown(
            &self.name.canonical,
            format!(
                "the shared memory object {} was truncated, zeroed or overwritten while in use \
                 (its header changed), so its lock word cannot be trusted; remove it (rm {}) \
                 when nobody uses it",
                self.object_path(),
                self.object_path()
            ),
            None,
        )
        .with_kind(io::ErrorKind::InvalidData))
    }

    /// Fails unless this process is still in the namespaces the object was made in: after a
    /// `setns` into another time namespace, every start time in `/proc` reads shifted and live
    /// owners would look dead. Read fresh (two `stat`s), before each judgement of an owner.
    fn check_namespace(&self) -> SimpleLockResult<()> {
        let now = process::namespace_fingerprint().map_err(|e| {
            SimpleLockError::unknown(
                &self.name.canonical,
                "reading this process's namespaces (needed to judge whether a holder lives)",
                Some(Box::new(e)),
            )
        })?;
        if now != self.object.map.shared().namespace.load(Ordering::Relaxed) {
            return Err(SimpleLockError::unknown(
                &self.name.canonical,
                "this process is now in another pid or time namespace than the lock's other \
                 users (a setns after it opened the lock?): it cannot judge whether a holder \
                 lives, so it does not take the lock",
                None,
            )
            .with_kind(io::ErrorKind::Unsupported));
        }
        Ok(())
    }

    /// `/dev/shm/sl.NAME`, for messages.
    fn object_path(&self) -> String {
        self.object_name.to_string_lossy().into_owned()
    }

    /// Unlinks the name and retires the object; this handle holds the lock.
    ///
    /// `died`: this removal took the lock over from a dead holder (see [`Self::retire`]).
    fn unlink_held(&mut self, me: u64, died: bool) -> SimpleLockResult<()> {
        debug_assert!(self.holds(me));
        // The name leads to our object unless someone deleted it by hand: only a holder of an
        // object unlinks its name through this crate, and we hold ours.
        let unlinked = match sys::object_id(&self.object_name) {
            Ok(Some(id)) if id == self.object.id => sys::unlink(&self.object_name),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        match unlinked {
            Ok(()) => {
                self.retire(died);
                Ok(())
            }
            Err(err) => {
                let _ = self.try_unlock();
                Err(match err.kind() {
                    io::ErrorKind::PermissionDenied => {
                        SimpleLockError::permission_denied(&self.name.canonical, Some(err))
                    }
                    _ => SimpleLockError::unknown(
                        &self.name.canonical,
                        "unlinking the shared memory object",
                        Some(Box::new(err)),
                    ),
                })
            }
        }
    }

    /// Releases a lock whose word has the waiters bit, or is not ours any more.
    #[cold]
    #[inline(never)]
    fn release_slow(&mut self, me: u64, mut current: u64) -> SimpleLockResult<()> {
        if let Err(SimpleLockError::UnknownError { message, .. }) = self.check_header() {
            self.owner = 0;
            return Err(SimpleLockError::unable_to_unlock(
                &self.name.canonical,
                message,
                None,
            ));
        }
        let shared = self.object.map.shared();
        loop {
            if current & !WAITERS != me {
                // Someone took the lock from us, which only happens to a holder believed dead
                // (see "Limits" in the crate docs). Whatever it is now, it is not ours.
                self.owner = 0;
                return Err(SimpleLockError::unable_to_unlock(
                    &self.name.canonical,
                    format!(
                        "this handle no longer holds the lock: {}",
                        describe(current)
                    ),
                    None,
                ));
            }
            match shared
                .word
                .compare_exchange(current, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        self.owner = 0;
        if current & WAITERS != 0 {
            // A failed wake leaves the waiter to its slice timeout, which is still correct.
            let _ = sys::futex_wake(&shared.word, 1);
        }
        Ok(())
    }

    /// The live owner of the lock, if any: read in our object, or where the name leads now
    /// when our object was removed or its dead owner was a remover that unlinked it.
    fn observed_owner(&self, me: u64) -> SimpleLockResult<Option<u64>> {
        self.check_header()?;
        let value = self.object.map.shared().word.load(Ordering::Acquire);
        if let Word::Removed { .. } = Word::decode(value) {
            return self.owner_at_name(me);
        }
        match self.live_owner(value, me)? {
            Some(owner) => Ok(Some(owner)),
            None if matches!(Word::decode(value), Word::Held { .. }) => {
                // A dead owner may have been removing the lock (it unlinks before it marks):
                // then the lock lives on where the name leads.
                match sys::object_id(&self.object_name) {
                    Ok(Some(id)) if id == self.object.id => Ok(None),
                    _ => self.owner_at_name(me),
                }
            }
            None => Ok(None),
        }
    }

    /// The live owner of the object the name leads to now (none if there is none).
    fn owner_at_name(&self, me: u64) -> SimpleLockResult<Option<u64>> {
        match open_object(&self.name, &self.object_name, self.trust, None)? {
            Some((object, _)) => {
                let value = object.map.shared().word.load(Ordering::Acquire);
                self.live_owner(value, me)
            }
            None => Ok(None),
        }
    }

    /// The live owner in `value`, if any.
    fn live_owner(&self, value: u64, me: u64) -> SimpleLockResult<Option<u64>> {
        Ok(match Word::decode(value) {
            Word::Held { owner, .. } if owner == me => Some(owner),
            Word::Held { owner, .. } => {
                self.check_namespace()?;
                (process::liveness(owner) == Liveness::Alive).then_some(owner)
            }
            _ => None,
        })
    }
}

/// What one slow acquisition remembers between the rounds of its loop.
#[derive(Debug)]
struct Waiting {
    /// We slept: then other waiters may sleep too, and we keep the waiters bit set when we
    /// acquire, so that our release wakes the next one.
    slept: bool,
    /// The owner we are watching, and since when (we met it, or last found it alive).
    watch: Option<(u64, Instant)>,
    /// The death registration for the owner (see `death.rs`).
    death: death::HolderWatch,
    /// After how long with the same owner we check it unreported ([`SLICE`]).
    slice: Duration,
}

impl Waiting {
    fn new(slice: Duration) -> Waiting {
        Waiting {
            slept: false,
            watch: None,
            death: death::HolderWatch::default(),
            slice,
        }
    }

    /// The word to claim a free lock with: our token, with the waiters bit if we slept.
    fn token(&self, me: u64) -> u64 {
        if self.slept { me | WAITERS } else { me }
    }
}

/// Computes this process's token and namespace fingerprint and caches them in the page a fork
/// wipes.
#[cold]
#[inline(never)]
fn identity(name: &str) -> SimpleLockResult<(u64, u64)> {
    let unknown = |doing: &str, err: io::Error| {
        SimpleLockError::unknown(name, doing.to_owned(), Some(Box::new(err)))
    };
    let local = sys::init_fork_local()
        .map_err(|e| unknown("mapping a page wiped on fork (needs Linux 4.14)", e))?;
    let token = local.token.load(Ordering::Acquire);
    if token != 0 {
        return Ok((token, local.namespace.load(Ordering::Relaxed)));
    }
    let (token, namespace) =
        process::own_identity().map_err(|e| unknown("finding out who this process is", e))?;
    if PROCESS_SECRET.load(Ordering::Relaxed) == 0 {
        let secret =
            sys::random_nonzero().map_err(|e| unknown("getting a random process secret", e))?;
        // Set once per process (a forked child keeps its parent's: its token differs anyway).
        let _ = PROCESS_SECRET.compare_exchange(0, secret, Ordering::Relaxed, Ordering::Relaxed);
    }
    local.namespace.store(namespace, Ordering::Relaxed);
    local.token.store(token, Ordering::Release);
    Ok((token, namespace))
}

/// Checks the name `given` and makes the C string of its object's name.
fn checked(given: String) -> SimpleLockResult<(LockName, CString)> {
    let name = name::check(&given)?;
    // `check` refused NUL bytes already; this cannot fail, but need not panic either.
    let object_name = sys::object_path(&name)
        .ok_or_else(|| SimpleLockError::invalid_name(&given, "the name contains a NUL byte"))?;
    Ok((name, object_name))
}

/// Opens the object of `name` (creating it, with the lock word `create`, if missing and
/// `create` is given), refuses one we may not trust (see
/// "Permissions" in the crate docs), checks its header and returns it with its generation.
fn open_object(
    name: &LockName,
    object_name: &CString,
    trust: Trust,
    create: Option<u64>,
) -> SimpleLockResult<Option<(Object, u64)>> {
    let lock = name.canonical.as_str();
    let path = object_name.to_string_lossy();
    let (_, cached) = identity(lock)?;
    // Read afresh: the cached fingerprint is that of the namespaces this process was in when
    // it first used a lock, and `setns` can have moved it into another time namespace since.
    let namespace = process::namespace_fingerprint().map_err(|e| {
        SimpleLockError::unknown(
            lock,
            "reading this process's namespaces (needed to judge whether a holder lives)",
            Some(Box::new(e)),
        )
    })?;
    if namespace != cached {
        return Err(SimpleLockError::unknown(
            lock,
            "this process moved into another time namespace after it first used a lock \
             (setns): start times read from /proc now mean something else, so it uses no locks",
            None,
        )
        .with_kind(io::ErrorKind::Unsupported));
    }
    let header = if let Some(word) = create {
        let generation = sys::random_nonzero().map_err(|e| {
            SimpleLockError::unknown(lock, "getting a random generation", Some(Box::new(e)))
        })?;
        Some(Header {
            word,
            namespace,
            magic: MAGIC,
            generation,
        })
    } else {
        None
    };
    let object = match sys::open(object_name, trust, header.as_ref()) {
        Ok(Some(object)) => object,
        Ok(None) => return Ok(None),
        Err(err) => return Err(open_error(lock, &path, trust, err)),
    };
    let shared = object.map.shared();
    let magic = shared.magic.load(Ordering::Relaxed);
    let mut generation = shared.generation.load(Ordering::Relaxed);
    if magic == MAGIC && generation == 0 {
        // An object of an earlier 0.5 pre-release: the same layout, made zero-filled and given
        // its magic and namespace by its openers, without a generation. Give it one (once: of
        // several openers, the first compare-and-swap wins), so that processes of both kinds
        // can use it while they coexist. A zeroed object has no magic, so it never gets here;
        // only a process of the earlier kind would write a magic into one again.
        let fresh = sys::random_nonzero().map_err(|e| {
            SimpleLockError::unknown(lock, "getting a random generation", Some(Box::new(e)))
        })?;
        generation =
            match shared
                .generation
                .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => fresh,
                Err(found) => found,
            };
    }
    if magic != MAGIC || generation == 0 {
        return Err(SimpleLockError::unknown(
            lock,
            format!(
                "the shared memory object {path} has no valid header: it was truncated, zeroed \
                 or overwritten, or it is not a simplelock semaphore; remove it (rm {path}) when nobody uses it"
            ),
            None,
        )
.with_kind(io::ErrorKind::InvalidData));
    }
    if shared.namespace.load(Ordering::Relaxed) != namespace {
        return Err(SimpleLockError::unknown(
            lock,
            "the lock is used from another pid or time namespace; \
             all users of a lock must share them, or owners cannot be checked",
            None,
        )
        .with_kind(io::ErrorKind::Unsupported));
    }
    Ok(Some((object, generation)))
}

/// The error for an object of the lock `lock` (at `path`) that [`sys::open`] refused.
fn open_error(lock: &str, path: &str, trust: Trust, err: OpenError) -> SimpleLockError {
    match err {
        OpenError::Foreign { size } => SimpleLockError::unknown(
            lock,
            format!(
                "the shared memory object {path} is {size} bytes long, not {}: it was \
                     truncated, or it is not a simplelock semaphore; remove it (rm {path}) when \
                     nobody uses it",
                sys::OBJECT_SIZE
            ),
            None,
        )
        .with_kind(io::ErrorKind::InvalidData),
        OpenError::NotAFile => SimpleLockError::unknown(
            lock,
            format!("{path} is not a regular file (a symbolic link, a folder, ...)"),
            None,
        )
        .with_kind(io::ErrorKind::InvalidData),
        OpenError::Untrusted {
            owner,
            mode,
            me,
            denied,
        } => {
            let whose = if owner == me {
                "this user's own".to_owned()
            } else {
                format!("another user's (uid {owner})")
            };
            let why = match &denied {
                Some(err) => format!("this process (uid {me}) may not open it ({err})"),
                None if owner != me && Some(owner) != trust.owner => format!(
                    "this process (uid {me}) uses only its own objects unless told to trust \
                     another user"
                ),
                None => format!(
                    "its mode is wider than the {:#o} asked for, so others may write into it",
                    trust.widest
                ),
            };
            SimpleLockError::permission_denied(
                lock,
                Some(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the shared memory object {path} is {whose}, with mode {mode:#o}, and \
                         {why}. If someone else took the name first, remove it (rm {path}, as \
                         its owner or root); to share a lock across users on purpose, open it \
                         with SemaphoreLock::options().with_owner({owner}) and a mode at \
                         least as wide as {mode:#o}"
                    ),
                )),
            )
        }
        OpenError::Os { doing, err } => match err.raw_os_error() {
            Some(libc::ENOSPC) => SimpleLockError::unknown(
                lock,
                format!("{doing}: /dev/shm is full"),
                Some(Box::new(err)),
            ),
            _ => SimpleLockError::from_io(lock, doing, err),
        },
    }
}

/// A random secret of this process (0 until its first lock is opened): mixed into the marks of
/// its threads, so that a mark left by a dead process with the same token (its process id reused
/// within one clock tick: see "Limits") does not match the mark of our thread with its number.
static PROCESS_SECRET: AtomicU64 = AtomicU64::new(0);

/// A mark for "the thread of the process `me` that is calling": its number mixed with the
/// token and the process's secret, so that a mark left by a dead process cannot match ours.
#[inline]
fn thread_mark(me: u64) -> u64 {
    mark_without_secret(me, simplelock_core::process::thread_number())
        ^ PROCESS_SECRET.load(Ordering::Relaxed)
}

/// The thread `number` of the process `me`, spread over the word's 64 bits (Fibonacci hashing),
/// before the process's secret is mixed in.
#[inline]
fn mark_without_secret(me: u64, number: u64) -> u64 {
    me ^ process::spread(number)
}

/// A word, in words.
fn describe(value: u64) -> String {
    match Word::decode(value) {
        Word::Free => "it is free".into(),
        Word::Removed { .. } => "it was removed".into(),
        Word::Held { owner, .. } => format!("it is held by pid {}", word::pid_of(owner)),
    }
}

impl Handle {
    /// `try_lock` for a waiter on several locks at once that has slept: it takes a free word
    /// with the waiters bit set, as `acquire_slow` does after sleeping, so that its release
    /// wakes the next sleeper (other waiters may still sleep on this word, whose bit the last
    /// release cleared).
    pub(crate) fn try_lock_after_sleep(&mut self) -> SimpleLockResult<()> {
        let me = self.me()?;
        if self.holds(me) {
            return Err(SimpleLockError::already_held(&self.name.canonical));
        }
        if self.claim_free(me, me | WAITERS) {
            return Ok(());
        }
        self.acquire_slow(me, Wait::Try)
    }

    /// For `SemaphorePermits`, after taking the lock: records in the object that this holder
    /// took it at `since` (a seqlock of two stores: the token is cleared, the time written, the
    /// token written; a reader that sees the holder's token before and after reading the time
    /// has the time this holder wrote). Not done by a plain lock, whose fast path reads no
    /// clock.
    pub(crate) fn record_since(&self, since: SystemTime) {
        let shared = self.object.map.shared();
        let ms = since
            .duration_since(UNIX_EPOCH)
            .map_or(0, |age| age.as_millis() as u64);
        shared.since_owner.store(0, Ordering::SeqCst);
        shared.since_ms.store(ms, Ordering::SeqCst);
        shared.since_owner.store(self.owner, Ordering::SeqCst);
    }

    /// The live holder, as `holder`, with the time it took the lock if it recorded it
    /// ([`record_since`](Handle::record_since)).
    pub(crate) fn holder_since(&self) -> SimpleLockResult<Option<Holder>> {
        let me = self.me()?;
        let Some(owner) = self.observed_owner(me)? else {
            return Ok(None);
        };
        let holder = Holder::new(word::pid_of(owner));
        let shared = self.object.map.shared();
        let before = shared.since_owner.load(Ordering::SeqCst);
        let ms = shared.since_ms.load(Ordering::SeqCst);
        let after = shared.since_owner.load(Ordering::SeqCst);
        if before != owner || after != owner {
            return Ok(Some(holder));
        }
        Ok(Some(
            match UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
                Some(since) => holder.with_since(since),
                None => holder,
            },
        ))
    }

    /// For a waiter on several locks at once (`SemaphorePermits`): whether the word is free
    /// (or removed) now, one load, no liveness check — worth a `try_lock`.
    pub(crate) fn looks_free(&self) -> bool {
        let current = self.object.map.shared().word.load(Ordering::Relaxed);
        !matches!(Word::decode(current), Word::Held { .. })
    }

    /// For a waiter on several locks at once: the word to sleep on and the value to sleep
    /// while it has, with the waiters bit set on a held word so that its release wakes futex
    /// waiters; `None` if the word is free or removed (look again at once).
    pub(crate) fn arm_waiter(&self) -> Option<(&AtomicU64, u32)> {
        let shared = self.object.map.shared();
        let mut current = shared.word.load(Ordering::Acquire);
        loop {
            match Word::decode(current) {
                Word::Free | Word::Removed { .. } => return None,
                Word::Held { waiters: true, .. } => {
                    return Some((&shared.word, word::futex_half(current)));
                }
                Word::Held { .. } => {
                    let armed = current | WAITERS;
                    match shared.word.compare_exchange(
                        current,
                        armed,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Some((&shared.word, word::futex_half(armed))),
                        Err(now) => current = now,
                    }
                }
            }
        }
    }

    /// For a waiter on several locks at once: asks to be woken by the death of this word's
    /// holder (see `death.rs`) through `death`, the waiter's registration for this word, as a
    /// waiter on this lock alone does. `true` if the holder was reported dead already: try
    /// the word (a try checks the holder) rather than sleep.
    pub(crate) fn watch_holder(&self, death: &mut death::HolderWatch) -> SimpleLockResult<bool> {
        let me = self.me()?;
        let current = self.object.map.shared().word.load(Ordering::Acquire);
        Ok(match Word::decode(current) {
            Word::Held { owner, .. } => death.watch(&self.object.map, owner, me),
            Word::Free | Word::Removed { .. } => false,
        })
    }
}

impl ConcreteLock for Handle {
    /// `Mine` if this handle holds the lock; `Taken` if a live process holds it (including this
    /// process through another handle, or the parent of a forked child); `Open` if it is free
    /// or its holder died (the next lock takes it over).
    fn status(&self) -> SimpleLockResult<LockStatus> {
        let me = self.me()?;
        Ok(match self.observed_owner(me)? {
            Some(owner) if owner == me && self.holds(me) => LockStatus::Mine,
            Some(_) => LockStatus::Taken,
            None => LockStatus::Open,
        })
    }

    #[inline]
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    /// Waits in the kernel (a futex) until the holder releases or dies (woken by its death, or
    /// after every 10 ms with the same holder where that cannot be had, it checks that the
    /// holder is alive), and takes the lock over when it died.
    ///
    /// # Errors
    /// Also [`SimpleLockError::WouldDeadlock`] when the calling thread acquired this lock
    /// through another handle that still holds it (see the crate docs, "Ownership").
    #[inline]
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    #[inline]
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        let me = self.me()?;
        if !self.holds(me) {
            return Err(SimpleLockError::not_held(&self.name.canonical));
        }
        let shared = self.object.map.shared();
        shared.holder_thread.store(0, Ordering::Relaxed);
        match shared
            .word
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                self.owner = 0;
                Ok(())
            }
            Err(current) => self.release_slow(me, current),
        }
    }

    /// Waits in the kernel like [`hang_lock`](ConcreteLock::hang_lock), until the deadline on
    /// the monotonic clock. Signals neither end nor extend the wait.
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        // A deadline past what the clock can hold is no deadline (`Wait::start`): wait as
        // hang_lock does, WouldDeadlock check included.
        self.acquire(Wait::For(timeout))
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    /// The process id of the live holder, if any (this process's, when one of its handles holds
    /// it). The time it acquired the lock is not recorded (that would cost the fast path a clock
    /// read).
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        let me = self.me()?;
        Ok(self
            .observed_owner(me)?
            .map(|owner| Holder::new(word::pid_of(owner))))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A forked child's copy of a holding handle has its parent's token in `owner`, not its
        // own: it must not release the parent's lock.
        if self.owner != 0 && self.me().is_ok_and(|me| self.holds(me)) {
            let _ = self.try_unlock();
        }
        #[cfg(feature = "tokio")]
        self.drop_ring();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.name.canonical)
            .field("object", &self.name.object)
            .field("mode", &format_args!("{:#o}", self.trust.mode))
            .field("trusted_owner", &self.trust.owner)
            .field("holding", &(self.owner != 0))
            .field("previous", &self.previous)
            .finish()
    }
}

/// What the unit tests of this crate share: a holder that can be killed while others wait.
#[cfg(test)]
pub(crate) mod testing {
    use std::process::{Child, Command};

    use super::{Handle, Ordering, WAITERS, word};

    /// A live process (`sleep 600`, to be killed) and its token.
    pub(crate) fn sleeping_process() -> (Child, u64) {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        let start = simplelock_core::process::ProcStat::read(pid).unwrap().start;
        (child, word::token(pid, start).unwrap())
    }

    /// Returns once the thread `tid` of this process sleeps (in a futex wait, in these tests).
    pub(crate) fn wait_until_asleep(tid: i32) {
        let stat = format!("/proc/self/task/{tid}/stat");
        while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") S ")) {
            std::thread::yield_now();
        }
    }

    impl Handle {
        /// Writes `token` into the word, with the waiters bit: the lock looks held by it.
        pub(crate) fn held_by(&self, token: u64) {
            let word = &self.object.map.shared().word;
            word.store(token | WAITERS, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Situations other processes leave behind, written straight into the lock word.

    use super::*;

    fn name(tag: &str) -> String {
        format!("/slt-{}-unit-{tag}", std::process::id())
    }

    /// A token of a process that cannot exist (its id is above any pid_max).
    fn dead_token() -> u64 {
        word::token(word::PID_LIMIT - 1, 12345).unwrap()
    }

    fn word_of(lock: &Handle) -> &AtomicU64 {
        &lock.object.map.shared().word
    }

    /// Takes and releases `lock` at once, checking what it was told of the previous holder.
    fn take_and_release(lock: &mut Handle, previous: PreviousHolder) {
        lock.try_lock().unwrap();
        assert_eq!(lock.previous_holder(), previous);
        lock.try_unlock().unwrap();
    }

    /// Closes `handles` and removes the object `name`, which must still exist.
    fn remove_after<T>(name: &str, handles: T) {
        drop(handles);
        assert!(Handle::remove(name).unwrap());
    }

    /// A futex sleeper waiting for a process is woken by that process's death (through its
    /// pidfd, see `death.rs`), not by a timeout: the sleep here would last a minute otherwise.
    #[test]
    fn the_death_of_the_holder_wakes_a_sleeper() {
        let name = name("death-wakes");
        let lock = Handle::new(&name).unwrap();
        let (mut child, token) = testing::sleeping_process();
        lock.held_by(token);
        let watch = death::watch(&lock.object.map, token)
            .expect("pidfds work on this kernel (Linux 5.3+, no seccomp filter refusing them)");
        assert!(!watch.died(), "the child is alive");
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let sleeper = s.spawn(|| {
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                sys::futex_wait(
                    word_of(&lock),
                    word::futex_half(token | WAITERS),
                    Duration::from_secs(60),
                )
                .unwrap()
            });
            // Kill the child once the sleeper sleeps (a wake before its wait would be lost, but
            // for the watcher's few repeated wakes).
            testing::wait_until_asleep(tid_rx.recv().unwrap());
            child.kill().unwrap();
            assert_eq!(
                sleeper.join().unwrap(),
                Woke::Woken,
                "not woken by the death"
            );
        });
        assert!(watch.died());
        // The death is confirmed from /proc (a zombie until reaped), and the lock taken over.
        let mut next = Handle::new(&name).unwrap();
        take_and_release(&mut next, PreviousHolder::Died);
        child.wait().unwrap();
        remove_after(&name, (lock, next));
    }

    /// The environment variable that makes [`handoff_waiter_role`] act: the lock's name.
    const HANDOFF_ROLE: &str = "SIMPLELOCK_SEMA_TEST_HANDOFF_WAITER";

    /// The second waiter of
    /// [`a_sleeper_that_slept_through_a_handoff_is_woken_by_the_next_holders_death`], in a
    /// process of its own (this test binary, started again with [`HANDOFF_ROLE`] set): prints
    /// its thread id, waits for the lock, says `held` and holds it until it is killed. Ignored:
    /// it is run only by that test (with the variable); alone it has no role and returns.
    #[test]
    #[ignore = "a role of a_sleeper_that_slept_through_a_handoff_is_woken_by_the_next_holders_death"]
    fn handoff_waiter_role() {
        use std::io::Write;

        let Ok(name) = std::env::var(HANDOFF_ROLE) else {
            return;
        };
        let mut lock = Handle::new(&name).unwrap();
        println!("tid {}", nix::unistd::gettid().as_raw());
        std::io::stdout().flush().unwrap();
        lock.hang_lock().unwrap();
        println!("held");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(600));
    }

    /// Whether thread `tid` of process `pid` sleeps in a futex wait: asleep, and in a kernel
    /// function named for futexes where the kernel names it (`wchan` is `0` without kallsyms,
    /// and then being asleep is all we can tell).
    fn asleep_on_a_futex(pid: u32, tid: i32) -> bool {
        let task = format!("/proc/{pid}/task/{tid}");
        std::fs::read_to_string(format!("{task}/stat")).is_ok_and(|s| s.contains(") S "))
            && std::fs::read_to_string(format!("{task}/wchan"))
                .is_ok_and(|w| w.contains("futex") || w.trim().chars().all(|c| c.is_ascii_digit()))
    }

    /// A waiter that slept through a handoff — the release woke another waiter (the first
    /// asleep), which took the lock — asked to be woken by the death of the holder it went to
    /// sleep on, who is alive. The new holder's death must wake it all the same, not the end
    /// of its slice (an hour here): the lock would otherwise stay with a dead holder while a
    /// waiter sleeps, until someone else happens to come and look.
    #[test]
    fn a_sleeper_that_slept_through_a_handoff_is_woken_by_the_next_holders_death() {
        use std::io::BufRead;

        let name = name("handoff-death");
        let mut releaser = Handle::new(&name).unwrap();
        let (mut first_holder, first) = testing::sleeping_process();
        // Held by `first`, no waiter yet: the second waiter's waiters bit tells that it is
        // about to sleep.
        word_of(&releaser).store(first, Ordering::SeqCst);
        let mut second = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::tests::handoff_waiter_role",
                "--include-ignored",
                "--nocapture",
            ])
            .env(HANDOFF_ROLE, &name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = std::io::BufReader::new(second.stdout.take().unwrap()).lines();
        let mut next_word = |wanted: &str| loop {
            let line = said.next().expect("the second waiter ended").unwrap();
            if let Some(rest) = line.strip_prefix(wanted) {
                return rest.trim().to_owned();
            }
        };
        let tid: i32 = next_word("tid").parse().unwrap();
        // It set the waiters bit, then sleeps on the word: first in the futex's queue.
        while word_of(&releaser).load(Ordering::SeqCst) & WAITERS == 0
            || !asleep_on_a_futex(second.id(), tid)
        {
            std::thread::yield_now();
        }
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let sleeper_name = name.clone();
        let sleeper = std::thread::spawn(move || {
            let mut lock = Handle::new(&sleeper_name).unwrap();
            let me = lock.me().unwrap();
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            let taken = lock.acquire_sliced(me, Wait::Forever.start(), Duration::from_secs(3600));
            taken_tx
                .send(taken.map(|()| lock.previous_holder()))
                .unwrap();
            lock
        });
        testing::wait_until_asleep(tid_rx.recv().unwrap());
        // `first` releases: its release wakes the second waiter, which takes the lock.
        releaser.release_slow(first, first | WAITERS).unwrap();
        next_word("held");
        second.kill().unwrap();
        let taken = taken_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the sleeper was not woken by the death of the holder that took the lock");
        assert_eq!(taken.unwrap(), PreviousHolder::Died);
        let mut lock = sleeper.join().unwrap();
        lock.try_unlock().unwrap();
        second.wait().unwrap();
        first_holder.kill().unwrap();
        first_holder.wait().unwrap();
        remove_after(&name, (releaser, lock));
    }

    /// Wakes its task by sending on a channel.
    struct Signal(std::sync::mpsc::Sender<()>);

    impl std::task::Wake for Signal {
        fn wake(self: std::sync::Arc<Self>) {
            let _ = self.0.send(());
        }
    }

    /// The async watcher of a lock wakes its tasks at the death of the holder (which the death
    /// watcher tells it), not at the end of its slice: the slice here is an hour.
    #[test]
    fn the_death_of_the_holder_wakes_the_async_waiters() {
        use std::task::{Context, Poll, Waker};

        let name = name("death-wakes-async");
        let mut lock = Handle::new(&name).unwrap();
        let (mut child, token) = testing::sleeping_process();
        lock.held_by(token);
        let me = lock.me().unwrap();
        let hour = Duration::from_secs(3600);
        let _watcher = async_lock::watcher_with(&lock.object.map, lock.object.id, me, hour);
        let (woken, wakes) = std::sync::mpsc::channel();
        let waker = Waker::from(std::sync::Arc::new(Signal(woken)));
        let mut cx = Context::from_waker(&waker);
        assert!(lock.poll_lock(&mut cx).is_pending());
        child.kill().unwrap();
        wakes
            .recv_timeout(Duration::from_secs(60))
            .expect("not woken by the death");
        assert!(matches!(lock.poll_lock(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(lock.previous_holder(), PreviousHolder::Died);
        lock.try_unlock().unwrap();
        child.wait().unwrap();
        remove_after(&name, lock);
    }

    #[test]
    fn a_dead_owner_is_taken_over_and_reported() {
        let name = name("dead");
        for (round, dead) in [
            dead_token(),
            // Our own process id with another start time: a dead process whose id we reuse.
            {
                let me = identity(&name).unwrap().0;
                word::token(word::pid_of(me), u64::from(word::start_of(me)) + 1).unwrap()
            },
        ]
        .into_iter()
        .enumerate()
        {
            let mut lock = Handle::new(&name).unwrap();
            word_of(&lock).store(dead | WAITERS, Ordering::SeqCst);
            assert_eq!(lock.status().unwrap(), LockStatus::Open, "round {round}");
            assert_eq!(lock.holder().unwrap(), None);
            match round {
                0 => lock.try_lock().unwrap(),
                _ => lock.hang_lock().unwrap(),
            }
            assert_eq!(lock.previous_holder(), PreviousHolder::Died);
            let me = lock.me().unwrap();
            assert_eq!(
                word_of(&lock).load(Ordering::SeqCst),
                me | WAITERS,
                "a takeover keeps the waiters bit"
            );
            lock.try_unlock().unwrap();
            assert_eq!(word_of(&lock).load(Ordering::SeqCst), 0);
        }
        assert!(Handle::remove(&name).unwrap());
    }

    /// A word naming a kernel thread (whose start time anyone can read in `/proc`) names no
    /// holder: the lock is taken over, not waited for forever.
    #[test]
    fn a_kernel_thread_never_holds() {
        let kthread = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find_map(|pid| {
                let stat = simplelock_core::process::ProcStat::read(pid).ok()?;
                (stat.flags & 0x0020_0000 != 0).then_some((pid, stat.start))
            });
        let Some((pid, start)) = kthread else {
            panic!(
                "no kernel thread is visible in /proc (a pid namespace of a container?): run \
                 this test where /proc shows kthreadd (pid 2), e.g. on the host"
            );
        };
        let name = name("kthread");
        let mut lock = Handle::new(&name).unwrap();
        word_of(&lock).store(word::token(pid, start).unwrap(), Ordering::SeqCst);
        assert_eq!(lock.status().unwrap(), LockStatus::Open, "pid {pid}");
        take_and_release(&mut lock, PreviousHolder::Died);
        remove_after(&name, lock);
    }

    /// A removal that takes the lock over from a dead holder keeps "the previous holder died"
    /// for whoever acquires next, on the new object.
    #[test]
    fn a_death_is_reported_across_a_removal() {
        let name = name("died-removed");
        let mut waiter = Handle::new(&name).unwrap();
        let old = waiter.object.id;
        word_of(&waiter).store(dead_token(), Ordering::SeqCst);
        assert!(Handle::remove(&name).unwrap());
        waiter.try_lock().unwrap();
        assert_ne!(waiter.object.id, old, "still on the removed object");
        assert_eq!(waiter.previous_holder(), PreviousHolder::Died);
        waiter.try_unlock().unwrap();
        take_and_release(&mut waiter, PreviousHolder::Released);
        remove_after(&name, waiter);
    }

    /// `status` and `holder` of a handle whose object a dead remover unlinked look where the
    /// name leads now, where the real holder is.
    #[test]
    fn status_follows_the_name_away_from_a_dead_removers_object() {
        let name = name("status-dead-remover");
        let stale = Handle::new(&name).unwrap();
        word_of(&stale).store(dead_token(), Ordering::SeqCst);
        sys::unlink(&stale.object_name).unwrap();
        let mut holder = Handle::new(&name).unwrap();
        holder.try_lock().unwrap();
        assert_eq!(stale.status().unwrap(), LockStatus::Taken);
        assert_eq!(
            stale.holder().unwrap().map(|h| h.pid),
            Some(std::process::id())
        );
        holder.try_unlock().unwrap();
        assert_eq!(stale.status().unwrap(), LockStatus::Open);
        remove_after(&name, (stale, holder));
    }

    /// A dead process whose token this process inherited (pid reused within one clock tick)
    /// left its thread's mark: this thread's `hang_lock` must not take that for its own hold
    /// and fail with a false `WouldDeadlock`; it waits like for any holder.
    #[test]
    fn a_dead_namesakes_thread_mark_is_not_ours() {
        let name = name("namesake");
        let mut lock = Handle::new(&name).unwrap();
        let me = lock.me().unwrap();
        let number = simplelock_core::process::thread_number();
        // What the namesake's thread with our number wrote: its token (= ours) mixed with that
        // number, as marks are made without a secret of the process.
        let namesake_mark = mark_without_secret(me, number);
        word_of(&lock).store(me, Ordering::SeqCst);
        lock.object
            .map
            .shared()
            .holder_thread
            .store(namesake_mark, Ordering::SeqCst);
        // Another handle on the same object frees the word later, as the namesake's death
        // would have been followed by someone's takeover and release.
        let other = Handle::new(&name).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                word_of(&other).store(0, Ordering::SeqCst);
                let _ = sys::futex_wake(word_of(&other), i32::MAX);
            });
            match lock.hang_lock() {
                Ok(()) => {}
                other => panic!("expected to wait and acquire, got {other:?}"),
            }
        });
        lock.try_unlock().unwrap();
        remove_after(&name, (lock, other));
    }

    /// An object made by an earlier 0.5 pre-release (the same layout, no generation yet: its
    /// openers wrote the magic and the namespace into a zero-filled object) is used, and gets a
    /// generation, so that processes of both kinds can share it while they coexist.
    #[test]
    fn an_object_of_the_earlier_format_gets_a_generation() {
        use std::os::unix::fs::PermissionsExt;
        let name = name("earlier-format");
        let path = name::check(&name).unwrap().path();
        let (_, namespace) = identity(&name).unwrap();
        let mut bytes = [0u8; 64];
        bytes[16..24].copy_from_slice(&namespace.to_ne_bytes());
        bytes[24..32].copy_from_slice(&MAGIC.to_ne_bytes());
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut lock = Handle::new(&name).unwrap();
        let generation = lock.object.map.shared().generation.load(Ordering::SeqCst);
        assert_ne!(generation, 0);
        assert_eq!(lock.generation, generation);
        let other = Handle::new(&name).unwrap();
        assert_eq!(other.generation, generation, "given once");
        lock.try_lock().unwrap();
        assert_eq!(other.status().unwrap(), LockStatus::Taken);
        lock.try_unlock().unwrap();
        remove_after(&name, (lock, other));
    }

    #[test]
    fn a_failed_takeover_gives_the_lock_back_to_the_dead_owner_even_after_a_waiter_marked_it() {
        let name = name("give-back");
        let lock = Handle::new(&name).unwrap();
        let me = lock.me().unwrap();
        let dead = dead_token();
        // We took the word over from `dead` (it had no waiters bit), the check of the name then
        // failed, and meanwhile a waiter saw us alive and set the waiters bit.
        word_of(&lock).store(me | WAITERS, Ordering::SeqCst);
        lock.give_back(me, dead);
        assert_eq!(
            word_of(&lock).load(Ordering::SeqCst),
            dead | WAITERS,
            "the word still names a process that does not hold the lock"
        );
        // So the next locker finds the dead owner and recovers the lock.
        let mut next = Handle::new(&name).unwrap();
        take_and_release(&mut next, PreviousHolder::Died);
        remove_after(&name, (lock, next));
    }

    #[test]
    fn a_remover_that_died_between_unlink_and_retire_is_finished() {
        let name = name("half-removed");
        let mut old = Handle::new(&name).unwrap();
        let mut old_too = Handle::new(&name).unwrap();
        // A remover died holding the lock after unlinking the name.
        word_of(&old).store(dead_token(), Ordering::SeqCst);
        sys::unlink(&old.object_name).unwrap();
        let old_id = old.object.id;

        // Taking over must notice the object lost its name, retire it and move on.
        old.try_lock().unwrap();
        assert_ne!(old.object.id, old_id, "still on the unnamed object");
        assert_eq!(old.previous_holder(), PreviousHolder::Released);
        assert_eq!(word_of(&old_too).load(Ordering::SeqCst), REMOVED);
        // Everyone else meets the holder on the new object.
        let mut fresh = Handle::new(&name).unwrap();
        assert_eq!(fresh.object.id, old.object.id);
        assert!(matches!(
            fresh.try_lock(),
            Err(SimpleLockError::AlreadyLocked { .. })
        ));
        assert_eq!(old_too.status().unwrap(), LockStatus::Taken);
        assert!(matches!(
            old_too.try_lock(),
            Err(SimpleLockError::AlreadyLocked { .. })
        ));
        assert_eq!(old_too.object.id, old.object.id, "moved to the new object");
        old.try_unlock().unwrap();
        fresh.try_lock().unwrap();
        fresh.try_unlock().unwrap();
        assert!(Handle::remove(&name).unwrap());
    }

    #[test]
    fn a_removed_mark_on_a_named_object_is_an_error_not_a_spin() {
        let name = name("tampered");
        let mut lock = Handle::new(&name).unwrap();
        word_of(&lock).store(REMOVED, Ordering::SeqCst);
        for result in [lock.try_lock(), lock.hang_lock()] {
            match result {
                Err(err) => assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}"),
                other => panic!("expected an error, got {other:?}"),
            }
        }
        word_of(&lock).store(0, Ordering::SeqCst);
        remove_after(&name, lock);
    }

    #[test]
    fn a_release_never_frees_a_word_that_is_not_ours() {
        let name = name("stolen");
        let mut lock = Handle::new(&name).unwrap();
        lock.try_lock().unwrap();
        // Pretend another process took it over from us.
        let other = word::token(1, 1).unwrap();
        word_of(&lock).store(other, Ordering::SeqCst);
        match lock.try_unlock() {
            Err(SimpleLockError::UnableToUnlock { reason, .. }) => {
                assert!(reason.contains("held by pid 1"), "{reason}")
            }
            other => panic!("expected UnableToUnlock, got {other:?}"),
        }
        assert_eq!(word_of(&lock).load(Ordering::SeqCst), other, "clobbered");
        assert!(matches!(
            lock.try_unlock(),
            Err(SimpleLockError::NotHeld { .. })
        ));
        word_of(&lock).store(0, Ordering::SeqCst);
        remove_after(&name, lock);
    }
}
