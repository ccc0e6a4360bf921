//! What a process must know about itself across `fork`: its process id, kept in a static that a
//! `pthread_atfork` child handler refreshes (so the hot path reads an atomic instead of making
//! a `getpid` system call). The registry of held locks (`held.rs`) keys its entries by it.
//!
//! # Safety
//!
//! Registering the fork handler with `pthread_atfork`, which no safe wrapper offers, is this
//! module's one `unsafe` block. The handler only calls an async-signal-safe function
//! (`getpid`) and stores an atomic.
#![allow(unsafe_code)]

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// This process's id, refreshed in the child after every `fork` (once [`TRACKED`]).
static PID: AtomicU32 = AtomicU32::new(0);
/// Whether the fork handlers are registered, so that [`PID`] can be trusted.
static TRACKED: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

/// Register the fork handlers, once per process. Called by every `FileLock` constructor.
pub(crate) fn init() {
    INIT.call_once(|| {
        PID.store(std::process::id(), Ordering::Relaxed);
        // SAFETY: the handlers are `extern "C"` functions without arguments that live as long
        // as the program, and only do what is allowed between fork and exec (see `child`).
        let registered = unsafe { libc::pthread_atfork(None, None, Some(child)) };
        // If registration failed (ENOMEM), `current_pid` asks the kernel every time.
        TRACKED.store(registered == 0, Ordering::Release);
    });
}

/// The id of the calling process, correct in a child made by `fork()` too.
///
/// Processes made with a raw `clone`/`fork` system call that bypasses libc's `fork()` do not
/// run the fork handlers; the crate docs say so.
pub(crate) fn current_pid() -> u32 {
    if TRACKED.load(Ordering::Acquire) {
        PID.load(Ordering::Relaxed)
    } else {
        std::process::id()
    }
}

/// After `fork`, in the child: it has a new process id.
extern "C" fn child() {
    // getpid is async-signal-safe.
    PID.store(std::process::id(), Ordering::Relaxed);
}
