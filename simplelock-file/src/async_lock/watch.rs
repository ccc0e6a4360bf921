//! The inotify waiter of an async wait, registered with tokio's reactor. tokio's registration
//! of a raw descriptor is `unsafe` (the descriptor must stay open, and be the same, while it is
//! registered); this module owns the one block, and gives out only a safe registration.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sys;

/// An inotify waiter, as a file descriptor tokio can register. Owning the waiter is what keeps
/// the descriptor open for as long as the registration lasts.
#[derive(Debug)]
pub(crate) struct Watch(sys::Waiter);

impl Watch {
    /// The waiter (shared: replacing it while registered would break the registration).
    pub(crate) fn waiter(&self) -> &sys::Waiter {
        &self.0
    }
}

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd().as_raw_fd()
    }
}

/// `waiter`'s inotify instance registered for readability with the reactor of the tokio
/// runtime this thread is in; `None` if tokio cannot register it (the caller then waits with
/// its timer alone).
pub(crate) fn register(waiter: sys::Waiter) -> Option<AsyncFd<Watch>> {
    // SAFETY: the descriptor is the inotify instance the `Waiter` owns, and `Watch` owns the
    // `Waiter`: it stays open, and `as_raw_fd` returns that same descriptor, until the `Watch`
    // is dropped, which happens only when the `AsyncFd` (which deregisters first) is dropped or
    // gives it back through `into_inner`, which also deregisters.
    unsafe { AsyncFd::register_with_interest(Watch(waiter), Interest::READABLE) }.ok()
}
