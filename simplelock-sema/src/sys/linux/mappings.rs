//! The process's table of mappings, by object, and the fork-aware lock around it (also that of
//! the table of io_uring rings): a child made by `fork` while another thread of its parent was
//! inside the lock must not wait for that thread (it was not copied), so the lock is a
//! `try_lock` loop that knows the process of its owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, TryLockError, Weak};
use std::time::{Duration, Instant};

use super::{Mapping, ObjectId, getpid};

/// The mappings of this process, by object: each handle that opens an object already mapped
/// here shares that mapping. Entries whose mapping is gone are dropped as mappings go.
static MAPPINGS: ForkAware<Option<HashMap<ObjectId, Weak<Mapping>>>> = ForkAware::new(None);

/// Runs `f` on the table of mappings; `None` if the table cannot be had in this process (a
/// forked child whose parent was inside it: its handles then map their objects each on their
/// own, which is correct, only not shared). No `Arc<Mapping>` may be dropped inside `f` (its
/// `Drop` uses the table).
pub(super) fn with_mappings<R>(
    f: impl FnOnce(&mut HashMap<ObjectId, Weak<Mapping>>) -> R,
) -> Option<R> {
    MAPPINGS.with(|table| f(table.get_or_insert_with(HashMap::new)))
}

/// How long [`ForkAware::with`] waits at most for a busy table before it goes without.
const PATIENCE: Duration = Duration::from_millis(2);

/// A process-wide table behind a mutex that a child made by `fork` never waits for.
///
/// A child made by `fork` while another thread of its parent was inside the lock would wait
/// for that thread forever (it was not copied). The owner's process id tells: if the lock is
/// held by another process's thread, this process is such a child, and goes without the table.
/// The id is written just after the lock is taken and cleared just before it is released, so a
/// fork between the two finds the lock held with no id: nobody waits longer than [`PATIENCE`]
/// (a table is held for microseconds), and goes without the table after it, as the death
/// watcher's registry does.
pub(crate) struct ForkAware<T> {
    mutex: Mutex<T>,
    /// The process id of the thread inside the lock, or 0.
    owner: AtomicU32,
}

impl<T> ForkAware<T> {
    /// The table `value`.
    pub(crate) const fn new(value: T) -> ForkAware<T> {
        ForkAware {
            mutex: Mutex::new(value),
            owner: AtomicU32::new(0),
        }
    }

    /// Runs `f` on the table; `None` if this process is a child forked while a thread of its
    /// parent was inside the lock, or the table stayed busy for [`PATIENCE`]. Waits (yielding)
    /// for this process's own threads until then.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let me = getpid();
        let mut until = None;
        loop {
            let mut guard = match self.mutex.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    let owner = self.owner.load(Ordering::Acquire);
                    if owner != 0 && owner != me {
                        return None;
                    }
                    let until = *until.get_or_insert_with(|| Instant::now() + PATIENCE);
                    if Instant::now() >= until {
                        return None;
                    }
                    std::thread::yield_now();
                    continue;
                }
            };
            self.owner.store(me, Ordering::Release);
            let result = f(&mut guard);
            self.owner.store(0, Ordering::Release);
            return Some(result);
        }
    }
}
