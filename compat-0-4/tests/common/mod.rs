//! Helpers shared by the test binaries: lock names that no other test uses, removed afterwards.
#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A lock name no other test (nor another run of this one) uses. When dropped — also when the
/// test fails — it removes what the backends made for the name: the file `<lock folder>/NAME.lock`
/// and the semaphore object `/dev/shm/sl.NAME`. Drop it after every handle on the lock.
#[derive(Debug)]
pub(crate) struct TempName(String);

impl TempName {
    pub(crate) fn new(what: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempName(format!("compat04-{what}-{}-{n}", std::process::id()))
    }
}

impl Deref for TempName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TempName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TempName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        if let Ok(dir) = simplelock::lock_dir() {
            let _ = std::fs::remove_file(dir.join(format!("{}.lock", self.0)));
        }
        let _ = simplelock::SemaphoreLock::remove(&self.0);
    }
}
