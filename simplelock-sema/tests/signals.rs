//! A storm of signals whose handler does not restart system calls (no `SA_RESTART`), aimed at a
//! waiting thread with `pthread_kill`: waits neither fail (EINTR never surfaces) nor get longer
//! (a timed wait still ends at its deadline, which the hang guard checks: a wait restarted with
//! its full timeout on every signal would never end while the storm lasts).
//!
//! In a binary of its own, because it installs a process-wide signal handler.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_sema::SemaphoreLock;

mod common;
use common::{Cleanup, PATIENCE};

static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

fn install_handler() {
    let action = SigAction::new(
        SigHandler::Handler(count_signal),
        SaFlags::empty(), // no SA_RESTART: interrupted system calls fail with EINTR
        SigSet::empty(),
    );
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.unwrap();
}

/// Runs `wait` on a thread while another thread signals it every 100 µs until it returns
/// (or the hang guard runs out); returns what `wait` returned and how many signals it handled.
fn under_storm<T: Send>(
    mut before_return: impl FnMut(&thread::ScopedJoinHandle<'_, T>),
    wait: impl FnOnce() -> T + Send,
) -> (T, usize) {
    install_handler();
    let done_flag = AtomicBool::new(false);
    let done = &done_flag;
    let before = HANDLED.load(Ordering::Relaxed);
    let result = thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let waiter = s.spawn(move || {
            tx.send(pthread_self()).unwrap();
            let result = wait();
            done.store(true, Ordering::SeqCst);
            result
        });
        let target = rx.recv().unwrap();
        let storm = s.spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                assert!(
                    start.elapsed() < PATIENCE,
                    "the wait did not end under the storm"
                );
                // The thread may have just finished; a failed send is fine then.
                let _ = pthread_kill(target, Signal::SIGUSR1);
                thread::sleep(Duration::from_micros(100));
            }
        });
        before_return(&waiter);
        let result = waiter.join().unwrap();
        storm.join().unwrap();
        result
    });
    (result, HANDLED.load(Ordering::Relaxed) - before)
}

/// Both storms in one test, one after the other, so that each counts only its own signals.
#[test]
fn signals_neither_fail_nor_extend_waits() {
    timed_wait_under_storm();
    hang_wait_under_storm();
}

fn timed_wait_under_storm() {
    let name = common::unique_name("eintr-timed");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    let mut waiter = SemaphoreLock::named(&name).unwrap();
    let timeout = Duration::from_millis(300);
    let ((result, waited), signals) = under_storm(
        |_| {},
        || {
            let start = Instant::now();
            (waiter.timed_lock(timeout), start.elapsed())
        },
    );
    assert!(
        matches!(result, Err(SimpleLockError::TimedOut { .. })),
        "{result:?}"
    );
    assert!(waited >= timeout, "gave up after {waited:?}");
    assert!(signals > 20, "only {signals} signals reached the waiter");
    println!("timed wait of {timeout:?} under {signals} signals took {waited:?}");
    holder.try_unlock().unwrap();
}

fn hang_wait_under_storm() {
    let name = common::unique_name("eintr-hang");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    let mut waiter = SemaphoreLock::named(&name).unwrap();
    let (result, signals) = under_storm(
        |waiting| {
            thread::sleep(Duration::from_millis(200));
            assert!(
                !waiting.is_finished(),
                "hang_lock returned while the lock was held"
            );
            holder.try_unlock().unwrap();
        },
        || waiter.hang_lock(),
    );
    result.unwrap();
    assert!(signals > 20, "only {signals} signals reached the waiter");
    waiter.try_unlock().unwrap();
}
