//! What a process must know about itself across `fork`: its process id, kept in a static that a
//! `pthread_atfork` child handler refreshes (so the hot path reads an atomic instead of making
//! a `getpid` system call), and the registry of locks its threads hold (for deadlock detection),
//! which the fork handlers keep consistent and empty in the child.
//!
//! # Safety
//!
//! The only `unsafe` code of the crate (the one `allow(unsafe_code)` fence): registering the
//! fork handlers with `pthread_atfork`, which no safe wrapper offers, and the access to the
//! registry's `UnsafeCell` under its spin lock (in `with_held`, the one place that reaches it). The handlers only call async-signal-safe
//! functions (`getpid`) and touch atomics and a `Vec` whose lock they hold.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::sys::Held;

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
        let registered = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
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

/// The held locks behind a spin lock. Not a `Mutex`, because the fork handlers must hold the
/// lock across `fork` (taken in `prepare`, released in `parent` and `child`), which std's
/// `Mutex` guard cannot do; critical sections are a few instructions and never block.
struct Registry {
    busy: AtomicBool,
    held: UnsafeCell<Vec<Held>>,
}

// SAFETY: `held` is only reached through `with` (and the fork handlers), between an acquiring
// swap of `busy` to `true` and a releasing store of `false`: one thread at a time.
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry {
    busy: AtomicBool::new(false),
    held: UnsafeCell::new(Vec::new()),
};

fn acquire() {
    let mut spins = 0u32;
    while REGISTRY
        .busy
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            // The holder may have been preempted: let it run.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn release() {
    REGISTRY.busy.store(false, Ordering::Release);
}

/// Runs `f` on the list of held locks, under the spin lock.
pub(crate) fn with_held<R>(f: impl FnOnce(&mut Vec<Held>) -> R) -> R {
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            release();
        }
    }
    acquire();
    let _release = Release;
    // SAFETY: the spin lock is held until `_release` drops, after `f` returns: this is the
    // only reference to the vector meanwhile.
    f(unsafe { &mut *REGISTRY.held.get() })
}

/// Before `fork`: wait until no other thread is inside the registry, and keep it locked, so
/// the child does not inherit a vector in the middle of an update.
extern "C" fn prepare() {
    acquire();
}

/// After `fork`, in the parent.
extern "C" fn parent() {
    release();
}

/// After `fork`, in the child: it has a new process id, and holds no lock of its own (the
/// handles it inherited are not its holds; see `FileLock`'s fork rules).
extern "C" fn child() {
    // getpid is async-signal-safe.
    PID.store(std::process::id(), Ordering::Relaxed);
    // `prepare` took the spin lock in the parent before the fork; the child has a single
    // thread, so nothing can take it between this release and `with`'s acquire. `clear`
    // neither allocates nor frees.
    release();
    with_held(Vec::clear);
}
