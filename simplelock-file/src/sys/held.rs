//! The locks the threads of this process hold, kept to refuse a wait that could never end
//! (`WouldDeadlock`): the same on every platform, over a list that each platform guards its own
//! way (`with_held`: a spin lock that the fork handlers hold across `fork` on Unix, a `Mutex`
//! on Windows).

use super::with_held;

/// One lock held by a thread of this process, through one handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// [`registry::this_thread`] of the thread that acquired it.
    pub(crate) thread: u64,
    pub(crate) exclusive: bool,
    /// The handle's id.
    pub(crate) handle: u64,
}

/// The registry of locks held by the threads of this process.
pub(crate) mod registry {
    use super::{Held, with_held};

    /// A small number naming the calling thread: the core's, which every backend shares.
    pub(crate) use simplelock_core::process::thread_number as this_thread;

    /// Record a hold.
    pub(crate) fn add(held: Held) {
        with_held(|all| all.push(held));
    }

    /// Forget the hold of `handle`, if it is recorded.
    pub(crate) fn remove(handle: u64) {
        with_held(|all| {
            if let Some(at) = all.iter().position(|h| h.handle == handle) {
                all.swap_remove(at);
            }
        });
    }

    /// Whether the calling thread holds the lock on `dev`/`ino` through a handle other than
    /// `handle`, in a way that excludes a wait for the mode `exclusive`: waiting would never end.
    pub(crate) fn would_deadlock(dev: u64, ino: u64, exclusive: bool, handle: u64) -> bool {
        let thread = this_thread();
        with_held(|all| {
            all.iter().any(|h| {
                h.dev == dev
                    && h.ino == ino
                    && h.thread == thread
                    && h.handle != handle
                    && (exclusive || h.exclusive)
            })
        })
    }
}
