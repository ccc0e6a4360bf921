//! The locks the threads of this process hold, kept to refuse a wait that could never end
//! (`WouldDeadlock`): the same on every platform.
//!
//! Only the calling thread's own holds matter ("this thread holds the lock through another
//! handle"), so each thread keeps its holds in a thread-local list: recording and forgetting a
//! hold takes no lock and no atomic read-modify-write, which keeps the uncontended pair close to
//! the bare `flock` pair. Two cases need more:
//! - a hold released by another thread than the one that took it (a handle is `Send`): that
//!   thread cannot reach the acquirer's list, so it leaves the handle's id in one of a few
//!   shared slots, which the acquirer consults and empties when it next checks for a deadlock,
//!   and on its exit. Handle ids are never reused (and never 0, a free slot), so a stale entry
//!   never stands for another hold. Beyond [`SLOTS`] such releases not yet seen by their
//!   acquirers, ids go to an overflow list behind a mutex that is only ever *tried* (a fork can
//!   leave a copy of it locked by a thread the child does not have): should a try fail, the
//!   acquirer keeps its entry, and its later wait for that file through another handle gets a
//!   spurious `WouldDeadlock` instead of waiting — an error, never a hang and never a second
//!   holder.
//! - a child made by `fork` inherits the forking thread's list, with its parent's holds, which
//!   are not the child's: each entry carries the process id that recorded it, and entries of
//!   another process are ignored. Nothing here waits for a lock, so a fork at any moment leaves
//!   the child nothing held.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};

use super::current_pid;

/// One lock held by a thread of this process, through one handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) exclusive: bool,
    /// The handle's id (never 0).
    pub(crate) handle: u64,
}

/// A recorded hold, with the process that recorded it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    held: Held,
    pid: u32,
}

/// A thread's holds; on the thread's exit, the slots of its holds released elsewhere are
/// freed.
#[derive(Debug, Default)]
struct Holds(Vec<Entry>);

impl Drop for Holds {
    fn drop(&mut self) {
        prune(&mut self.0);
    }
}

thread_local! {
    static HOLDS: RefCell<Holds> = RefCell::new(Holds::default());
}

/// How many holds released by another thread than their acquirer can wait at once for their
/// acquirer to see them.
const SLOTS: usize = 64;

/// Ids of holds released by another thread than the one that recorded them; 0 is a free slot.
static RELEASED_ELSEWHERE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Whether a slot of [`RELEASED_ELSEWHERE`] was ever taken (read without scanning them).
static RELEASED_ELSEWHERE_EVER: AtomicBool = AtomicBool::new(false);

/// Ids released elsewhere that found every slot taken.
static OVERFLOW: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Drops from `list` the holds released by other threads, freeing their slots.
fn prune(list: &mut Vec<Entry>) {
    if list.is_empty() || !RELEASED_ELSEWHERE_EVER.load(Ordering::Acquire) {
        return;
    }
    let mut overflow = match OVERFLOW.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    list.retain(|entry| {
        let id = entry.held.handle;
        let in_slot = RELEASED_ELSEWHERE.iter().any(|slot| {
            slot.compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        let mut in_overflow = || {
            overflow.as_mut().is_some_and(|ids| {
                let at = ids.iter().position(|other| *other == id);
                at.map(|at| ids.swap_remove(at)).is_some()
            })
        };
        !(in_slot || in_overflow())
    });
}

/// The registry of locks held by the threads of this process.
pub(crate) mod registry {
    use super::*;

    /// Record a hold of the calling thread.
    pub(crate) fn add(held: Held) {
        let pid = current_pid();
        // A thread that is exiting has no list any more: it cannot wait for anything either.
        let _ = HOLDS.try_with(|holds| holds.borrow_mut().0.push(Entry { held, pid }));
    }

    /// Forget the hold of `handle`: in the calling thread's list or, taken by another thread,
    /// for that thread to see.
    pub(crate) fn remove(handle: u64) {
        let found = HOLDS
            .try_with(|holds| {
                let list = &mut holds.borrow_mut().0;
                let at = list.iter().position(|e| e.held.handle == handle);
                at.map(|at| list.swap_remove(at)).is_some()
            })
            .unwrap_or(false);
        if found {
            return;
        }
        let in_slot = RELEASED_ELSEWHERE.iter().any(|slot| {
            slot.compare_exchange(0, handle, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        let kept = in_slot
            || match OVERFLOW.try_lock() {
                Ok(mut ids) => {
                    ids.push(handle);
                    true
                }
                Err(TryLockError::Poisoned(poisoned)) => {
                    poisoned.into_inner().push(handle);
                    true
                }
                Err(TryLockError::WouldBlock) => false,
            };
        if kept {
            RELEASED_ELSEWHERE_EVER.store(true, Ordering::Release);
        }
    }

    /// Whether the calling thread holds the lock on `dev`/`ino` through a handle other than
    /// `handle`, in a way that excludes a wait for the mode `exclusive`: waiting would never end.
    pub(crate) fn would_deadlock(dev: u64, ino: u64, exclusive: bool, handle: u64) -> bool {
        let pid = current_pid();
        HOLDS
            .try_with(|holds| {
                let list = &mut holds.borrow_mut().0;
                prune(list);
                list.iter().any(|e| {
                    e.pid == pid
                        && e.held.dev == dev
                        && e.held.ino == ino
                        && e.held.handle != handle
                        && (exclusive || e.held.exclusive)
                })
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More holds released on another thread than there are slots: the acquirer still forgets
    /// every one of them (the overflow list), rather than take them for its own.
    #[test]
    fn many_holds_released_elsewhere_are_all_forgotten() {
        // Ids far above any handle a test opens; a made-up file.
        let ids: Vec<u64> = (0..3 * SLOTS as u64).map(|i| u64::MAX - i).collect();
        let (dev, ino) = (u64::MAX, u64::MAX);
        for &handle in &ids {
            registry::add(Held {
                dev,
                ino,
                exclusive: true,
                handle,
            });
        }
        assert!(registry::would_deadlock(dev, ino, true, 1));
        std::thread::scope(|s| {
            s.spawn(|| ids.iter().for_each(|&handle| registry::remove(handle)));
        });
        assert!(
            !registry::would_deadlock(dev, ino, true, 1),
            "a hold released on another thread was taken for this thread's"
        );
    }
}
