//! The process's table of mappings, by object, and the fork-aware lock around it: a child made
//! by `fork` while another thread of its parent was inside the lock must not wait for that
//! thread (it was not copied), so the lock is a `try_lock` loop that knows the process of its
//! owner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, TryLockError, Weak};

use super::{Mapping, ObjectId, getpid};

/// The mappings of this process, by object: each handle that opens an object already mapped
/// here shares that mapping. Entries whose mapping is gone are dropped as mappings go.
static MAPPINGS: Mutex<Option<HashMap<ObjectId, Weak<Mapping>>>> = Mutex::new(None);

/// The process id of the thread inside [`MAPPINGS`]'s lock, or 0.
static MAPPINGS_OWNER: AtomicU32 = AtomicU32::new(0);

/// Runs `f` on the table of mappings; `None` if the table cannot be had in this process.
///
/// A child made by `fork` while another thread of its parent was inside the lock would wait
/// for that thread forever (it was not copied). The owner's process id tells: if the lock is
/// held by another process's thread, this process is such a child, and goes without the table
/// (its handles then map their objects each on their own, which is correct, only not shared).
/// No `Arc<Mapping>` may be dropped inside `f` (its `Drop` uses the table).
pub(super) fn with_mappings<R>(
    f: impl FnOnce(&mut HashMap<ObjectId, Weak<Mapping>>) -> R,
) -> Option<R> {
    let me = getpid();
    loop {
        let mut guard = match MAPPINGS.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let owner = MAPPINGS_OWNER.load(Ordering::Acquire);
                if owner != 0 && owner != me {
                    return None;
                }
                std::thread::yield_now();
                continue;
            }
        };
        MAPPINGS_OWNER.store(me, Ordering::Release);
        let result = f(guard.get_or_insert_with(HashMap::new));
        MAPPINGS_OWNER.store(0, Ordering::Release);
        return Some(result);
    }
}
