//! Helpers of the multi-process tests: the workspace's shared test harness
//! (`simplelock_harness::child`: child processes that are this test binary run again for one
//! test with a role, scratch folders, hang guards, the checked critical section) and what is
//! this crate's own: unique lock names, their objects, and their removal.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use simplelock_harness::child::*;

use simplelock_core::{ConcreteLock, SimpleLockResult};
use simplelock_sema::SemaphoreLock;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A lock name no other test (of this run, or of another run at the same time) uses.
pub fn unique_name(tag: &str) -> String {
    format!(
        "/slt-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the shared memory object of lock `name` lives.
pub fn object_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/sl.{}", name.trim_start_matches('/')))
}

/// Removes the locks it was given when dropped, also when the test fails.
#[derive(Default)]
pub struct Cleanup(Vec<String>);

impl Cleanup {
    pub fn new(names: &[&str]) -> Cleanup {
        Cleanup(names.iter().map(|n| n.to_string()).collect())
    }
    pub fn add(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = remove_within(name, Duration::from_secs(5));
        }
    }
}

/// Removes lock `name`, waiting at most `timeout` for it.
pub fn remove_within(name: &str, timeout: Duration) -> SimpleLockResult<()> {
    SemaphoreLock::remove_within(name, timeout).map(|_| ())
}

/// Acquires `lock` within [`PATIENCE`] (a hang guard, not a timing assertion).
pub fn lock_within_guard(lock: &mut SemaphoreLock) {
    lock.timed_lock(PATIENCE)
        .unwrap_or_else(|e| panic!("lock not acquired within {PATIENCE:?}: {e}"));
}
