//! The async checks (claim [`AsyncWaits`](super::Claim::AsyncWaits)): a backend's
//! [`AsyncConcreteLock`] waits, wakes, times out, guards and is cancel-safe.
//!
//! The suite names no runtime: the backend's test passes the function that runs a future to its
//! end on the calling thread ([`Backend::async_waits`](super::Backend::async_waits)) — the
//! suite's own [`block_on`] for a backend that needs no runtime, a tokio runtime's `block_on`
//! for one that does. Timed waits measure time on a thread of the suite ([`sleep`]), which
//! every runtime can wait for (it only wakes a waker).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use super::checks::{STATUS, WAITS, WOKEN};
use super::harness::{Ctx, broke, expect_status, ok, spawn};
use super::{Claim, SETTLE};
use crate::{AsyncConcreteLock, AsyncLockExt, LockStatus, SimpleLockError};

const ASYNC_ERRORS: &str = "try_lock_async fails with AlreadyLocked while another handle holds \
     the lock, lock_async with AlreadyHeld on a holding handle, a timed async wait with TimedOut \
     naming its timeout";
const CANCEL_SAFE: &str = "dropping a waiting lock future leaves nothing behind: the lock is \
     free once its holder releases, and nobody acquires it for the dropped future";
const ASYNC_GUARD: &str =
    "an async guard holds the lock until it is dropped or unlocked; unlock().await reports Ok";
const ASYNC_TURNS: &str = "async waiters on one lock each get their turn, one at a time";
const NEVER_BLOCKS: &str = "a poll of a lock future never blocks the thread: on a held lock it \
     returns Pending at once";
const DROPPED_AFTER_GRANT: &str = "dropping a lock future at any point, right after the grant \
     included, leaves the lock free: a guard it made releases, and no grant stays with the \
     dropped future";

/// Runs a future to its end on the calling thread: what [`Backend::async_waits`] takes.
///
/// [`Backend::async_waits`]: super::Backend::async_waits
pub type BlockOn = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + '_>>) + Send + Sync>;

/// A minimal executor: polls `future` on this thread, parking between polls until its waker is
/// woken. Enough for backends whose async wait needs no runtime (their wakers are woken by a
/// thread of theirs or by the releasing handle).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
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

/// A future that completes `duration` after its first poll, timed by a thread of its own: a
/// timer that works under any runtime.
pub fn sleep(duration: Duration) -> impl Future<Output = ()> + Send {
    let mut fired: Option<Arc<AtomicBool>> = None;
    poll_fn(move |cx| {
        let flag = fired.get_or_insert_with(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let (thread_flag, waker) = (Arc::clone(&flag), cx.waker().clone());
            thread::spawn(move || {
                thread::sleep(duration);
                thread_flag.store(true, Ordering::SeqCst);
                waker.wake();
            });
            flag
        });
        if flag.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

/// Runs async check `name`.
pub(super) fn run<H: AsyncConcreteLock + Send + 'static>(
    name: &str,
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    match name {
        "async_lock_waits_for_release" => async_lock_waits_for_release(ctx, block_on),
        "async_errors" => async_errors(ctx, block_on),
        "async_dropped_wait_takes_nothing" => async_dropped_wait_takes_nothing(ctx, block_on),
        "async_guard_releases" => async_guard_releases(ctx, block_on),
        "async_waiters_each_get_their_turn" => async_waiters_each_get_their_turn(ctx, block_on),
        "async_poll_never_blocks" => async_poll_never_blocks(ctx, block_on),
        "async_dropped_after_grant_leaves_it_free" => {
            async_dropped_after_grant_leaves_it_free(ctx, block_on);
        }
        other => unreachable!("no async check is called {other:?}"),
    }
}

/// Two handles `a` and `b` on the check's lock, `a` holding it.
fn held_by_a<H: AsyncConcreteLock + Send + 'static>(ctx: &Ctx<H>) -> (H, H) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let b = ctx.open(&key);
    ok(
        "try_lock on a free lock succeeds",
        "try_lock of a",
        a.try_lock(),
    );
    (a, b)
}

/// `lock_async` does not return while another handle holds the lock, and acquires after the
/// release.
fn async_lock_waits_for_release<H: AsyncConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    let (mut a, mut b) = held_by_a(ctx);
    ctx.step("lock_async waits while another handle holds the lock");
    let run = Arc::clone(block_on);
    let waiter = spawn(move || {
        let mut result = None;
        run(Box::pin(async {
            result = Some(match b.lock_async().await {
                Ok(guard) => {
                    let status = guard.lock().status();
                    guard.unlock().await.map(|()| status)
                }
                Err(e) => Err(e),
            });
        }));
        (result.expect("the future ran to its end"), b)
    });
    waiter.expect_still_running(
        SETTLE,
        WAITS,
        "lock_async returned while another handle held the lock",
    );
    ok(
        "try_unlock by the holder succeeds",
        "try_unlock of a",
        a.try_unlock(),
    );
    ctx.step("waiting for lock_async to return after the release");
    let (result, b) = waiter.expect_within(
        ctx.wake,
        WOKEN,
        "lock_async did not return after the holder released the lock",
    );
    let status = ok(WOKEN, "lock_async after the release", result);
    match status {
        Ok(LockStatus::Mine) => {}
        other => broke(
            STATUS,
            format!("status() through the async guard was {other:?}, not Mine"),
        ),
    }
    expect_status(
        STATUS,
        "the waiter after unlock().await",
        &b,
        LockStatus::Open,
    );
}

/// AlreadyLocked, AlreadyHeld and TimedOut from the async methods.
fn async_errors<H: AsyncConcreteLock + Send + 'static>(ctx: &Ctx<H>, block_on: &BlockOn) {
    let (mut a, mut b) = held_by_a(ctx);
    ctx.step("try_lock_async, lock_async on the holder, a timed async wait");
    let timeout = Duration::from_millis(50);
    let mut outcome = None;
    block_on(Box::pin(async {
        let tried = b.try_lock_async().await.map(drop);
        let again = a.lock_async().await.map(std::mem::forget);
        let timed = b.lock_timeout_with(timeout, sleep(timeout)).await.map(drop);
        outcome = Some((tried, again, timed));
    }));
    let (tried, again, timed) = outcome.expect("the future ran to its end");
    match tried {
        Err(SimpleLockError::AlreadyLocked { .. }) => {}
        other => broke(
            ASYNC_ERRORS,
            format!("try_lock_async while held elsewhere returned {other:?}"),
        ),
    }
    match again {
        Err(SimpleLockError::AlreadyHeld { .. }) => {}
        other => broke(
            ASYNC_ERRORS,
            format!("lock_async on the holding handle returned {other:?}"),
        ),
    }
    match timed {
        Err(SimpleLockError::TimedOut { timeout: t, .. }) if t == timeout => {}
        other => broke(
            ASYNC_ERRORS,
            format!("a timed async wait of {timeout:?} on a held lock returned {other:?}"),
        ),
    }
    expect_status(STATUS, "the waiter after its errors", &b, LockStatus::Taken);
    ok(
        "try_unlock by the holder succeeds",
        "try_unlock of a",
        a.try_unlock(),
    );
}

/// A future polled once while the lock is held, then dropped, leaves nothing: after the
/// release the lock is free, and stays free (no thread or task takes it for the dropped
/// future). Many times, and with the release right after the drop.
fn async_dropped_wait_takes_nothing<H: AsyncConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    let mut c = ctx.open(&key);
    ctx.step("dropping waiting lock futures, 200 times");
    for round in 0..200 {
        ok(
            "try_lock on a free lock succeeds",
            "try_lock of a",
            a.try_lock(),
        );
        let mut polled = None;
        block_on(Box::pin(async {
            let mut waiting = pin!(b.lock_async());
            polled = Some(poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx).is_pending())).await);
        }));
        if polled != Some(true) {
            broke(
                WAITS,
                format!(
                    "lock_async did not wait while another handle held the lock (round {round})"
                ),
            );
        }
        ok(
            "try_unlock by the holder succeeds",
            "try_unlock of a",
            a.try_unlock(),
        );
        if round % 20 == 0 {
            // Room for a thread left behind by the dropped future to take the lock.
            thread::sleep(Duration::from_millis(5));
        }
        expect_status(
            CANCEL_SAFE,
            "the dropped future's handle",
            &b,
            LockStatus::Open,
        );
        if let Err(e) = c.try_lock() {
            broke(
                CANCEL_SAFE,
                format!("after a dropped lock future, the free lock could not be taken: {e}"),
            );
        }
        ok(
            "try_unlock by the holder succeeds",
            "try_unlock of c",
            c.try_unlock(),
        );
    }
}

/// Dropping an async guard releases; `unlock().await` releases and reports Ok.
fn async_guard_releases<H: AsyncConcreteLock + Send + 'static>(ctx: &Ctx<H>, block_on: &BlockOn) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = Some(ctx.open(&key));
    ctx.step("an async guard, dropped then unlocked");
    let mut seen = Vec::new();
    block_on(Box::pin(async {
        match a.lock_async().await {
            Ok(guard) => {
                seen.push(("held by the guard", status_elsewhere(&mut b)));
                drop(guard);
                let mut after_drop = status_elsewhere(&mut b);
                if ctx.backend.claims(Claim::AsyncReleaseLater) {
                    // A release sent on drop and not waited for (a server's): it must arrive
                    // within the wake-up bound.
                    let start = std::time::Instant::now();
                    while after_drop == Some(LockStatus::Taken) && start.elapsed() < ctx.wake {
                        sleep(Duration::from_millis(2)).await;
                        after_drop = status_elsewhere(&mut b);
                    }
                }
                seen.push(("after the guard was dropped", after_drop));
            }
            Err(e) => broke(
                ASYNC_GUARD,
                format!("lock_async on a free lock failed: {e}"),
            ),
        }
        match a.lock_async().await {
            Ok(guard) => {
                if let Err(e) = guard.unlock().await {
                    broke(ASYNC_GUARD, format!("unlock().await failed: {e}"));
                }
                seen.push(("after unlock().await", status_elsewhere(&mut b)));
            }
            Err(e) => broke(
                ASYNC_GUARD,
                format!("lock_async on a free lock failed: {e}"),
            ),
        }
    }));
    let expected = [LockStatus::Taken, LockStatus::Open, LockStatus::Open];
    for ((when, status), want) in seen.iter().zip(expected) {
        if *status != Some(want) {
            broke(
                ASYNC_GUARD,
                format!("another handle's status {when} was {status:?}, not {want:?}"),
            );
        }
    }
}

/// `handle`'s status, asked on a thread of its own: from inside the runtime, a backend whose
/// `status` is a blocking call (a round trip to a server) rightly refuses it.
fn status_elsewhere<H: AsyncConcreteLock + Send + 'static>(
    handle: &mut Option<H>,
) -> Option<LockStatus> {
    on_a_thread(handle, |lock| lock.status().ok()).flatten()
}

/// Runs `op` on `handle` on a thread of its own (a blocking call from inside an async block),
/// and waits for it; `None` if there is no handle or `op` panicked.
fn on_a_thread<H: Send + 'static, T: Send + 'static>(
    handle: &mut Option<H>,
    op: impl FnOnce(&mut H) -> T + Send + 'static,
) -> Option<T> {
    let mut lock = handle.take()?;
    let (out, lock) = thread::spawn(move || (op(&mut lock), lock)).join().ok()?;
    *handle = Some(lock);
    Some(out)
}

/// The first poll of `lock_async` on a held lock returns (Pending) instead of waiting for the
/// release: a blocking poll would stop every other task of the runtime's thread.
fn async_poll_never_blocks<H: AsyncConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    let (mut a, mut b) = held_by_a(ctx);
    ctx.step("the first poll of lock_async while another handle holds the lock");
    let run = Arc::clone(block_on);
    let poller = spawn(move || {
        let mut pending = None;
        run(Box::pin(async {
            let mut waiting = pin!(b.lock_async());
            pending = Some(poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx).is_pending())).await);
        }));
        pending
    });
    let pending = poller.expect_within(
        ctx.wake,
        NEVER_BLOCKS,
        "the first poll of lock_async did not return while another handle held the lock: it \
         blocks the thread",
    );
    if pending != Some(true) {
        broke(
            WAITS,
            "lock_async did not wait while another handle held the lock",
        );
    }
    ok(
        "try_unlock by the holder succeeds",
        "try_unlock of a",
        a.try_unlock(),
    );
}

/// Lock futures polled on a free lock, or polled, then the lock released, then polled again —
/// and dropped whatever they returned: the lock is free afterwards (a backend that acquires in
/// a poll that returns `Pending`, and keeps the grant when dropped, fails this).
fn async_dropped_after_grant_leaves_it_free<H: AsyncConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    let key = ctx.key("lock");
    let mut a = Some(ctx.open(&key));
    let mut b = ctx.open(&key);
    let mut c = ctx.open(&key);
    ctx.step("lock futures dropped after at most two polls, around a grant, 50 times");
    for round in 0..50 {
        let release_between = round % 2 == 1;
        if release_between && let Some(a) = a.as_mut() {
            ok(
                "try_lock on a free lock succeeds",
                "try_lock of a",
                a.try_lock(),
            );
        }
        let mut waited = true;
        block_on(Box::pin(async {
            let mut acquiring = pin!(b.lock_async());
            // A guard returned is dropped at once: it releases.
            let first = poll_fn(|cx| Poll::Ready(acquiring.as_mut().poll(cx).is_pending())).await;
            if release_between {
                waited = first;
                on_a_thread(&mut a, |a| a.try_unlock());
                if first {
                    let _ = poll_fn(|cx| Poll::Ready(acquiring.as_mut().poll(cx).map(drop))).await;
                }
            }
        }));
        if !waited {
            broke(
                WAITS,
                "lock_async returned while another handle held the lock",
            );
        }
        expect_status(
            DROPPED_AFTER_GRANT,
            "the dropped future's handle",
            &b,
            LockStatus::Open,
        );
        // Free, at once or (a backend whose grant is a round trip away) as soon as the release
        // of the dropped future's grant lands.
        if let Err(e) = c.timed_lock(ctx.wake) {
            broke(
                DROPPED_AFTER_GRANT,
                format!(
                    "after a lock future was dropped (round {round}), the lock stayed taken: {e}"
                ),
            );
        }
        ok(
            "try_unlock by the holder succeeds",
            "try_unlock of c",
            c.try_unlock(),
        );
    }
}

/// Four threads, each running its own async waiter, take the lock 25 times each; none is
/// inside together with another, and all finish.
fn async_waiters_each_get_their_turn<H: AsyncConcreteLock + Send + 'static>(
    ctx: &Ctx<H>,
    block_on: &BlockOn,
) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 25;
    let key = ctx.key("lock");
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    ctx.step("four async waiters taking turns");
    for id in 0..THREADS {
        let mut handle = ctx.open(&key);
        let run = Arc::clone(block_on);
        let (inside, overlaps, done) =
            (Arc::clone(&inside), Arc::clone(&overlaps), done_tx.clone());
        thread::spawn(move || {
            let mut errors = Vec::new();
            run(Box::pin(async {
                for round in 0..ROUNDS {
                    match handle.lock_async().await {
                        Ok(guard) => {
                            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                                overlaps
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push(format!("waiter {id} round {round}"));
                            }
                            thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            drop(guard);
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }));
            let _ = done.send(errors);
        });
    }
    drop(done_tx);
    for _ in 0..THREADS {
        match done_rx.recv_timeout(ctx.wake * 3) {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => broke(ASYNC_TURNS, format!("lock_async failed: {errors:?}")),
            Err(_) => broke(
                ASYNC_TURNS,
                format!(
                    "an async waiter did not get its {ROUNDS} turns (still waiting after {:?})",
                    ctx.wake * 3
                ),
            ),
        }
    }
    let overlaps = overlaps
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !overlaps.is_empty() {
        broke(
            super::checks::EXCLUSION,
            format!("async waiters were inside together: {overlaps:?}"),
        );
    }
}
