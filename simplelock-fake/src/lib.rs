//! [`FakeLock`]: a test double for code that uses [simplelock](https://crates.io/crates/simplelock)
//! locks.
//!
//! A `FakeLock` behaves like a real lock shared by the threads of one process, with no file and
//! no kernel object behind it: clones are handles on the same lock, a clone holding it makes
//! another clone's try-lock fail with `AlreadyLocked`, a waiting lock really waits (on a condition
//! variable) and a timed lock times out. Make one with [`FakeLock::default()`] (a lock of its
//! own called `"fake"`), [`FakeLock::isolated`] (of its own, with a name of your choice) or
//! [`FakeLock::named`] (the process-wide lock of that name, as a real named lock would be); its
//! constructors and accessors are named as the table "One vocabulary for every backend" of
//! `simplelock-core` says. On top of that it lets a test
//!
//! - make the next lock or unlock fail with an error of its choice
//!   ([`fail_next_lock`](FakeLock::fail_next_lock), [`fail_next_unlock`](FakeLock::fail_next_unlock)),
//! - pretend the holder died inside its critical section
//!   ([`simulate_holder_death`](FakeLock::simulate_holder_death)), to test repair code,
//! - count calls ([`lock_calls`](FakeLock::lock_calls), [`unlock_calls`](FakeLock::unlock_calls),
//!   [`acquisitions`](FakeLock::acquisitions)) and check the lock was released
//!   ([`assert_released`](FakeLock::assert_released)).
//!
//! [`FakePermits`] is the same for counting semaphores: N permits shared by the threads of one
//! process, each handle a lock that takes one (see `simplelock_core::permits`).
//!
//! # Example
//!
//! ```
//! use simplelock_core::{Lock, SimpleLockError, SimpleLockResult, lock_until_finished};
//! use simplelock_fake::FakeLock;
//!
//! /// The code under test: runs the migration unless another runner holds the lock.
//! fn migrate(lock: &mut impl Lock) -> SimpleLockResult<&'static str> {
//!     let guard = lock.guard()?;
//!     let outcome = if guard.previous_holder_died() { "repaired and migrated" } else { "migrated" };
//!     guard.unlock()?;
//!     Ok(outcome)
//! }
//!
//! let lock = FakeLock::default();
//! assert_eq!(migrate(&mut lock.clone())?, "migrated");
//! lock.assert_released();
//!
//! // A runner that died half way: the next one must repair.
//! let mut dead_runner = lock.clone();
//! dead_runner.lock()?;
//! lock.simulate_holder_death();
//! assert_eq!(migrate(&mut lock.clone())?, "repaired and migrated");
//!
//! // Errors from the lock reach the caller.
//! lock.fail_next_unlock(SimpleLockError::unable_to_unlock("fake", "disk gone", None));
//! assert!(migrate(&mut lock.clone()).is_err());
//! assert_eq!(lock.acquisitions(), 4);
//! lock.assert_released();
//! # Ok::<(), SimpleLockError>(())
//! ```
#![forbid(unsafe_code)]

mod async_lock;
mod permits;

pub use permits::FakePermits;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use simplelock_core::{
    ConcreteLock, Holder, Lock, LockStatus, PreviousHolder, SimpleLockError, SimpleLockResult, Wait,
};

/// Each handle gets its own id; the state records which id holds the lock.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A lock shared by the clones of one `FakeLock`; see the [crate docs](crate).
///
/// `Clone` makes a new handle on the same lock (it does not copy a holding state: the clone
/// does not hold the lock). Dropping a handle that holds the lock releases it.
pub struct FakeLock {
    shared: Arc<Shared>,
    id: u64,
    /// What this handle's last acquisition learned about the previous holder.
    previous: PreviousHolder,
}

struct Shared {
    name: String,
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Default)]
struct State {
    /// The id of the handle that holds the lock.
    holder: Option<u64>,
    /// Set by `simulate_holder_death`, reported to and cleared by the next acquisition.
    holder_died: bool,
    fail_next_lock: Option<SimpleLockError>,
    fail_next_unlock: Option<SimpleLockError>,
    lock_calls: u64,
    unlock_calls: u64,
    acquisitions: u64,
    /// The async waiters, by handle id: woken at every release (see `async_lock`).
    wakers: Vec<(u64, std::task::Waker)>,
}

impl FakeLock {
    /// A new lock, held by this handle if `is_locked`: 0.4's constructor.
    #[deprecated(
        since = "0.5.0",
        note = "use `FakeLock::default()` (a new, free lock), then `try_lock()` it for a held one"
    )]
    pub fn new(is_locked: bool) -> Self {
        let lock = FakeLock::isolated("fake");
        if is_locked {
            lock.state().holder = Some(lock.id);
        }
        lock
    }

    /// A new, free lock whose errors carry `name`.
    #[deprecated(since = "0.5.0", note = "use `FakeLock::isolated(name)` instead")]
    pub fn with_name(name: impl Into<String>) -> Self {
        FakeLock::isolated(name)
    }

    /// A new, free lock called `name`, of its own: unlike [`named`](FakeLock::named), two calls
    /// with the same name give two locks that do not exclude each other. Its clones are
    /// handles on it.
    pub fn isolated(name: impl Into<String>) -> Self {
        FakeLock::handle(Arc::new(Shared {
            name: name.into(),
            state: Mutex::new(State::default()),
            released: Condvar::new(),
        }))
    }

    /// A handle on the process-wide fake lock called `name`: every call with the same name gives
    /// a handle on the same lock, the way a named system lock would.
    ///
    /// # Errors
    /// [`SimpleLockError::InvalidName`] for an empty name.
    pub fn named(name: &str) -> SimpleLockResult<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, FakeLock>>> = OnceLock::new();
        if name.is_empty() {
            return Err(SimpleLockError::invalid_name(name, "the name is empty"));
        }
        let registry = REGISTRY.get_or_init(Mutex::default);
        let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(registry
            .entry(name.to_owned())
            .or_insert_with(|| FakeLock::isolated(name))
            .clone())
    }

    fn handle(shared: Arc<Shared>) -> Self {
        FakeLock {
            shared,
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            previous: PreviousHolder::Unknown,
        }
    }

    /// The lock's state. A panicking test thread must not poison every other test's lock: the
    /// state is consistent between statements, so a poisoned mutex is still good to use.
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock's name, as its errors carry it (`"fake"` for a [default](FakeLock::default)
    /// lock).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The name errors carry.
    #[deprecated(since = "0.5.0", note = "use `FakeLock::name()` instead")]
    pub fn lock_name(&self) -> &str {
        self.name()
    }

    /// The state of the lock as this handle sees it.
    ///
    /// # Errors
    /// None; the `Result` matches the traits.
    pub fn status(&self) -> SimpleLockResult<LockStatus> {
        Ok(match self.state().holder {
            Some(id) if id == self.id => LockStatus::Mine,
            Some(_) => LockStatus::Taken,
            None => LockStatus::Open,
        })
    }

    /// Whether any handle holds the lock.
    pub fn is_locked(&self) -> bool {
        self.state().holder.is_some()
    }

    /// Panics unless the lock is free: for tests that check code released what it took.
    #[track_caller]
    pub fn assert_released(&self) {
        assert!(
            !self.is_locked(),
            "fake lock {:?} is still held: the code under test did not release it",
            self.name()
        );
    }

    /// How many times any handle tried to lock (every mode, successful or not).
    pub fn lock_calls(&self) -> u64 {
        self.state().lock_calls
    }

    /// How many times any handle tried to unlock (successful or not).
    pub fn unlock_calls(&self) -> u64 {
        self.state().unlock_calls
    }

    /// How many times a handle acquired the lock.
    pub fn acquisitions(&self) -> u64 {
        self.state().acquisitions
    }

    /// Make the next lock attempt by any handle fail with `error` (the lock is not taken).
    pub fn fail_next_lock(&self, error: SimpleLockError) {
        self.state().fail_next_lock = Some(error);
    }

    /// Make the next unlock attempt by any handle fail with `error` (the lock stays held).
    pub fn fail_next_unlock(&self, error: SimpleLockError) {
        self.state().fail_next_unlock = Some(error);
    }

    /// Pretend the holder died inside its critical section: the lock is released without its
    /// holder knowing, and the next acquisition reports [`PreviousHolder::Died`]. Does nothing
    /// if the lock is free.
    pub fn simulate_holder_death(&self) {
        let mut state = self.state();
        if state.holder.take().is_some() {
            state.holder_died = true;
            self.shared.released.notify_all();
            async_lock::wake_all(&mut state);
        }
    }

    /// Acquire the lock if it is free, or fail at once.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyLocked`] if another handle holds it,
    /// [`SimpleLockError::AlreadyHeld`] if this one does, or the injected error.
    pub fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Try)
    }

    /// Acquire the lock, waiting as long as it takes.
    ///
    /// # Errors
    /// [`SimpleLockError::AlreadyHeld`] if this handle holds it, or the injected error.
    pub fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.acquire(Wait::Forever)
    }

    /// Acquire the lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SimpleLockError::TimedOut`] if it stayed held, [`SimpleLockError::AlreadyHeld`] if
    /// this handle holds it, or the injected error.
    pub fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.acquire(Wait::For(timeout))
    }

    /// Takes the lock, waiting for it as `wait` says.
    fn acquire(&mut self, wait: Wait) -> SimpleLockResult<()> {
        let wait = wait.start();
        let mut state = self.state();
        state.lock_calls += 1;
        if let Some(error) = state.fail_next_lock.take() {
            return Err(error);
        }
        if state.holder == Some(self.id) {
            return Err(SimpleLockError::already_held(self.name()));
        }
        while state.holder.is_some() {
            if wait.is_expired() {
                let holder = Holder::new(std::process::id());
                return Err(wait.out_of_time(self.name(), Some(holder)));
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
        let previous = take(&mut state, self.id);
        drop(state);
        self.previous = previous;
        Ok(())
    }

    /// Release the lock.
    ///
    /// # Errors
    /// [`SimpleLockError::NotHeld`] if this handle does not hold it (nothing is released), or
    /// the injected error (the lock stays held).
    pub fn unlock(&mut self) -> SimpleLockResult<()> {
        let mut state = self.state();
        state.unlock_calls += 1;
        if let Some(error) = state.fail_next_unlock.take() {
            return Err(error);
        }
        if state.holder != Some(self.id) {
            return Err(SimpleLockError::not_held(self.name()));
        }
        state.holder = None;
        self.shared.released.notify_all();
        async_lock::wake_all(&mut state);
        Ok(())
    }

    /// How the previous holder let go, as learned by this handle's last acquisition.
    pub fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }

    /// This process, while a handle holds the lock.
    ///
    /// # Errors
    /// None; the `Result` matches the traits.
    pub fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        Ok(self.state().holder.map(|_| Holder::new(std::process::id())))
    }
}

/// Gives the free lock to handle `id`; what it learns about the previous holder.
fn take(state: &mut State, id: u64) -> PreviousHolder {
    state.holder = Some(id);
    state.acquisitions += 1;
    if std::mem::take(&mut state.holder_died) {
        PreviousHolder::Died
    } else {
        PreviousHolder::Released
    }
}

impl Default for FakeLock {
    /// A new, free lock called `"fake"`, of its own (see [`isolated`](FakeLock::isolated)).
    fn default() -> Self {
        FakeLock::isolated("fake")
    }
}

impl Clone for FakeLock {
    /// A new handle on the same lock, not holding it.
    fn clone(&self) -> Self {
        FakeLock::handle(Arc::clone(&self.shared))
    }
}

impl Drop for FakeLock {
    fn drop(&mut self) {
        let mut state = self.state();
        if state.holder == Some(self.id) {
            state.holder = None;
            self.shared.released.notify_all();
            async_lock::wake_all(&mut state);
        }
    }
}

impl fmt::Debug for FakeLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeLock")
            .field("name", &self.name())
            .field("status", &self.status().ok())
            .finish_non_exhaustive()
    }
}

/// `lock()` waits as long as it takes, like the default of a built lock.
impl Lock for FakeLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        FakeLock::status(self)
    }
    fn lock(&mut self) -> SimpleLockResult<()> {
        self.hang_lock()
    }
    fn unlock(&mut self) -> SimpleLockResult<()> {
        FakeLock::unlock(self)
    }
    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        FakeLock::holder(self)
    }
}

/// So a `FakeLock` can stand in for a backend behind a `LockBuilder`.
impl ConcreteLock for FakeLock {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        FakeLock::status(self)
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        FakeLock::try_lock(self)
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        FakeLock::hang_lock(self)
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        FakeLock::unlock(self)
    }
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        FakeLock::timed_lock(self, timeout)
    }
    fn previous_holder(&self) -> PreviousHolder {
        self.previous
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        FakeLock::holder(self)
    }
}
