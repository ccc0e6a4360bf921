//! FakeLock from async code, driven by a std-only executor (the core names no runtime).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use simplelock_core::{AsyncLockExt, ConcreteLock, LockStatus, SimpleLockError};
use simplelock_fake::FakeLock;

struct Unpark(Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// A future that completes after `d`, on a thread of its own (a test's timer).
fn sleep(d: Duration) -> impl Future<Output = ()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut started: Option<Waker> = None;
    let mut rx = Some(rx);
    let mut tx = Some(tx);
    std::future::poll_fn(move |cx| {
        if started.is_none() {
            started = Some(cx.waker().clone());
            let (tx, waker) = (tx.take().unwrap(), cx.waker().clone());
            thread::spawn(move || {
                thread::sleep(d);
                let _ = tx.send(());
                waker.wake();
            });
        }
        match rx.as_ref().unwrap().try_recv() {
            Ok(()) => {
                rx = None;
                Poll::Ready(())
            }
            Err(_) => Poll::Pending,
        }
    })
}

#[test]
fn a_waiter_is_woken_by_the_release_and_gets_the_lock() {
    let mut holder = FakeLock::isolated("async");
    let mut waiter = holder.clone();
    ConcreteLock::try_lock(&mut holder).unwrap();
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        ConcreteLock::try_unlock(&mut holder).unwrap();
        holder
    });
    let guard = block_on(waiter.lock_async()).unwrap();
    assert_eq!(
        ConcreteLock::status(guard.lock()).unwrap(),
        LockStatus::Mine
    );
    block_on(guard.unlock()).unwrap();
    let holder = releaser.join().unwrap();
    holder.assert_released();
}

#[test]
fn a_dropped_waiting_future_leaves_no_waker_and_takes_nothing() {
    let mut holder = FakeLock::isolated("async");
    let mut waiter = holder.clone();
    ConcreteLock::try_lock(&mut holder).unwrap();
    {
        let mut future = pin!(waiter.lock_async());
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        assert!(
            future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    ConcreteLock::try_unlock(&mut holder).unwrap();
    holder.assert_released();
    assert_eq!(ConcreteLock::status(&waiter).unwrap(), LockStatus::Open);
}

#[test]
fn try_and_timed_waits_fail_with_the_right_errors() {
    let mut holder = FakeLock::isolated("async");
    let mut waiter = holder.clone();
    ConcreteLock::try_lock(&mut holder).unwrap();
    let err = block_on(waiter.try_lock_async()).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::AlreadyLocked { .. }),
        "{err:?}"
    );
    let timeout = Duration::from_millis(30);
    let err = block_on(waiter.lock_timeout_with(timeout, sleep(timeout))).unwrap_err();
    match err {
        SimpleLockError::TimedOut { timeout: t, .. } => assert_eq!(t, timeout),
        other => panic!("expected TimedOut, got {other:?}"),
    }
    let err = block_on(holder.lock_async()).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::AlreadyHeld { .. }),
        "{err:?}"
    );
    drop(holder); // releases
    let guard = block_on(waiter.lock_timeout_with(timeout, sleep(timeout))).unwrap();
    drop(guard);
    waiter.assert_released();
}

#[test]
fn the_guard_reports_a_failed_unlock_and_a_dead_predecessor() {
    let lock = FakeLock::isolated("async");
    let mut dead = lock.clone();
    ConcreteLock::try_lock(&mut dead).unwrap();
    lock.simulate_holder_death();
    let mut next = lock.clone();
    let guard = block_on(next.lock_async()).unwrap();
    assert!(guard.previous_holder_died());
    lock.fail_next_unlock(SimpleLockError::unable_to_unlock(
        "async",
        "disk gone",
        None,
    ));
    let err = block_on(guard.unlock()).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::UnableToUnlock { .. }),
        "{err:?}"
    );
}
