//! `RefLock`: a correct in-process backend, and its mutants — the same code with one realistic
//! bug switched on by a [`Bug`].
//!
//! Locks live in a registry shared by the handles one opener makes (so every mutant test has
//! locks of its own), keyed by name, behind one mutex and one condition variable that every
//! release notifies with `notify_all`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use std::task::{Context, Poll, Waker};

use simplelock_core::{
    AsyncConcreteLock, ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockError,
    SimpleLockResult,
};

/// One realistic bug, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bug {
    /// The correct backend.
    None,
    /// `try_lock` ignores other holders.
    NoExclusion,
    /// `try_lock` checks that the lock is free and takes it in two separate critical sections.
    CheckThenSet,
    /// `try_lock` on the holding handle succeeds (re-entrant), instead of `AlreadyHeld`.
    ReentrantTryLock,
    /// `hang_lock` forgets the `AlreadyHeld` check and waits for itself.
    HangSelfDeadlock,
    /// `timed_lock` forgets the `AlreadyHeld` check and times out instead.
    TimedNoAlreadyHeld,
    /// `try_unlock` by a handle that does not hold the lock releases it anyway.
    UnlockAnyone,
    /// `try_unlock` by a handle that does not hold the lock returns `Ok` (releasing nothing).
    UnlockNotHeldOk,
    /// Dropping the holder does not release.
    NoReleaseOnDrop,
    /// Dropping any handle releases the lock (as closing any descriptor does to `fcntl` locks).
    DropReleasesAlways,
    /// Dropping the holder releases but wakes no waiter.
    DropNoWake,
    /// `try_unlock` releases but wakes no waiter.
    UnlockNoWake,
    /// Releases wake one waiter of the one condition variable all names share.
    NotifyOne,
    /// `status()` is `Mine` whenever anyone holds the lock.
    StatusMineForAll,
    /// `status()` ignores other holders: `Open` while someone else holds it.
    StatusOpenWhenTaken,
    /// `try_unlock` releases the lock but forgets that the handle no longer holds it.
    UnlockKeepsFlag,
    /// `holder()` reports this process whether or not anyone holds the lock.
    HolderWhenFree,
    /// `holder()` reports pid 0 (a field never set) instead of the holder.
    HolderWrongPid,
    /// `AlreadyLocked` carries no holder although the backend claims to know it.
    AlreadyLockedNoHolder,
    /// `TimedOut` carries the time waited instead of the timeout asked for.
    TimedOutWrongTimeout,
    /// `timed_lock` gives up at half its timeout.
    TimedEarly,
    /// `timed_lock` sleeps in fixed steps of 300 ms, ignoring releases and overshooting.
    TimedFixedSteps,
    /// `timed_lock` tries, sleeps its whole timeout, and tries once more.
    TimedIgnoresRelease,
    /// `timed_lock(0)` waits forever (zero taken as "no timeout").
    TimedZeroForever,
    /// `clone()` copies the handle's identity and holding state: both think they hold it.
    CloneSharesIdentity,
    /// `try_lock` while another handle holds the lock says `AlreadyHeld`.
    TryLockWrongError,
    /// `AlreadyLocked` carries an empty name.
    EmptyErrorName,
    /// Names are truncated to 32 bytes, so long names that differ at the end collide.
    KeysCollide,
    /// Every acquisition reports that the previous holder died.
    DiedAfterRelease,
    /// A new handle reports `Released` before it ever acquired.
    FreshReleased,
    /// Shared handles take the lock exclusively.
    SharedTakesExclusive,
    /// Shared handles ignore an exclusive holder.
    SharedIgnoresExclusive,
    /// A woken waiter takes the lock without checking again that it is free.
    WaiterSkipsRecheck,
    /// The async wait is the blocking one: a poll waits for the release.
    AsyncBlocks,
    /// The async wait registers no waker: a release does not wake it.
    AsyncNoWaker,
    /// Dropping an async guard does not release.
    AsyncGuardDropKeeps,
    /// The async wait takes the lock in a poll that returns `Pending` (it yields once before
    /// returning the guard), and keeps it when the future is dropped in between.
    AsyncGrantThenPending,
    /// The async wait is a blocking wait on a thread of its own (`spawn_blocking`), which goes
    /// on when the future is dropped and takes the lock for nobody.
    AsyncWaitOnAThread,
}

/// The locks of one opener.
pub(crate) struct Registry {
    slots: Mutex<HashMap<String, Slot>>,
    released: Condvar,
    /// The tasks of async waits, woken by every release.
    wakers: Mutex<Vec<Waker>>,
    bug: Bug,
}

#[derive(Default)]
struct Slot {
    exclusive: Option<u64>,
    shared: Vec<u64>,
}

impl Registry {
    pub(crate) fn new(bug: Bug) -> Arc<Registry> {
        Arc::new(Registry {
            slots: Mutex::default(),
            released: Condvar::new(),
            wakers: Mutex::default(),
            bug,
        })
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        if self.bug == Bug::NotifyOne {
            self.released.notify_one();
        } else {
            self.released.notify_all();
        }
        let wakers =
            std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        wakers.into_iter().for_each(Waker::wake);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A handle on the lock `name` of a [`Registry`].
pub(crate) struct RefLock {
    registry: Arc<Registry>,
    name: String,
    id: u64,
    shared: bool,
    held: bool,
    previous: PreviousHolder,
}

impl std::fmt::Debug for RefLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefLock")
            .field("name", &self.name)
            .field("held", &self.held)
            .finish()
    }
}

impl RefLock {
    pub(crate) fn open(
        registry: &Arc<Registry>,
        key: &str,
        shared: bool,
    ) -> SimpleLockResult<RefLock> {
        if key.is_empty() {
            return Err(SimpleLockError::invalid_name(key, "the name is empty"));
        }
        let mut name = key.to_owned();
        if registry.bug == Bug::KeysCollide {
            name.truncate(32);
        }
        Ok(RefLock {
            registry: Arc::clone(registry),
            name,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shared,
            held: false,
            previous: if registry.bug == Bug::FreshReleased {
                PreviousHolder::Released
            } else {
                PreviousHolder::Unknown
            },
        })
    }

    fn bug(&self) -> Bug {
        self.registry.bug
    }

    /// Whether this handle may take the lock now.
    fn free(&self, slots: &HashMap<String, Slot>) -> bool {
        let Some(slot) = slots.get(&self.name) else {
            return true;
        };
        if self.bug() == Bug::NoExclusion {
            return true;
        }
        if self.shared && self.bug() != Bug::SharedTakesExclusive {
            self.bug() == Bug::SharedIgnoresExclusive || slot.exclusive.is_none()
        } else {
            slot.exclusive.is_none() && slot.shared.is_empty()
        }
    }

    fn take(&mut self, slots: &mut HashMap<String, Slot>) {
        let slot = slots.entry(self.name.clone()).or_default();
        if self.shared && self.bug() != Bug::SharedTakesExclusive {
            slot.shared.push(self.id);
        } else {
            slot.exclusive = Some(self.id);
        }
        self.held = true;
        self.previous = if self.bug() == Bug::DiedAfterRelease {
            PreviousHolder::Died
        } else {
            PreviousHolder::Released
        };
    }

    /// Frees what this handle holds (or, with `anyone`, whatever holds the lock).
    fn free_slot(&self, slots: &mut HashMap<String, Slot>, anyone: bool) {
        if let Some(slot) = slots.get_mut(&self.name) {
            if anyone || slot.exclusive == Some(self.id) {
                slot.exclusive = None;
            }
            slot.shared.retain(|&id| !anyone && id != self.id);
        }
    }

    fn already_locked(&self) -> SimpleLockError {
        let name = if self.bug() == Bug::EmptyErrorName {
            ""
        } else {
            self.name.as_str()
        };
        let holder =
            (self.bug() != Bug::AlreadyLockedNoHolder).then(|| Holder::new(std::process::id()));
        SimpleLockError::already_locked(name, holder)
    }

    fn timed_out(&self, timeout: Duration, waited: Duration) -> SimpleLockError {
        let reported = if self.bug() == Bug::TimedOutWrongTimeout {
            waited
        } else {
            timeout
        };
        SimpleLockError::timed_out(&self.name, reported, Some(Holder::new(std::process::id())))
    }
}

impl ConcreteLock for RefLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        if self.held {
            return Ok(LockStatus::Mine);
        }
        let slots = self.registry.slots();
        let taken = slots.get(&self.name).is_some_and(|slot| {
            slot.exclusive.is_some() || (!self.shared && !slot.shared.is_empty())
        });
        Ok(match (taken, self.bug()) {
            (true, Bug::StatusMineForAll) => LockStatus::Mine,
            (true, Bug::StatusOpenWhenTaken) => LockStatus::Open,
            (true, _) => LockStatus::Taken,
            (false, _) => LockStatus::Open,
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        if self.held {
            if self.bug() == Bug::ReentrantTryLock {
                return Ok(());
            }
            return Err(SimpleLockError::already_held(&self.name));
        }
        if self.bug() == Bug::CheckThenSet {
            let free = self.free(&self.registry.slots());
            if !free {
                return Err(self.already_locked());
            }
            let registry = Arc::clone(&self.registry);
            self.take(&mut registry.slots());
            return Ok(());
        }
        let registry = Arc::clone(&self.registry);
        let mut slots = registry.slots();
        if !self.free(&slots) {
            if self.bug() == Bug::TryLockWrongError {
                return Err(SimpleLockError::already_held(&self.name));
            }
            return Err(self.already_locked());
        }
        self.take(&mut slots);
        Ok(())
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        if self.held && self.bug() != Bug::HangSelfDeadlock {
            return Err(SimpleLockError::already_held(&self.name));
        }
        let registry = Arc::clone(&self.registry);
        let mut slots = registry.slots();
        if self.bug() == Bug::WaiterSkipsRecheck {
            if !self.free(&slots) {
                slots = registry
                    .released
                    .wait(slots)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        } else {
            while !self.free(&slots) {
                slots = registry
                    .released
                    .wait(slots)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        self.take(&mut slots);
        Ok(())
    }

    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        if self.held && self.bug() != Bug::TimedNoAlreadyHeld {
            return Err(SimpleLockError::already_held(&self.name));
        }
        let start = Instant::now();
        match self.bug() {
            Bug::TimedFixedSteps => loop {
                match self.try_lock() {
                    Err(SimpleLockError::AlreadyLocked { .. }) if start.elapsed() >= timeout => {
                        return Err(self.timed_out(timeout, start.elapsed()));
                    }
                    Err(SimpleLockError::AlreadyLocked { .. }) => {
                        thread::sleep(Duration::from_millis(300))
                    }
                    other => return other,
                }
            },
            Bug::TimedIgnoresRelease => {
                if let Err(SimpleLockError::AlreadyLocked { .. }) = self.try_lock() {
                    thread::sleep(timeout);
                    return self
                        .try_lock()
                        .map_err(|_| self.timed_out(timeout, start.elapsed()));
                }
                return Ok(());
            }
            Bug::TimedZeroForever if timeout.is_zero() => return self.hang_lock(),
            _ => {}
        }
        let limit = if self.bug() == Bug::TimedEarly {
            timeout / 2
        } else {
            timeout
        };
        let deadline = start.checked_add(limit);
        let registry = Arc::clone(&self.registry);
        let mut slots = registry.slots();
        while !self.free(&slots) {
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(self.timed_out(timeout, start.elapsed()));
            }
            slots = registry
                .released
                .wait_timeout(slots, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        self.take(&mut slots);
        Ok(())
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        if !self.held {
            match self.bug() {
                Bug::UnlockNotHeldOk => return Ok(()),
                Bug::UnlockAnyone => {
                    self.free_slot(&mut self.registry.slots(), true);
                    self.registry.wake();
                    return Ok(());
                }
                _ => return Err(SimpleLockError::not_held(&self.name)),
            }
        }
        self.free_slot(&mut self.registry.slots(), false);
        if self.bug() != Bug::UnlockKeepsFlag {
            self.held = false;
        }
        if self.bug() != Bug::UnlockNoWake {
            self.registry.wake();
        }
        Ok(())
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        let slots = self.registry.slots();
        let held = slots
            .get(&self.name)
            .is_some_and(|slot| slot.exclusive.is_some() || !slot.shared.is_empty());
        Ok(match self.bug() {
            Bug::HolderWhenFree => Some(Holder::new(std::process::id())),
            Bug::HolderWrongPid if held => Some(Holder::new(0)),
            _ if held => Some(Holder::new(std::process::id())),
            _ => None,
        })
    }
}

impl Clone for RefLock {
    fn clone(&self) -> Self {
        RefLock {
            registry: Arc::clone(&self.registry),
            name: self.name.clone(),
            id: if self.bug() == Bug::CloneSharesIdentity {
                self.id
            } else {
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            },
            shared: self.shared,
            held: self.bug() == Bug::CloneSharesIdentity && self.held,
            previous: PreviousHolder::Unknown,
        }
    }
}

impl Drop for RefLock {
    fn drop(&mut self) {
        let bug = self.bug();
        if self.held && bug != Bug::NoReleaseOnDrop {
            self.free_slot(&mut self.registry.slots(), false);
            if bug != Bug::DropNoWake {
                self.registry.wake();
            }
        } else if !self.held && bug == Bug::DropReleasesAlways {
            self.free_slot(&mut self.registry.slots(), true);
            self.registry.wake();
        }
    }
}

/// What an async wait of a [`RefLock`] keeps between polls (only its mutants keep anything).
pub(crate) enum RefWait {
    /// `AsyncGrantThenPending`: acquired, the guard comes at the next poll.
    Granted,
    /// `AsyncWaitOnAThread`: where the thread puts the handle that took the lock.
    Thread(Arc<Mutex<Option<RefLock>>>),
}

/// The correct async wait registers its waker, then tries: a release between the two wakes it.
impl AsyncConcreteLock for RefLock {
    type WaitState = RefWait;

    fn poll_lock(
        &mut self,
        state: &mut Option<RefWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        match (self.bug(), state.as_ref()) {
            (Bug::AsyncBlocks, _) => return Poll::Ready(self.hang_lock()),
            (Bug::AsyncWaitOnAThread, _) => return self.poll_on_a_thread(state, cx),
            (Bug::AsyncGrantThenPending, Some(RefWait::Granted)) => return Poll::Ready(Ok(())),
            _ => {}
        }
        if self.bug() != Bug::AsyncNoWaker {
            self.registry
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(cx.waker().clone());
        }
        match self.try_lock() {
            Ok(()) if self.bug() == Bug::AsyncGrantThenPending => {
                *state = Some(RefWait::Granted);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(SimpleLockError::AlreadyLocked { .. }) => Poll::Pending,
            other => Poll::Ready(other),
        }
    }

    fn release_on_drop(&mut self) {
        if self.bug() != Bug::AsyncGuardDropKeeps {
            let _ = self.try_unlock();
        }
    }
}

impl RefLock {
    /// `AsyncWaitOnAThread`: a clone of the handle waits with `hang_lock` on a thread; the poll
    /// that finds it done takes its place. A thread whose future is gone keeps the lock.
    fn poll_on_a_thread(
        &mut self,
        state: &mut Option<RefWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        let slot = match state {
            Some(RefWait::Thread(slot)) => Arc::clone(slot),
            _ => {
                let slot = Arc::new(Mutex::new(None));
                let (mut waiter, theirs, waker) =
                    (self.clone(), Arc::clone(&slot), cx.waker().clone());
                thread::spawn(move || {
                    if waiter.hang_lock().is_ok() {
                        if Arc::strong_count(&theirs) == 1 {
                            std::mem::forget(waiter); // nobody will ever release it
                        } else {
                            *theirs.lock().unwrap_or_else(PoisonError::into_inner) = Some(waiter);
                        }
                    }
                    waker.wake();
                });
                *state = Some(RefWait::Thread(Arc::clone(&slot)));
                slot
            }
        };
        let done = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match done {
            Some(mut holder) => {
                std::mem::swap(self, &mut holder);
                Poll::Ready(Ok(()))
            }
            None => Poll::Pending,
        }
    }
}
