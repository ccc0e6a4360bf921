//! EINTR: a signal handler installed without `SA_RESTART` makes a blocking `flock` and `ppoll`
//! fail with `EINTR`. A storm of such signals aimed at the waiting thread must neither fail a
//! wait nor shorten or extend a timed one.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]
#![allow(
    unsafe_code,
    reason = "sigaction and pthread_kill to aim signals at one thread"
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, scratch};
use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_file::FileLock;

static CAUGHT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count(_signal: libc::c_int) {
    CAUGHT.fetch_add(1, Ordering::Relaxed);
}

/// Installs `count` for SIGUSR1 without SA_RESTART (once; the test binary sends SIGUSR1 only to
/// threads it aims at).
fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (an atomic
        // increment); sa_flags has no SA_RESTART on purpose.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = count as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
    });
}

/// Runs `wait` on a new thread while another thread sends it SIGUSR1 every 200 µs until it
/// returns; then returns its result and how many signals it caught.
fn under_storm<T: Send>(wait: impl FnOnce() -> T + Send) -> (T, usize) {
    install_handler();
    let done = &AtomicBool::new(false);
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let waiter = s.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let before = CAUGHT.load(Ordering::Relaxed);
            let result = wait();
            done.store(true, Ordering::SeqCst);
            (result, CAUGHT.load(Ordering::Relaxed) - before)
        });
        let target = rx.recv().unwrap();
        let start = Instant::now();
        while !done.load(Ordering::SeqCst) {
            // SAFETY: `target` is the waiter thread, alive until `done` is set (it is joined
            // only after this loop), and SIGUSR1 has a handler.
            unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
            thread::sleep(Duration::from_micros(200));
            assert!(start.elapsed() < PATIENCE, "the wait never ended");
        }
        waiter.join().unwrap()
    })
}

#[test]
fn hang_lock_survives_a_signal_storm() {
    let path = scratch("eintr-hang").join("lock");
    let mut holder = FileLock::at_path(&path).unwrap();
    holder.try_lock().unwrap();
    let mut waiter = FileLock::at_path(&path).unwrap();
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        holder.try_unlock().unwrap();
    });
    let (result, caught) = under_storm(|| waiter.hang_lock());
    result.unwrap();
    release.join().unwrap();
    assert!(
        caught > 10,
        "the storm did not reach the waiter ({caught} signals)"
    );
    waiter.try_unlock().unwrap();
}

#[test]
fn timed_lock_keeps_its_deadline_under_a_signal_storm() {
    let path = scratch("eintr-timed").join("lock");
    let mut holder = FileLock::at_path(&path).unwrap();
    holder.try_lock().unwrap();
    let mut waiter = FileLock::at_path(&path).unwrap();
    let timeout = Duration::from_millis(300);
    let (result, caught) = under_storm(|| {
        let start = Instant::now();
        (waiter.timed_lock(timeout), start.elapsed())
    });
    let (result, waited) = result;
    assert!(
        matches!(result, Err(SimpleLockError::TimedOut { .. })),
        "{result:?}"
    );
    assert!(waited >= timeout, "a signal cut the wait short: {waited:?}");
    assert!(
        caught > 10,
        "the storm did not reach the waiter ({caught} signals)"
    );

    // And a release during the storm still hands the lock over.
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        holder.try_unlock().unwrap();
    });
    let (result, _) = under_storm(|| waiter.timed_lock(PATIENCE));
    result.unwrap();
    release.join().unwrap();
    waiter.try_unlock().unwrap();
}
