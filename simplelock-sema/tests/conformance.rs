//! SemaphoreLock passes the backend conformance suite of simplelock-core, the multi-process
//! checks included.
//!
//! Each key maps to a lock name private to this test run (`conformance::run_id()` is the test
//! process's id, in the children the suite starts too); the test process removes the lock's
//! object when the last handle it opened for it is dropped, so the suite leaves nothing in
//! `/dev/shm`. Children leave the removal to their parent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use simplelock_core::conformance;
use simplelock_core::{ConcreteLock, Holder, LockStatus, PreviousHolder, SimpleLockResult};
use simplelock_sema::SemaphoreLock;

mod common;

/// How many handles are open per name.
static OPEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// A `SemaphoreLock` that removes its lock when the last handle on the name goes away. It
/// forwards every method, so the suite checks `SemaphoreLock` itself.
#[derive(Debug)]
struct Tracked {
    lock: SemaphoreLock,
    name: String,
}

fn open(key: &str) -> SimpleLockResult<Tracked> {
    let name = format!("/slt-{}-conformance-{key}", conformance::run_id());
    let lock = SemaphoreLock::named(&name)?;
    *OPEN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(name.clone())
        .or_default() += 1;
    Ok(Tracked { lock, name })
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let last = {
            let mut open = OPEN.lock().unwrap();
            let count = open
                .get_or_insert_with(HashMap::new)
                .get_mut(&self.name)
                .unwrap();
            *count -= 1;
            *count == 0
        };
        if last && conformance::run_id() == std::process::id() {
            // Release first (dropping would, but only after this), then delete the object.
            let _ = self.lock.try_unlock();
            let removed = common::remove_within(&self.name, Duration::from_secs(5));
            if std::thread::panicking() {
                // A check is failing, maybe while a child still holds the lock: a second panic
                // here would abort the test binary and lose every other check's verdict.
                return;
            }
            removed.unwrap_or_else(|e| panic!("cleaning up {}: {e}", self.name));
            assert!(
                !common::object_path(&self.name).exists(),
                "{} was not removed",
                self.name
            );
        }
    }
}

impl ConcreteLock for Tracked {
    fn status(&self) -> SimpleLockResult<LockStatus> {
        self.lock.status()
    }
    fn try_lock(&mut self) -> SimpleLockResult<()> {
        self.lock.try_lock()
    }
    fn hang_lock(&mut self) -> SimpleLockResult<()> {
        self.lock.hang_lock()
    }
    fn try_unlock(&mut self) -> SimpleLockResult<()> {
        self.lock.try_unlock()
    }
    fn timed_lock(&mut self, timeout: Duration) -> SimpleLockResult<()> {
        self.lock.timed_lock(timeout)
    }
    fn previous_holder(&self) -> PreviousHolder {
        self.lock.previous_holder()
    }
    fn holder(&self) -> SimpleLockResult<Option<Holder>> {
        self.lock.holder()
    }
}

simplelock_core::conformance_tests!(
    open,
    across_processes,
    crash_safe,
    reports_deaths,
    holder_pid,
);
