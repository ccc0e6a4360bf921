//! PostgresLock's async wait (feature `tokio`), beyond the conformance suite's async checks:
//! the grant is the blocking lock's (fencing token, lost signal, `ensure_held`), a guard or a
//! handle dropped inside the runtime releases, an ended connection and a poll outside tokio are
//! errors rather than hangs or panics, and the handle goes back and forth between blocking and
//! async calls.
#![cfg(feature = "tokio")]

use std::thread;
use std::time::Duration;

use simplelock_core::conformance::block_on;
use simplelock_core::{AsyncLockExt, ConcreteLock, LockStatus, SimpleLockError};
use simplelock_postgres::{LockLost, PostgresLock};

mod common;

use common::PATIENCE;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn open(what: &str) -> PostgresLock {
    PostgresLock::options()
        .with_url(common::url())
        .named(&common::name(what))
        .expect("open the lock")
}

/// Another handle takes the lock with a blocking wait on a thread of its own (outside the
/// runtime, as PostgresLock's blocking calls must be), and gives it back.
fn taken_elsewhere(mut other: PostgresLock) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        other
            .timed_lock(PATIENCE)
            .expect("the lock was not released");
        other.try_unlock().expect("release");
    })
}

#[test]
fn an_async_grant_has_a_fencing_token_and_a_lost_signal() {
    let mut a = open("async-token");
    a.try_lock().unwrap();
    let blocking_token = a.fencing_token().expect("a token");
    a.try_unlock().unwrap();
    let rt = runtime();
    let (token, signal) = rt.block_on(async {
        let guard = a.lock_async().await.expect("lock_async");
        let token = guard.lock().fencing_token().expect("a token");
        let signal = guard.lock().lost_signal().expect("a signal");
        std::mem::forget(guard); // held on: checked below with blocking calls
        (token, signal)
    });
    assert!(
        token > blocking_token,
        "{token} is not above the earlier {blocking_token}"
    );
    assert!(signal.is_lost().is_none());
    // Back to blocking calls on the same handle: the connection moves back.
    a.ensure_held().expect("held after the async grant");
    assert_eq!(a.status().unwrap(), LockStatus::Mine);
    a.try_unlock().unwrap();
    assert!(signal.is_lost().is_none(), "a release is not a loss");
}

#[test]
fn a_guard_dropped_inside_the_runtime_releases() {
    let mut a = open("async-drop");
    let other = open("async-drop");
    let rt = runtime();
    rt.block_on(async {
        let guard = a.lock_async().await.expect("lock_async");
        let waiter = taken_elsewhere(other);
        drop(guard); // no unlock().await: the drop alone must release
        // The runtime keeps running (and the handle stays idle) while the other takes it.
        while !waiter.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.join().expect("the other handle");
    });
    // The unlock's answer, left on the socket by the drop, does not confuse the next call.
    a.try_lock().expect("free again");
    a.try_unlock().unwrap();
}

#[test]
fn a_holding_handle_dropped_inside_the_runtime_releases_without_panicking() {
    let a = open("async-drop-handle");
    let other = open("async-drop-handle");
    let rt = runtime();
    rt.block_on(async move {
        let mut a = a;
        let guard = a.lock_async().await.expect("lock_async");
        std::mem::forget(guard);
        let waiter = taken_elsewhere(other);
        drop(a); // closes the connection from inside the runtime: the server releases
        while !waiter.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.join().expect("the other handle");
    });
}

#[test]
fn an_async_wait_on_an_ended_connection_fails_and_a_blocking_call_reconnects() {
    let mut a = open("async-ended");
    a.try_lock().unwrap();
    let pid = a.backend_pid().expect("connected");
    let terminated: bool = common::raw()
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(terminated);
    let signal = a.lost_signal().unwrap();
    assert!(
        signal.wait(Some(PATIENCE)).is_some(),
        "the loss was not seen"
    );
    let err = a.try_unlock().expect_err("the lock was lost");
    assert!(LockLost::find(&err).is_some(), "{err:?}");
    let rt = runtime();
    let err = rt
        .block_on(async { a.lock_async().await.map(drop) })
        .expect_err("no connection");
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected, "{err:?}");
    // A blocking call opens a new connection; async calls work on it.
    a.try_lock().expect("reconnected");
    a.try_unlock().unwrap();
    rt.block_on(async {
        a.lock_async()
            .await
            .expect("lock_async after reconnecting")
            .unlock()
            .await
            .expect("unlock");
    });
}

#[test]
fn an_async_wait_outside_tokio_is_an_error_not_a_panic() {
    let mut a = open("async-no-tokio");
    match block_on(a.lock_async()).map(drop) {
        Err(err @ SimpleLockError::UnknownError { .. }) => {
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing was taken.
    a.try_lock().unwrap();
    a.try_unlock().unwrap();
}

#[test]
fn a_release_by_an_async_guard_wakes_an_async_waiter_on_another_runtime() {
    let mut a = open("async-notify");
    let mut b = open("async-notify");
    a.try_lock().unwrap();
    let waiter = thread::spawn(move || {
        runtime().block_on(async {
            let guard = b.lock_async().await.expect("lock_async");
            guard.unlock().await.expect("unlock");
        });
    });
    thread::sleep(Duration::from_millis(20)); // let it wait (it waits either way)
    a.try_unlock().unwrap();
    waiter.join().expect("the waiter");
}

/// The socket follows the handle: async calls on one runtime, then blocking calls, then the
/// same runtime again, then another runtime, then the first again. Each async wait must be
/// woken by the answers on its own runtime's reactor (a socket left registered with another
/// reactor is never reported readable there: the wait would hang, here time out).
#[test]
fn the_socket_follows_the_handle_between_runtimes_and_blocking_calls() {
    let mut b = open("async-rebind");
    let (first, second) = (runtime(), runtime());
    let wait_on = |rt: &tokio::runtime::Runtime, b: &mut PostgresLock, round: &str| {
        let mut holder = open("async-rebind");
        holder.try_lock().unwrap();
        // Released by a blocking handle: the server wakes the waiter, whose answer comes on
        // its runtime's reactor.
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            holder.try_unlock().unwrap();
        });
        rt.block_on(async {
            let guard = tokio::time::timeout(PATIENCE, b.lock_async())
                .await
                .unwrap_or_else(|_| panic!("{round}: the async wait was never woken"))
                .expect("lock_async");
            guard.unlock().await.expect("unlock");
        });
        releaser.join().expect("the releaser");
    };
    wait_on(&first, &mut b, "first runtime");
    b.try_lock().expect("a blocking call after the async ones");
    b.try_unlock().unwrap();
    wait_on(&first, &mut b, "the first runtime after a blocking call");
    wait_on(&second, &mut b, "another runtime");
    wait_on(&first, &mut b, "the first runtime again");
    assert_eq!(b.status().unwrap(), LockStatus::Open);
}

/// Polls `future` once and drops it: whether it was still pending.
async fn poll_once<F: std::future::Future>(future: F) -> bool {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx).is_pending())).await
}

/// A wait dropped while it waits in the server; a try, which answers from it at once; another
/// wait dropped while it cancels the first (its cancel request's connection registered with
/// this runtime's reactor); then blocking calls, on the connection's own runtime: they carry
/// the cancel on there instead of hanging on a reactor nobody drives, and the dropped waits
/// never keep the lock.
#[test]
fn waits_cut_short_then_blocking_calls_neither_hang_nor_keep_it() {
    let mut a = open("async-cut-twice");
    let mut b = open("async-cut-twice");
    a.try_lock().unwrap();
    let rt = runtime();
    rt.block_on(async {
        assert!(poll_once(b.lock_async()).await, "the wait did not wait");
        match b.try_lock_async().await.map(drop) {
            Err(SimpleLockError::AlreadyLocked { .. }) => {}
            other => panic!("a try on a taken lock: {other:?}"),
        }
        assert!(
            poll_once(b.lock_async()).await,
            "the second wait did not wait for the cancel of the first"
        );
    });
    let (done, finished) = std::sync::mpsc::channel();
    let blocking = thread::spawn(move || {
        let status = b.status().expect("status");
        done.send(()).unwrap();
        (b, status)
    });
    finished
        .recv_timeout(PATIENCE)
        .expect("a blocking call after the cut-short async calls hung");
    let (mut b, status) = blocking.join().unwrap();
    assert_eq!(status, LockStatus::Taken);
    a.try_unlock().unwrap();
    // The dropped wait is over: it neither took the lock nor waits for it any more.
    let mut c = open("async-cut-twice");
    c.try_lock().expect("free after the holder released");
    c.try_unlock().unwrap();
    b.try_lock().unwrap();
    b.try_unlock().unwrap();
    drop(rt);
}
