//! `AsyncConcreteLock` for `SemaphoreLock` (this handle's part): async waiters of one lock share one watcher
//! thread, which sleeps on the futex and wakes them.
//!
//! With the feature `tokio`, a wait polled on a tokio runtime goes another way where it can:
//! the tasks share one io_uring `FUTEX_WAIT` whose completion tokio's reactor watches, so the
//! release wakes the runtime's thread itself (one wake-up per handoff, where the watcher costs
//! two; see `async_uring.rs`). This module is the path of every other executor and the
//! fallback where io_uring's futex wait cannot be had (before Linux 6.7, io_uring disabled or
//! refused by a sandbox): `poll_lock` tries the io_uring path first and comes here when it
//! says so.
//!
//! # The design, and why
//!
//! A futex has no file descriptor, so no runtime can watch it: some thread has to sleep in
//! `FUTEX_WAIT`. The choices were:
//!
//! - a thread per waiter (`spawn_blocking`): 1,000 waiters are 1,000 threads, and a dropped
//!   future leaves a thread that later takes the lock for nobody — the bug this module exists
//!   to avoid;
//! - one thread for the whole process in `futex_waitv` (Linux 5.16+): at most 128 futexes per
//!   call, a second futex to tell it about new locks, and a polling fallback for older kernels
//!   and for the 129th lock;
//! - a futex wait the runtime itself can watch: io_uring's (Linux 6.7+), taken on tokio
//!   where it works (feature `tokio`, above); it needs the runtime's reactor, so it cannot be
//!   the runtime-agnostic path;
//! - **one watcher thread per lock that has async waiters in this process** (chosen): it sleeps
//!   in `FUTEX_WAIT` on the lock word exactly as a blocking waiter does (same protocol: it sets
//!   the waiters bit `W`, so a release wakes it), and when the word changes it wakes every task
//!   waiting on that lock. Any number of waiters of one lock cost one thread; the number of
//!   threads is bounded by the number of distinct locks awaited at once, which a program
//!   chooses. It works on every kernel the blocking path works on, and exits a slice (10 ms)
//!   after its last waiter went. Like a blocking waiter, it has the holder's death wake it
//!   (see "Dead holders").
//!
//! The watcher never acquires anything: it only wakes. Acquisition happens in
//! `poll_lock`, on the task's thread, by the same
//! compare-and-swap as the blocking path — so a dropped future can leave at most a stale waker
//! (which `cancel_wait` removes), never a thread that takes
//! the lock later. Nothing in a poll blocks: a compare-and-swap, a map lookup under a mutex held
//! for a few instructions, and, only when the watcher reports that the holder died, one
//! read of `/proc/PID/stat` (as the blocking path does).
//!
//! # Dead holders
//!
//! Before it sleeps on a held word, the watcher registers the word's owner with this process's
//! death watcher (`death.rs`, the same registration as a blocking waiter's), which wakes the
//! futex when the owner's process ends. Woken so, the watcher checks the owner in `/proc` at
//! once (one read for all the waiters), records the death and wakes the waiters; the first to
//! poll confirms the death and takes the lock over, reporting
//! [`PreviousHolder::Died`](simplelock_core::PreviousHolder::Died). So a SIGKILLed holder is
//! taken over about as fast from async code as from a blocking wait.
//!
//! The 10 ms slice stays as the fallback, where the death watcher cannot tell (no pidfds, see
//! `death.rs`): after a slice in which the same owner kept the lock, the watcher checks it all
//! the same.
//!
//! # Promptness
//!
//! A release by a process that finds `W` set wakes one futex sleeper. When blocking waiters of
//! other processes sleep on the same lock, that may be one of them rather than this watcher;
//! the watcher then sees the change at the end of its slice, 10 ms at most — and the blocking
//! waiter that got the lock keeps `W` set, so its own release wakes the next sleeper.
//!
//! # Fork
//!
//! A child made by `fork` has none of its parent's threads: the table of watchers remembers
//! the process id that made it and a child starts a table of its own.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{SimpleLockError, SimpleLockResult};

use super::{Handle, SLICE};
use crate::death::HolderWatch;
use crate::process::{self, Liveness};
use crate::sys::{self, ForkAware, MapRef, ObjectId};
use crate::word::{self, WAITERS, Word};

/// The watchers of one process, by lock object.
type Table = HashMap<ObjectId, Arc<Watcher>>;

/// The watchers of this process, with the process id that started them.
///
/// Fork-aware (see `ForkAware`): a child forked while a thread of its parent was inside it, or
/// a thread that finds it busy for long, goes without it — a watcher it starts is its own,
/// outside the table.
static WATCHERS: ForkAware<(u32, Option<Table>)> = ForkAware::new((0, None));

/// The async waiters of one lock object in this process, and what its watcher thread learned.
#[derive(Debug)]
pub(super) struct Watcher {
    /// Keeps the object mapped while the thread sleeps on it.
    map: MapRef,
    /// This process's token (a forked child has watchers of its own).
    me: u64,
    /// How long the thread sleeps at most before it checks an unchanged owner's liveness, and
    /// stays without waiters before it ends: [`SLICE`] (longer in a test that must tell a wake
    /// by the death from the end of a slice).
    slice: Duration,
    /// Whether the table lists it (see [`WATCHERS`]); one outside ends without looking there.
    in_table: bool,
    state: Mutex<WatchState>,
    /// Signalled when a waiter registers, for a watcher that has none.
    registered: Condvar,
}

#[derive(Debug, Default)]
struct WatchState {
    /// The waiting tasks, by the address of their handle (stable while its future borrows it).
    wakers: Vec<(usize, Waker)>,
    /// An owner the watcher found dead: the waiters check it and take over.
    dead_owner: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent: a panic in one poisons nothing.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watcher {
    fn wake_all(&self, dead_owner: Option<u64>) {
        let wakers = {
            let mut state = lock(&self.state);
            if let Some(owner) = dead_owner {
                state.dead_owner = owner;
            }
            std::mem::take(&mut state.wakers)
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// The watcher thread: sleep on the word while it is held, wake the waiters at every
    /// change and when its owner died (woken by the death watcher, see `death.rs`, else at the
    /// end of a slice); end a slice after the last waiter went.
    fn run(self: Arc<Self>, id: ObjectId) {
        let shared = self.map.shared();
        // The owner seen at the start of the current wait, and since when.
        let mut watched: Option<(u64, Instant)> = None;
        // The registration with the death watcher for the owner.
        let mut death = HolderWatch::default();
        loop {
            {
                let state = lock(&self.state);
                if state.wakers.is_empty() {
                    let (state, _) = self
                        .registered
                        .wait_timeout(state, self.slice)
                        .unwrap_or_else(PoisonError::into_inner);
                    if state.wakers.is_empty() {
                        drop(state);
                        if self.retire(id) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let current = shared.word.load(Ordering::Acquire);
            let Word::Held { owner, waiters } = Word::decode(current) else {
                // Free, or removed: the waiters try (or open the name again).
                watched = None;
                self.wake_all(None);
                continue;
            };
            let expected = current | WAITERS;
            if !waiters
                && shared
                    .word
                    .compare_exchange(current, expected, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let now = Instant::now();
            if !matches!(watched, Some((seen, _)) if seen == owner) {
                watched = Some((owner, now));
            }
            // Have the owner's death wake this sleep, as a blocking waiter does; an owner
            // reported dead already is checked at once instead.
            if !death.watch(&self.map, owner, self.me) {
                // Errors (none are expected on a valid word) end in the same re-check as a
                // timeout: the slice bounds any spin.
                let _ = sys::futex_wait(&shared.word, word::futex_half(expected), self.slice);
                if shared.word.load(Ordering::Acquire) != expected {
                    self.wake_all(None);
                    continue;
                }
            }
            let due = death.reported(owner)
                || matches!(watched, Some((seen, since))
                    if seen == owner && since.elapsed() >= self.slice);
            if !due {
                continue;
            }
            match process::liveness(owner) {
                Liveness::Dead => {
                    watched = None;
                    self.wake_all(Some(owner));
                }
                Liveness::Alive => {
                    watched = Some((owner, Instant::now()));
                    // A death report we cannot confirm (a `hidepid` /proc): back to the slice.
                    death.checked();
                }
            }
        }
    }

    /// Removes this watcher from the table if it still has no waiters: `true` if the thread
    /// may end. A waiter that registers afterwards finds no watcher and starts a new one.
    fn retire(self: &Arc<Self>, id: ObjectId) -> bool {
        if !self.in_table {
            return lock(&self.state).wakers.is_empty();
        }
        WATCHERS
            .with(|table| {
                if !lock(&self.state).wakers.is_empty() {
                    return false;
                }
                if let Some(map) = table.1.as_mut()
                    && map.get(&id).is_some_and(|w| Arc::ptr_eq(w, self))
                {
                    map.remove(&id);
                }
                true
            })
            // The table is busy: still listed, so it stays for another slice.
            .unwrap_or(false)
    }
}

/// The watcher of the object `id`, started if there is none; `me` is this process's token.
fn watcher(map: &MapRef, id: ObjectId, me: u64) -> SimpleLockResult<Arc<Watcher>> {
    watcher_with(map, id, me, SLICE)
}

/// [`watcher`], whose thread (if started now) sleeps `slice` at most.
pub(super) fn watcher_with(
    map: &MapRef,
    id: ObjectId,
    me: u64,
    slice: Duration,
) -> SimpleLockResult<Arc<Watcher>> {
    WATCHERS
        .with(|table| {
            let pid = std::process::id();
            if table.0 != pid {
                // A forked child: its parent's watcher threads were not copied.
                *table = (pid, None);
            }
            let map_of_watchers = table.1.get_or_insert_with(HashMap::new);
            if let Some(existing) = map_of_watchers.get(&id) {
                return Ok(Arc::clone(existing));
            }
            let new = start_watcher(map, id, me, slice, true)?;
            map_of_watchers.insert(id, Arc::clone(&new));
            Ok(new)
        })
        .unwrap_or_else(|| start_watcher(map, id, me, slice, false))
}

/// Starts a watcher thread for the object `id` (listed in [`WATCHERS`] by the caller if
/// `in_table`).
fn start_watcher(
    map: &MapRef,
    id: ObjectId,
    me: u64,
    slice: Duration,
    in_table: bool,
) -> SimpleLockResult<Arc<Watcher>> {
    let new = Arc::new(Watcher {
        map: map.clone(),
        me,
        slice,
        in_table,
        state: Mutex::new(WatchState::default()),
        registered: Condvar::new(),
    });
    let thread = Arc::clone(&new);
    thread::Builder::new()
        .name("simplelock-sema-watcher".into())
        .spawn(move || thread.run(id))
        .map_err(|err| {
            SimpleLockError::unknown(
                "(async wait)",
                "starting the thread that watches a semaphore lock for async waiters",
                Some(Box::new(err)),
            )
        })?;
    Ok(new)
}

impl Handle {
    /// The key of this handle's registration: its address, stable while a future borrows it.
    pub(super) fn waiter_key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    fn forget_waker(&self) {
        // Without the table (see `WATCHERS`), a waker left with a watcher outside it is woken
        // once for nothing at its next change, which is harmless.
        let _ = WATCHERS.with(|table| {
            if let Some(watcher) = table.1.as_ref().and_then(|m| m.get(&self.object.id)) {
                let key = self.waiter_key();
                lock(&watcher.state).wakers.retain(|(k, _)| *k != key);
            }
        });
    }
}

impl Handle {
    /// Takes the lock by the same compare-and-swap as `try_lock`;
    /// when it is held, registers the task with the lock's watcher thread (see the module
    /// docs) and returns `Pending`. A holder that died is taken over.
    ///
    /// Unlike `hang_lock`, it never reports
    /// `WouldDeadlock`: tasks on one thread interleave, so another handle of the same thread
    /// holding the lock will release it while this task waits.
    pub(crate) fn poll_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        let me = self.me()?;
        if self.holds(me) {
            return Poll::Ready(Err(SimpleLockError::already_held(&self.name.canonical)));
        }
        if self.acquire_fast(me) {
            // A wait registered by an earlier poll of this future ends here.
            #[cfg(feature = "tokio")]
            self.forget_ring_waiter();
            return Poll::Ready(Ok(()));
        }
        #[cfg(feature = "tokio")]
        match self.poll_uring(cx, me)? {
            super::async_uring::Waited::Acquired => return Poll::Ready(Ok(())),
            super::async_uring::Waited::Pending => return Poll::Pending,
            super::async_uring::Waited::Unavailable => {}
        }
        loop {
            self.check_header()?;
            let shared = self.object.map.shared();
            let current = shared.word.load(Ordering::Acquire);
            let owner = match Word::decode(current) {
                Word::Free => {
                    // Other async or blocking waiters may sleep: keep `W`, so our release
                    // wakes them.
                    if self.claim_free(me, me | WAITERS) {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                Word::Removed { died } => {
                    self.reopen(died)?;
                    continue;
                }
                Word::Held { owner, .. } => owner,
            };
            let watcher = watcher(&self.object.map, self.object.id, me)?;
            let reported_dead = {
                let mut state = lock(&watcher.state);
                std::mem::replace(&mut state.dead_owner, 0) == owner
            };
            if reported_dead && owner != me {
                self.check_namespace()?;
                if process::liveness(owner) == Liveness::Dead {
                    if self.take_over(me, current)? {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
            }
            let key = self.waiter_key();
            {
                let mut state = lock(&watcher.state);
                match state.wakers.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, waker)) => waker.clone_from(cx.waker()),
                    None => state.wakers.push((key, cx.waker().clone())),
                }
            }
            watcher.registered.notify_one();
            // A release between our look and the registration would wake nobody: look again.
            if shared.word.load(Ordering::Acquire) & !WAITERS != current & !WAITERS {
                continue;
            }
            return Poll::Pending;
        }
    }

    pub(crate) fn cancel_wait(&mut self) {
        #[cfg(feature = "tokio")]
        self.forget_ring_waiter();
        self.forget_waker();
    }
}

/// For the tests: whether a watcher thread serves the object `id` in this process.
#[cfg(all(test, feature = "tokio"))]
pub(super) fn has_watcher(id: ObjectId) -> bool {
    WATCHERS
        .with(|table| table.1.as_ref().is_some_and(|map| map.contains_key(&id)))
        .unwrap_or(false)
}
