//! [`FakePermits`]: a counting semaphore of N permits shared by the threads of one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, SystemTime};

use simplelock_core::permits::{check_permits, first_holder};
use simplelock_core::{
    ConcreteLock, Holder, LockStatus, PermitState, Permits, PreviousHolder, SimpleLockError,
    SimpleLockResult, Wait,
};

/// Each handle gets its own id; a permit records which id holds it.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A handle on an in-process counting semaphore: it takes at most one of its N permits.
///
/// It is the fake of the real backends' permit handles (`FilePermits`, `SemaphorePermits`): a
/// [`ConcreteLock`] whose lock takes a permit (see [`simplelock_core::permits`]), plus
/// [`Permits`]. `Clone` makes a new handle on the same semaphore, not holding a permit;
/// dropping a holding handle gives its permit back.
/// [`simulate_holder_death`](FakePermits::simulate_holder_death) takes a permit from its holder
/// as if it had died, so that the next taker of it sees [`PreviousHolder::Died`].
///
/// ```
/// use simplelock_core::{ConcreteLock, LockStatus, Permits, SimpleLockError};
/// use simplelock_fake::FakePermits;
///
/// let builds = FakePermits::isolated("builds", 2)?;
/// let (mut a, mut b, mut c) = (builds.clone(), builds.clone(), builds.clone());
/// a.try_lock()?;
/// b.try_lock()?;
/// assert!(matches!(c.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })));
/// assert_eq!(c.status()?, LockStatus::Taken);
/// builds.simulate_holder_death(a.held_permit().unwrap());
/// c.try_lock()?;
/// assert!(c.previous_holder().died());
/// # Ok::<(), SimpleLockError>(())
/// ```
pub struct FakePermits {
    shared: Arc<Shared>,
    id: u64,
    previous: PreviousHolder,
}

struct Shared {
    name: String,
    state: Mutex<Vec<Slot>>,
    released: Condvar,
}

#[derive(Default, Clone, Copy)]
struct Slot {
    /// The id of the handle that holds the permit, since when, and the thread that took it.
    holder: Option<(u64, SystemTime, ThreadId)>,
    /// Set by `simulate_holder_death`, reported to and cleared by the next taker.
    died: bool,
}

impl FakePermits {
    /// The most permits a fake semaphore has: as many as the sema backend's, so that a test
    /// that passes with the fake does not ask for more than the real thing gives.
    pub const MAX: u32 = 64;

    /// A new semaphore of `permits` permits called `name`, of its own: two calls with the
    /// same name give two semaphores. Its clones are handles on it.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for 0 permits or more than [`FakePermits::MAX`].
    pub fn isolated(name: impl Into<String>, permits: u32) -> SimpleLockResult<Self> {
        let name = name.into();
        check_permits(&name, permits, FakePermits::MAX)?;
        Ok(FakePermits::handle(Arc::new(Shared {
            name,
            state: Mutex::new(vec![Slot::default(); permits as usize]),
            released: Condvar::new(),
        })))
    }

    /// A handle on the process-wide fake semaphore called `name`, created with `permits`
    /// permits by the first call.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for an empty name, 0 permits or more than
    /// [`FakePermits::MAX`]; [`SimpleLockError::permits_disagree`]'s error if the semaphore exists
    /// with another number of permits.
    pub fn named(name: &str, permits: u32) -> SimpleLockResult<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, FakePermits>>> = OnceLock::new();
        if name.is_empty() {
            return Err(SimpleLockError::invalid_name(name, "the name is empty"));
        }
        check_permits(name, permits, FakePermits::MAX)?;
        let registry = REGISTRY.get_or_init(Mutex::default);
        let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = registry.get(name) {
            if existing.permits() != permits {
                return Err(SimpleLockError::permits_disagree(
                    name,
                    existing.permits(),
                    permits,
                ));
            }
            return Ok(existing.clone());
        }
        let semaphore = FakePermits::isolated(name, permits)?;
        registry.insert(name.to_owned(), semaphore.clone());
        Ok(semaphore)
    }

    fn handle(shared: Arc<Shared>) -> Self {
        FakePermits {
            shared,
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            previous: PreviousHolder::Unknown,
        }
    }

    /// The state; consistent between statements, so a poisoned mutex is still good to use.
    fn state(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The semaphore's name, as its errors carry it.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Pretend the holder of permit `permit` died: the permit is free again without its holder
    /// knowing, and its next taker sees [`PreviousHolder::Died`]. Does nothing if the permit is
    /// free or does not exist.
    pub fn simulate_holder_death(&self, permit: u32) {
        let mut state = self.state();
        if let Some(slot) = state.get_mut(permit as usize)
            && slot.holder.take().is_some()
        {
            slot.died = true;
            self.shared.released.notify_all();
        }
    }

    fn mine(&self, state: &[Slot]) -> Option<u32> {
        let index = state
            .iter()
            .position(|slot| slot.holder.is_some_and(|(id, _, _)| id == self.id))?;
        Some(index as u32)
    }

    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        let wait = wait.start();
        let mut state = self.state();
        if self.mine(&state).is_some() {
            return Err(SimpleLockError::already_held(self.name()));
        }
        loop {
            if let Some(slot) = state.iter_mut().find(|slot| slot.holder.is_none()) {
                slot.holder = Some((self.id, SystemTime::now(), thread::current().id()));
                let died = std::mem::take(&mut slot.died);
                drop(state);
                self.previous = if died {
                    PreviousHolder::Died
                } else {
                    PreviousHolder::Released
                };
                return Ok(());
            }
            if wait.is_expired() {
                let holder = first_holder(&states(&state));
                return Err(wait.out_of_time(self.name(), holder));
            }
            let me = thread::current().id();
            if wait == Wait::Forever
                && state
                    .iter()
                    .all(|slot| slot.holder.is_some_and(|(_, _, by)| by == me))
            {
                // This thread holds every permit: it would wait for itself.
                return Err(SimpleLockError::would_deadlock(self.name()));
            }
            let released = &self.shared.released;
            state = match wait.remaining() {
                None => released.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    let waited = released.wait_timeout(state, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

fn states(state: &[Slot]) -> Vec<PermitState> {
    state
        .iter()
        .map(|slot| match slot.holder {
            Some((_, since, _)) => {
                PermitState::Held(Some(Holder::new(std::process::id()).with_since(since)))
            }
            None => PermitState::Free,
        })
        .collect()
}

impl ConcreteLock for FakePermits {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        let state = self.state();
        Ok(if self.mine(&state).is_some() {
            LockStatus::Mine
        } else if state.iter().all(|slot| slot.holder.is_some()) {
            LockStatus::Taken
        } else {
            LockStatus::Open
        })
    }

    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.acquire(Wait::For(timeout))
    }

    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        let mut state = self.state();
        let Some(index) = self.mine(&state) else {
            return Err(SimpleLockError::not_held(self.name()));
        };
        state[index as usize].holder = None;
        self.shared.released.notify_all();
        Ok(())
    }

    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(first_holder(&states(&self.state())))
    }
}

impl Permits for FakePermits {
    fn permits(&self) -> u32 {
        self.state().len() as u32
    }

    fn held_permit(&self) -> Option<u32> {
        self.mine(&self.state())
    }

    fn holders(&self) -> SimpleLockResult<Vec<PermitState>> {
        Ok(states(&self.state()))
    }
}

impl Clone for FakePermits {
    /// A new handle on the same semaphore, not holding a permit.
    fn clone(&self) -> Self {
        FakePermits::handle(Arc::clone(&self.shared))
    }
}

impl Drop for FakePermits {
    fn drop(&mut self) {
        let mut state = self.state();
        if let Some(index) = self.mine(&state) {
            state[index as usize].holder = None;
            self.shared.released.notify_all();
        }
    }
}

impl fmt::Debug for FakePermits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakePermits")
            .field("name", &self.name())
            .field("permits", &self.permits())
            .field("held_permit", &self.held_permit())
            .finish_non_exhaustive()
    }
}
