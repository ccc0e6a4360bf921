//! Why a wait for a lock file to change ended, and the waiter of the platforms that have no
//! file-change notification (all but Linux's inotify, in `unix/wait.rs`): there the caller
//! polls with a backoff.

#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::{fs::File, time::Duration};

/// Why [`Waiter::wait`](super::Waiter::wait) returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    allow(dead_code, reason = "only inotify wakes early")
)]
pub(crate) enum Wake {
    /// Something happened to the file: worth trying again now.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        expect(dead_code, reason = "only the inotify waiter of Linux sees events")
    )]
    Event,
    /// The time given passed.
    Timeout,
    /// A signal arrived; the caller recomputes its time left and waits again.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        expect(dead_code, reason = "only the inotify waiter of Linux waits in ppoll")
    )]
    Interrupted,
}

/// No file-change notification here: the caller polls.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug)]
pub(crate) struct Waiter;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Waiter {
    /// Always `None`: there is nothing to wait with.
    pub(crate) fn new(_file: &File, _writes: bool) -> Option<Waiter> {
        None
    }

    /// Sleeps `timeout` (never called: there is no waiter).
    pub(crate) fn wait(&self, timeout: Duration) -> Wake {
        std::thread::sleep(timeout);
        Wake::Timeout
    }

    /// As [`wait`](Waiter::wait) (never called: there is no waiter).
    pub(crate) fn wait_undrained(&self, timeout: Duration) -> Wake {
        self.wait(timeout)
    }

    /// Nothing to read (never called: there is no waiter).
    pub(crate) fn drain(&self) {}
}
