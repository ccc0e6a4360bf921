//! The checks that run in one process, with threads.
//!
//! Every check opens its handles on keys of its own ([`Ctx::key`]) and moves handles that must
//! wait into detached threads ([`spawn`]), so a stuck backend fails the check that saw it and no
//! other.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::process;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::harness::{
    Ctx, broke, check_error_payload, expect_err, expect_status, ok, spawn, timed,
};
use super::{SETTLE, TIMING_SLACK, TIMING_TRIES, multi};
use crate::{
    ConcreteLock, Lock, LockBuilder, LockStatus, PreviousHolder, SimpleLockError,
    lock_until_finished,
};

// The rules of the contract, as the verdicts name them.
pub(super) const EXCLUSION: &str = "two handles on the same lock never hold it at once";
pub(super) const STATUS: &str =
    "status() is Mine for the holder, Taken for other handles while it is held, Open when free";
pub(super) const FRESH: &str = "a new handle is Open and knows no previous holder";
pub(super) const HOLDER_FREE: &str = "holder() is None while nobody holds the lock";
pub(super) const HOLDER_PID: &str =
    "holder() and the holder in AlreadyLocked/TimedOut name the process that holds the lock";
const ALREADY_LOCKED: &str =
    "try_lock fails with AlreadyLocked, naming the lock, while another handle holds it";
const ALREADY_HELD: &str = "locking a handle that holds the lock fails with AlreadyHeld (never a \
     self-deadlock, never a second acquisition) and leaves it held once";
const NOT_HELD: &str =
    "try_unlock on a handle that does not hold the lock fails with NotHeld and releases nothing";
pub(super) const WAITS: &str =
    "hang_lock and timed_lock do not return while another handle holds the lock";
pub(super) const WOKEN: &str = "a waiter acquires the lock soon after it is released";
const WOKEN_BY_DROP: &str = "a waiter acquires the lock soon after its holder is dropped";
const WOKEN_BY_NAME: &str =
    "the release of a lock wakes a waiter of that lock, whatever waits on other locks";
const TIMED_OUT: &str =
    "timed_lock gives up with TimedOut, naming the lock and its timeout, while the lock is held";
const ON_TIME: &str = "timed_lock gives up no earlier than its timeout, and not much later";
const PROMPT: &str = "timed_lock acquires the lock soon after it is released";
const DROP_RELEASES: &str = "dropping a handle that holds the lock releases it";
const DROP_OTHER: &str = "dropping a handle that does not hold the lock releases nothing";
const RELOCK: &str = "a handle can lock and unlock again and again";
const INDEPENDENT: &str = "locks of different keys are independent";
pub(super) const NO_FALSE_DEATH: &str = "a holder that released cleanly is never reported dead";
const BUILDER: &str = "LockBuilder's modes behave as configured on top of the backend";
const GUARD: &str = "a guard holds the lock until it is dropped or unlocked";
const PANIC: &str = "a panic inside lock_until_finished releases the lock";
const CLONE: &str = "clone() is a new handle on the same lock, which does not hold it";
const SHARED: &str = "shared handles hold the lock together, and never with an exclusive one";

/// How long a waiter asked to wait "as long as it takes" through `timed_lock` waits: more than
/// any bound of the suite, so only a release can end it in time.
const LONG: Duration = Duration::from_secs(3600);

/// Runs check `name`.
pub(super) fn run<H: ConcreteLock + Send + 'static>(name: &str, ctx: &Ctx<H>) {
    match name {
        "fresh_handle_is_open" => fresh_handle_is_open(ctx),
        "status_follows_lock_and_unlock" => status_follows_lock_and_unlock(ctx),
        "holder_is_none_on_a_free_lock" => holder_is_none_on_a_free_lock(ctx),
        "try_lock_fails_while_held_elsewhere" => try_lock_fails_while_held_elsewhere(ctx),
        "hang_lock_waits_for_release" => hang_lock_waits_for_release(ctx),
        "drop_wakes_a_waiter" => drop_wakes_a_waiter(ctx),
        "waiters_on_two_names_are_each_woken" => waiters_on_two_names_are_each_woken(ctx),
        "every_waiter_gets_its_turn" => every_waiter_gets_its_turn(ctx),
        "timed_lock_times_out" => timed_lock_times_out(ctx),
        "timed_lock_gives_up_on_time" => timed_lock_gives_up_on_time(ctx),
        "timed_lock_acquires_soon_after_release" => timed_lock_acquires_soon_after_release(ctx),
        "unlock_without_holding_is_an_error" => unlock_without_holding_is_an_error(ctx),
        "lock_twice_is_an_error" => lock_twice_is_an_error(ctx),
        "drop_releases" => drop_releases(ctx),
        "drop_of_another_handle_keeps_the_lock" => drop_of_another_handle_keeps_the_lock(ctx),
        "relock_many_times" => relock_many_times(ctx),
        "different_locks_are_independent" => different_locks_are_independent(ctx),
        "clean_release_is_not_a_death" => clean_release_is_not_a_death(ctx),
        "threads_exclude_each_other" => threads_exclude_each_other(ctx),
        "builder_modes" => builder_modes(ctx),
        "guard_releases" => guard_releases(ctx),
        "panic_in_lock_until_finished_releases" => panic_in_lock_until_finished_releases(ctx),
        "clone_is_a_new_handle_on_the_same_lock" => clone_is_a_new_handle_on_the_same_lock(ctx),
        "holder_names_the_holding_process" => holder_names_the_holding_process(ctx),
        "shared_holders_coexist" => shared_holders_coexist(ctx),
        "shared_and_exclusive_exclude_each_other" => shared_and_exclusive_exclude_each_other(ctx),
        other => multi::run(other, ctx),
    }
}

/// Acquires with `try_lock`, which must succeed: the lock is free.
#[track_caller]
fn take<H: ConcreteLock>(who: &str, handle: &mut H) {
    ok(
        "try_lock on a free lock succeeds",
        &format!("try_lock of {who} on a free lock"),
        handle.try_lock(),
    );
}

/// Releases with `try_unlock`, which must succeed: the handle holds the lock.
#[track_caller]
fn release<H: ConcreteLock>(who: &str, handle: &mut H) {
    ok(
        "try_unlock by the holder succeeds",
        &format!("try_unlock of {who}, which holds the lock"),
        handle.try_unlock(),
    );
}

/// Fails unless `handle.holder()` is `Ok(None)`.
#[track_caller]
fn expect_no_holder<H: ConcreteLock>(who: &str, when: &str, handle: &H) {
    match handle.holder() {
        Ok(None) => {}
        Ok(Some(holder)) => broke(
            HOLDER_FREE,
            format!("holder() of {who} is {holder:?} {when}"),
        ),
        Err(e) => broke(HOLDER_FREE, format!("holder() of {who} failed {when}: {e}")),
    }
}

/// The two ways of waiting as long as it takes.
#[derive(Debug, Clone, Copy)]
enum Wait {
    Hang,
    Timed,
}

impl Wait {
    fn call<H: ConcreteLock>(self, handle: &mut H) -> crate::SimpleLockResult<()> {
        match self {
            Wait::Hang => handle.hang_lock(),
            Wait::Timed => handle.timed_lock(LONG),
        }
    }
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wait::Hang => "hang_lock",
            Wait::Timed => "timed_lock(1h)",
        })
    }
}

/// A new handle is open and knows nothing about a previous holder.
fn fresh_handle_is_open<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let a = ctx.open(&ctx.key("lock"));
    expect_status(FRESH, "a new handle", &a, LockStatus::Open);
    let previous = a.previous_holder();
    if previous != PreviousHolder::Unknown {
        broke(
            FRESH,
            format!("previous_holder() of a handle that never acquired is {previous:?}"),
        );
    }
}

/// Open → Mine for the holder and Taken for another handle → Open again after release.
fn status_follows_lock_and_unlock<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let b = ctx.open(&key);
    take("a", &mut a);
    expect_status(STATUS, "the holder", &a, LockStatus::Mine);
    expect_status(STATUS, "another handle", &b, LockStatus::Taken);
    release("a", &mut a);
    expect_status(STATUS, "the former holder", &a, LockStatus::Open);
    expect_status(STATUS, "another handle", &b, LockStatus::Open);
}

/// `holder()` is `None` on a new lock, after a release and after the holder was dropped.
fn holder_is_none_on_a_free_lock<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let b = ctx.open(&key);
    expect_no_holder("a new handle", "on a new lock", &a);
    take("a", &mut a);
    release("a", &mut a);
    expect_no_holder("the former holder", "after its release", &a);
    expect_no_holder("another handle", "after the release", &b);
    let mut c = ctx.open(&key);
    take("c", &mut c);
    drop(c);
    expect_no_holder("another handle", "after the holder was dropped", &b);
}

/// `try_lock` fails with `AlreadyLocked` naming the lock while another handle holds it.
fn try_lock_fails_while_held_elsewhere<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    let err = expect_err!(
        ALREADY_LOCKED,
        "try_lock while another handle holds the lock",
        b.try_lock(),
        AlreadyLocked
    );
    check_error_payload("try_lock", &err, process::id());
    expect_status(
        STATUS,
        "the holder after a failed try",
        &a,
        LockStatus::Mine,
    );
    release("a", &mut a);
    take("b after the release", &mut b);
    release("b", &mut b);
}

/// `hang_lock` waits while another handle holds the lock and returns once it is released.
fn hang_lock_waits_for_release<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    ctx.step("hang_lock waits while another handle holds the lock");
    let waiter = spawn(move || (b.hang_lock(), b));
    waiter.expect_still_running(
        SETTLE,
        WAITS,
        "hang_lock returned while another handle held the lock",
    );
    release("a", &mut a);
    ctx.step("waiting for hang_lock to return after the release");
    let (result, b) = waiter.expect_within(
        ctx.wake,
        WOKEN,
        "hang_lock did not return after the holder released the lock with try_unlock",
    );
    let mut b = b;
    ok(WOKEN, "hang_lock after the release", result);
    expect_status(STATUS, "the waiter that acquired", &b, LockStatus::Mine);
    expect_err!(
        EXCLUSION,
        "try_lock while the woken waiter holds the lock",
        a.try_lock(),
        AlreadyLocked
    );
    release("the waiter", &mut b);
}

/// A waiter (in `hang_lock`, then in `timed_lock`) is woken when the holder is dropped.
fn drop_wakes_a_waiter<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    for wait in [Wait::Hang, Wait::Timed] {
        let key = ctx.key(&format!("{wait:?}"));
        let mut a = ctx.open(&key);
        let mut b = ctx.open(&key);
        take("a", &mut a);
        ctx.step(format!("{wait} waits while another handle holds the lock"));
        let waiter = spawn(move || (wait.call(&mut b), b));
        waiter.expect_still_running(
            SETTLE,
            WAITS,
            &format!("{wait} returned while another handle held the lock"),
        );
        drop(a);
        ctx.step(format!(
            "waiting for {wait} to return after the holder was dropped"
        ));
        let (result, mut b) = waiter.expect_within(
            ctx.wake,
            WOKEN_BY_DROP,
            format!(
                "{wait} did not return after the holder was dropped (a drop that wakes no waiter?)"
            ),
        );
        ok(WOKEN_BY_DROP, &format!("{wait} after the drop"), result);
        release("the waiter", &mut b);
    }
}

/// Waiters on two locks at once: the release of one lock wakes its waiter even while more
/// waiters of the other lock sleep. A backend with one condition variable for all names and
/// `notify_one` wakes the waiter that slept longest — one of the other lock — and the right
/// waiter sleeps on; both orders are tried, so the check does not depend on which waiter such a
/// backend would pick first.
fn waiters_on_two_names_are_each_woken<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    const CROWD: usize = 3;
    for (round, (crowded, lone)) in [("x", "y"), ("y", "x")].into_iter().enumerate() {
        let crowded_key = ctx.key(&format!("{round}-{crowded}"));
        let lone_key = ctx.key(&format!("{round}-{lone}"));
        let mut crowded_holder = ctx.open(&crowded_key);
        let mut lone_holder = ctx.open(&lone_key);
        take("the holder of the first lock", &mut crowded_holder);
        take("the holder of the second lock", &mut lone_holder);
        ctx.step("waiters on two locks wait");
        let crowd: Vec<_> = (0..CROWD)
            .map(|_| {
                let mut waiter = ctx.open(&crowded_key);
                let pending = spawn(move || {
                    let result = waiter.hang_lock();
                    let released = result.is_ok() && waiter.try_unlock().is_ok();
                    (result, released)
                });
                // One at a time, so they queue in this order.
                thread::sleep(SETTLE / 4);
                pending
            })
            .collect();
        let mut lone_waiter = ctx.open(&lone_key);
        let lone_pending = spawn(move || (lone_waiter.hang_lock(), lone_waiter));
        lone_pending.expect_still_running(
            SETTLE,
            WAITS,
            "hang_lock on the second lock returned while it was held",
        );
        release("the holder of the second lock", &mut lone_holder);
        ctx.step("waiting for the waiter of the released lock");
        let (result, mut lone_waiter) = lone_pending.expect_within(
            ctx.wake,
            WOKEN_BY_NAME,
            format!(
                "the waiter of a released lock was not woken while {CROWD} waiters of another \
                 lock slept (one wake-up shared by all locks?)"
            ),
        );
        ok(WOKEN, "hang_lock after the release", result);
        for pending in &crowd {
            pending.expect_still_running(
                Duration::ZERO,
                EXCLUSION,
                "a waiter of the first lock returned while it was still held",
            );
        }
        release("the waiter of the second lock", &mut lone_waiter);
        release("the holder of the first lock", &mut crowded_holder);
        ctx.step("waiting for the waiters of the first lock, one after the other");
        for pending in crowd {
            let (result, released) = pending.expect_within(
                ctx.wake,
                WOKEN,
                "a waiter of the first lock was not woken after its release",
            );
            ok(WOKEN, "hang_lock of a waiter of the first lock", result);
            assert!(released, "try_unlock of a waiter that acquired failed");
        }
    }
}

/// Several waiters of one lock, in every mode, all get the lock in turn after one release —
/// one at a time: each holds it until told to release, and no other waiter may get it
/// meanwhile (a waiter that takes the lock without checking again after its wake-up fails
/// here).
fn every_waiter_gets_its_turn<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    const WAITERS: usize = 4;
    let key = ctx.key("lock");
    let mut holder = ctx.open(&key);
    take("the holder", &mut holder);
    let (acquired_tx, acquired) = mpsc::channel();
    ctx.step("waiters of one lock wait");
    let mut waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let mut handle = ctx.open(&key);
            let acquired_tx = acquired_tx.clone();
            let (release_tx, release) = mpsc::channel::<()>();
            let wait = if i % 2 == 0 { Wait::Hang } else { Wait::Timed };
            let pending = spawn(move || {
                let result = wait.call(&mut handle);
                let _ = acquired_tx.send((i, format!("{result:?}")));
                if result.is_ok() {
                    let _ = release.recv();
                }
                let unlocked = result.is_ok().then(|| handle.try_unlock());
                (result, unlocked)
            });
            (wait, Some(release_tx), Some(pending))
        })
        .collect();
    if let Ok((i, returned)) = acquired.recv_timeout(SETTLE) {
        broke(
            WAITS,
            format!(
                "{} of waiter {i} returned {returned} while another handle held the lock",
                waiters[i].0
            ),
        );
    }
    release("the holder", &mut holder);
    for turn in 0..WAITERS {
        ctx.step(format!("waiting for turn {turn} of {WAITERS} waiters"));
        let (i, _) = acquired.recv_timeout(ctx.wake).unwrap_or_else(|_| {
            broke(
                WOKEN,
                format!(
                    "after {turn} waiters had their turn, none of the other {} got the lock \
                     within {:?} of its release",
                    WAITERS - turn,
                    ctx.wake
                ),
            )
        });
        if let Ok((j, returned)) = acquired.recv_timeout(SETTLE) {
            broke(
                if returned.starts_with("Ok") {
                    EXCLUSION
                } else {
                    WAITS
                },
                format!(
                    "{} of waiter {j} returned {returned} while waiter {i} held the lock \
                     (after {turn} turns)",
                    waiters[j].0
                ),
            );
        }
        let (wait, release_tx, pending) = &mut waiters[i];
        drop(release_tx.take());
        let pending = pending.take().expect("each waiter acquires once");
        let (result, unlocked) = pending.expect_within(
            ctx.wake,
            WOKEN,
            format!("waiter {i} did not finish its turn"),
        );
        ok(WOKEN, &format!("{wait} of waiter {i}"), result);
        ok(
            "try_unlock by the holder succeeds",
            &format!("try_unlock of waiter {i}"),
            unlocked.expect("it acquired"),
        );
    }
}

/// `timed_lock` gives up with `TimedOut` carrying the lock's name and the timeout, not earlier
/// than asked, while another handle holds it; `timed_lock(0)` tries once.
fn timed_lock_times_out<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    let timeout = Duration::from_millis(100);
    ctx.step("timed_lock(100ms) while another handle holds the lock");
    let pending = spawn(move || {
        let (result, waited) = timed(|| b.timed_lock(timeout));
        let (zero, _) = timed(|| b.timed_lock(Duration::ZERO));
        (result, waited, zero, b)
    });
    let (result, waited, zero, mut b) = pending.expect_within(
        ctx.wake,
        TIMED_OUT,
        "timed_lock(100ms), then timed_lock(0), did not return while another handle held the lock",
    );
    match result {
        Err(SimpleLockError::TimedOut {
            timeout: reported, ..
        }) if reported != timeout => broke(
            TIMED_OUT,
            format!("timed_lock({timeout:?}) reported TimedOut with a timeout of {reported:?}"),
        ),
        Err(err @ SimpleLockError::TimedOut { .. }) => {
            check_error_payload("timed_lock", &err, process::id())
        }
        other => broke(
            TIMED_OUT,
            format!(
                "timed_lock({timeout:?}) while another handle held the lock returned {other:?}"
            ),
        ),
    }
    if waited < timeout {
        broke(
            ON_TIME,
            format!("timed_lock({timeout:?}) gave up after {waited:?}, before its timeout"),
        );
    }
    expect_err!(
        TIMED_OUT,
        "timed_lock(0) while another handle holds the lock",
        zero,
        TimedOut
    );
    expect_status(STATUS, "the handle that timed out", &b, LockStatus::Taken);
    expect_status(STATUS, "the holder", &a, LockStatus::Mine);
    release("a", &mut a);
    ok(
        "timed_lock(0) on a free lock acquires it",
        "timed_lock(0) on a free lock",
        b.timed_lock(Duration::ZERO),
    );
    release("b", &mut b);
}

/// `timed_lock` gives up within [`TIMING_SLACK`] of its timeout, in the best of
/// [`TIMING_TRIES`] tries.
fn timed_lock_gives_up_on_time<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let timeout = Duration::from_millis(50);
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    take("a", &mut a);
    let mut b = ctx.open(&key);
    let mut tries = Vec::new();
    for _ in 0..TIMING_TRIES {
        ctx.step("timed_lock(50ms) while another handle holds the lock");
        let pending = spawn(move || (timed(|| b.timed_lock(timeout)), b));
        let ((result, waited), back) = pending.expect_within(
            ctx.wake,
            ON_TIME,
            "timed_lock(50ms) did not return while another handle held the lock",
        );
        b = back;
        expect_err!(TIMED_OUT, "timed_lock(50ms) while held", result, TimedOut);
        if waited < timeout {
            broke(
                ON_TIME,
                format!("timed_lock({timeout:?}) gave up after {waited:?}, early"),
            );
        }
        if waited - timeout <= TIMING_SLACK {
            return;
        }
        tries.push(waited);
    }
    broke(
        ON_TIME,
        format!(
            "timed_lock({timeout:?}) gave up more than {TIMING_SLACK:?} late in each of \
             {TIMING_TRIES} tries, after {tries:?}"
        ),
    );
}

/// `timed_lock` acquires within [`TIMING_SLACK`] of a release, in the best of
/// [`TIMING_TRIES`] tries, and long before its own timeout.
fn timed_lock_acquires_soon_after_release<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    let mut tries = Vec::new();
    for _ in 0..TIMING_TRIES {
        take("a", &mut a);
        ctx.step("timed_lock(1h) waits while another handle holds the lock");
        let waiter = spawn(move || {
            let result = b.timed_lock(LONG);
            (result, Instant::now(), b)
        });
        waiter.expect_still_running(
            SETTLE,
            WAITS,
            "timed_lock returned while another handle held the lock",
        );
        let released = Instant::now();
        release("a", &mut a);
        ctx.step("waiting for timed_lock(1h) to return after the release");
        let (result, acquired, back) = waiter.expect_within(
            ctx.wake,
            PROMPT,
            "timed_lock(1h) did not return after the lock was released (does it notice releases?)",
        );
        b = back;
        ok(PROMPT, "timed_lock after the release", result);
        release("b", &mut b);
        let late = acquired.saturating_duration_since(released);
        if late <= TIMING_SLACK {
            return;
        }
        tries.push(late);
    }
    broke(
        PROMPT,
        format!(
            "timed_lock acquired more than {TIMING_SLACK:?} after the release in each of \
             {TIMING_TRIES} tries, after {tries:?}"
        ),
    );
}

/// Unlock by a handle that does not hold the lock is `NotHeld` and releases nothing.
fn unlock_without_holding_is_an_error<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    let mut c = ctx.open(&key);
    expect_err!(
        NOT_HELD,
        "try_unlock of a free lock",
        a.try_unlock(),
        NotHeld
    );
    take("b", &mut b);
    expect_err!(
        NOT_HELD,
        "try_unlock by a handle while another one holds the lock",
        a.try_unlock(),
        NotHeld
    );
    expect_status(
        NOT_HELD,
        "the holder after another handle's unlock",
        &b,
        LockStatus::Mine,
    );
    expect_err!(
        NOT_HELD,
        "try_lock after another handle's stray unlock",
        c.try_lock(),
        AlreadyLocked
    );
    release("b", &mut b);
    expect_err!(NOT_HELD, "a second try_unlock", b.try_unlock(), NotHeld);
}

/// Locking a handle that holds the lock is `AlreadyHeld` in every mode, never a self-deadlock,
/// and the lock stays held exactly once.
fn lock_twice_is_an_error<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    ctx.step("locking again a handle that holds the lock");
    let pending = spawn(move || {
        let results = [
            ("try_lock", a.try_lock()),
            ("hang_lock", a.hang_lock()),
            ("timed_lock(20ms)", a.timed_lock(Duration::from_millis(20))),
            ("timed_lock(0)", a.timed_lock(Duration::ZERO)),
        ];
        (results, a)
    });
    let (results, mut a) = pending.expect_within(
        ctx.wake,
        ALREADY_HELD,
        "locking again a handle that holds the lock did not return: a self-deadlock",
    );
    for (what, result) in results {
        expect_err!(
            ALREADY_HELD,
            format!("{what} on a handle that holds the lock"),
            result,
            AlreadyHeld
        );
    }
    expect_status(ALREADY_HELD, "the holder", &a, LockStatus::Mine);
    release("a", &mut a);
    ok(
        ALREADY_HELD,
        "try_lock by another handle after one unlock (held once, not several times)",
        b.try_lock(),
    );
    release("b", &mut b);
}

/// Dropping a handle that holds the lock releases it.
fn drop_releases<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    drop(a);
    ok(
        DROP_RELEASES,
        "try_lock after the holder was dropped",
        b.try_lock(),
    );
    release("b", &mut b);
}

/// Dropping a handle that does not hold the lock releases nothing: with `fcntl` locks, closing
/// any descriptor of the file drops the process's lock, so a backend built on them fails here.
fn drop_of_another_handle_keeps_the_lock<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let b = ctx.open(&key);
    let mut c = ctx.open(&key);
    take("a", &mut a);
    drop(b);
    expect_status(
        DROP_OTHER,
        "the holder after another handle was dropped",
        &a,
        LockStatus::Mine,
    );
    expect_err!(
        DROP_OTHER,
        "try_lock after a handle that did not hold the lock was dropped",
        c.try_lock(),
        AlreadyLocked
    );
    release("a", &mut a);
}

/// One handle can lock and unlock many times in a row, in every mode.
fn relock_many_times<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let b = ctx.open(&key);
    for round in 0..100 {
        let what = match round % 3 {
            0 => ("try_lock", a.try_lock()),
            1 => ("hang_lock", a.hang_lock()),
            _ => ("timed_lock", a.timed_lock(ctx.wake)),
        };
        ok(RELOCK, &format!("{} in round {round}", what.0), what.1);
        expect_status(
            STATUS,
            &format!("another handle in round {round}"),
            &b,
            LockStatus::Taken,
        );
        ok(
            RELOCK,
            &format!("try_unlock in round {round}"),
            a.try_unlock(),
        );
    }
    expect_status(
        STATUS,
        "another handle after the rounds",
        &b,
        LockStatus::Open,
    );
}

/// Handles with different keys do not exclude each other.
fn different_locks_are_independent<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let mut a = ctx.open(&ctx.key("first"));
    let mut b = ctx.open(&ctx.key("second"));
    take("a handle of the first lock", &mut a);
    ok(
        INDEPENDENT,
        "try_lock on a second, different lock",
        b.try_lock(),
    );
    expect_status(
        INDEPENDENT,
        "the holder of the first lock",
        &a,
        LockStatus::Mine,
    );
    release("a", &mut a);
    release("b", &mut b);
}

/// A clean release is never reported as a death.
fn clean_release_is_not_a_death<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    release("a", &mut a);
    take("b", &mut b);
    if b.previous_holder() == PreviousHolder::Died {
        broke(
            NO_FALSE_DEATH,
            "previous_holder() is Died after a clean try_unlock",
        );
    }
    drop(b);
    take("a again", &mut a);
    if a.previous_holder() == PreviousHolder::Died {
        broke(
            NO_FALSE_DEATH,
            "previous_holder() is Died after the holder was dropped",
        );
    }
    release("a", &mut a);
}

/// Threads with their own handles on one lock never overlap and lose no update, under every mix
/// of `try_lock`, `hang_lock` and `timed_lock`.
///
/// A lock whose `try_lock` checks and then sets in two steps lets two threads in only when
/// they meet between the two steps, which the mixed rounds rarely force (1 run in 40 for the
/// reference mutant); the [`try_lock_storm`] that follows them does.
fn threads_exclude_each_other<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    const THREADS: usize = 4;
    const ROUNDS: usize = 500;
    let key = ctx.key("lock");
    let counter = Arc::new(AtomicUsize::new(0));
    let occupant = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(Mutex::new(Vec::new()));
    // Rounds completed by all threads: the check judges a stall (no round for the wake bound),
    // not the total time, which a loaded machine stretches at will.
    let progress = Arc::new(AtomicUsize::new(0));
    let wake = ctx.wake;
    ctx.step("threads contend for the lock");
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut handle = ctx.open(&key);
            let (counter, occupant, overlaps, progress) = (
                Arc::clone(&counter),
                Arc::clone(&occupant),
                Arc::clone(&overlaps),
                Arc::clone(&progress),
            );
            spawn(move || -> Result<(), String> {
                for round in 0..ROUNDS {
                    let how = match (t + round) % 3 {
                        0 => handle.hang_lock().map(|()| "hang_lock"),
                        1 => handle.timed_lock(wake).map(|()| "timed_lock"),
                        _ => loop {
                            match handle.try_lock() {
                                Ok(()) => break Ok("try_lock"),
                                Err(SimpleLockError::AlreadyLocked { .. }) => thread::yield_now(),
                                Err(e) => break Err(e),
                            }
                        },
                    }
                    .map_err(|e| format!("thread {t}, round {round}: locking failed: {e:?}"))?;
                    if let Err(other) =
                        occupant.compare_exchange(0, t + 1, Ordering::SeqCst, Ordering::SeqCst)
                    {
                        overlaps.lock().unwrap().push(format!(
                            "thread {t} acquired with {how} in round {round} while thread {} \
                             held the lock",
                            other - 1
                        ));
                    }
                    // A deliberately racy read-modify-write: only the lock keeps it exact.
                    let seen = counter.load(Ordering::SeqCst);
                    thread::yield_now();
                    counter.store(seen + 1, Ordering::SeqCst);
                    let _ = occupant.compare_exchange(t + 1, 0, Ordering::SeqCst, Ordering::SeqCst);
                    if let Err(e) = handle.try_unlock() {
                        let seen = overlaps.lock().unwrap().clone();
                        return Err(format!(
                            "thread {t}, round {round}: try_unlock of the holder failed: {e:?}{}",
                            if seen.is_empty() {
                                String::new()
                            } else {
                                format!(" after {seen:?}")
                            }
                        ));
                    }
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            })
        })
        .collect();
    let mut errors = Vec::new();
    for (t, worker) in workers.into_iter().enumerate() {
        ctx.step(format!("waiting for contending thread {t} to finish"));
        let stall = ctx.wake * 6;
        let (mut seen, mut since) = (progress.load(Ordering::SeqCst), Instant::now());
        let result = loop {
            if let Some(result) = worker.within(ctx.wake) {
                break result;
            }
            let now = progress.load(Ordering::SeqCst);
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= stall {
                broke(
                    WOKEN,
                    format!(
                        "contending thread {t} did not finish its {ROUNDS} rounds, and no thread \
                         finished a round for {stall:?} ({seen} of {} rounds done)",
                        THREADS * ROUNDS
                    ),
                );
            }
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let overlaps = overlaps.lock().unwrap();
    if let Some(first) = overlaps.first() {
        broke(
            EXCLUSION,
            format!(
                "{} times two holders at once; the first: {first}",
                overlaps.len()
            ),
        );
    }
    if let Some(first) = errors.first() {
        broke("locking and unlocking under contention succeed", first);
    }
    let total = counter.load(Ordering::SeqCst);
    if total != THREADS * ROUNDS {
        broke(
            EXCLUSION,
            format!(
                "{} of {} updates of the counter were lost",
                THREADS * ROUNDS - total,
                THREADS * ROUNDS
            ),
        );
    }
    try_lock_storm(ctx, &key);
}

/// How many acquisitions [`try_lock_storm`] makes, in all, for a backend that passes it.
const STORM_ACQUISITIONS: usize = 200_000;
/// The longest [`try_lock_storm`] runs, whatever it reached: a bound for slow backends and
/// loaded machines, not a verdict.
const STORM_CAP: Duration = Duration::from_secs(20);

/// Threads spinning on `try_lock` with a tiny critical section, for [`STORM_ACQUISITIONS`]
/// acquisitions (at most [`STORM_CAP`]) or until two holders meet: releases are contended as
/// hard as threads can, which is what finds a `try_lock` that checks and then sets in two
/// steps.
///
/// Counted in acquisitions rather than time, so that a loaded machine makes it slower, not
/// weaker. The reference mutant with that race (`check_then_set_race` in the core's tests) was
/// caught in each of 100 runs on a loaded 2-core machine: 7 times by the mixed rounds before the
/// storm, 93 times by the storm, after a median of 5 000, a mean of 8 800 and at most 72 000
/// acquisitions. The budget is 23 means and nearly three times the worst run: a miss is not
/// something to expect (below one in a million on that evidence), and a backend whose window is
/// much narrower than a mutex release and re-acquisition could still slip through.
fn try_lock_storm<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>, key: &str) {
    const THREADS: usize = 4;
    ctx.step("threads storm the lock with try_lock");
    let occupant = Arc::new(AtomicUsize::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut handle = ctx.open(key);
            let (occupant, acquisitions, stop) = (
                Arc::clone(&occupant),
                Arc::clone(&acquisitions),
                Arc::clone(&stop),
            );
            spawn(move || -> Result<Option<String>, String> {
                while !stop.load(Ordering::Relaxed)
                    && acquisitions.load(Ordering::Relaxed) < STORM_ACQUISITIONS
                    && start.elapsed() < STORM_CAP
                {
                    match handle.try_lock() {
                        Ok(()) => {}
                        Err(SimpleLockError::AlreadyLocked { .. }) => continue,
                        Err(e) => return Err(format!("thread {t}: try_lock failed: {e:?}")),
                    }
                    let n = acquisitions.fetch_add(1, Ordering::Relaxed) + 1;
                    let seen =
                        occupant.compare_exchange(0, t + 1, Ordering::SeqCst, Ordering::SeqCst);
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                    let _ = occupant.compare_exchange(t + 1, 0, Ordering::SeqCst, Ordering::SeqCst);
                    if let Err(other) = seen {
                        stop.store(true, Ordering::Relaxed);
                        return Ok(Some(format!(
                            "thread {t} acquired with try_lock while thread {} held the lock, \
                             at acquisition {n} of the try_lock storm",
                            other - 1
                        )));
                    }
                    if let Err(e) = handle.try_unlock() {
                        return Err(format!(
                            "thread {t}: try_unlock of the holder failed: {e:?}"
                        ));
                    }
                }
                Ok(None)
            })
        })
        .collect();
    let mut overlap = None;
    let mut error = None;
    for (t, worker) in workers.into_iter().enumerate() {
        match worker.expect_within(
            STORM_CAP + ctx.wake,
            WOKEN,
            format!("storming thread {t} did not stop"),
        ) {
            Ok(Some(found)) => overlap = overlap.or(Some(found)),
            Ok(None) => {}
            Err(e) => error = error.or(Some(e)),
        }
    }
    if let Some(found) = overlap {
        broke(EXCLUSION, format!("two holders at once: {found}"));
    }
    if let Some(e) = error {
        broke("locking and unlocking under contention succeed", e);
    }
}

/// The [`LockBuilder`] modes behave as configured on top of the backend.
fn builder_modes<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut holder = LockBuilder::default().apply(ctx.open(&key));
    ok(
        BUILDER,
        "lock() in the default mode on a free lock",
        holder.lock(),
    );
    let mut trying = LockBuilder::default().with_try_lock().apply(ctx.open(&key));
    expect_err!(
        BUILDER,
        "lock() in try mode while held elsewhere",
        trying.lock(),
        AlreadyLocked
    );
    let timeout = Duration::from_millis(30);
    let mut timed = LockBuilder::default()
        .with_timeout(timeout)
        .apply(ctx.open(&key));
    ctx.step("lock() in timeout mode while held elsewhere");
    let pending = spawn(move || (timed.lock(), timed));
    let (result, mut timed) = pending.expect_within(
        ctx.wake,
        BUILDER,
        "lock() in timeout mode did not return while the lock was held elsewhere",
    );
    match result {
        Err(SimpleLockError::TimedOut { timeout: t, .. }) if t == timeout => {}
        other => broke(
            BUILDER,
            format!("lock() in timeout mode ({timeout:?}) while held elsewhere returned {other:?}"),
        ),
    }
    expect_err!(
        BUILDER,
        "unlock() without holding",
        trying.unlock(),
        NotHeld
    );
    let mut silent = LockBuilder::default()
        .with_try_lock()
        .with_silent_unlock()
        .apply(ctx.open(&key));
    ok(
        BUILDER,
        "unlock() without holding, in silent mode",
        silent.unlock(),
    );
    match holder.status() {
        Ok(LockStatus::Mine) => {}
        other => broke(
            NOT_HELD,
            format!("after a silent unlock by another handle, the holder's status is {other:?}"),
        ),
    }
    ok(BUILDER, "unlock() by the holder", holder.unlock());
    ok(
        BUILDER,
        "lock() in timeout mode on a free lock",
        timed.lock(),
    );
    ok(BUILDER, "unlock()", timed.unlock());
}

/// A guard releases the lock when dropped and reports unlock errors from `unlock()`.
fn guard_releases<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = LockBuilder::default().with_try_lock().apply(ctx.open(&key));
    let mut b = LockBuilder::default().with_try_lock().apply(ctx.open(&key));
    {
        let guard = ok(GUARD, "guard() on a free lock", a.guard());
        match guard.lock().status() {
            Ok(LockStatus::Mine) => {}
            other => broke(GUARD, format!("status() through the guard is {other:?}")),
        }
        expect_err!(
            GUARD,
            "lock() while a guard holds the lock",
            b.lock(),
            AlreadyLocked
        );
    }
    let guard = ok(
        GUARD,
        "guard() after the first guard was dropped",
        b.guard(),
    );
    ok(GUARD, "guard.unlock()", guard.unlock());
    ok(GUARD, "lock() after guard.unlock()", a.lock());
    ok(GUARD, "unlock()", a.unlock());
}

/// A panic inside `lock_until_finished` releases the lock and goes on.
fn panic_in_lock_until_finished_releases<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = LockBuilder::default().apply(ctx.open(&key));
    let mut b = LockBuilder::default().with_try_lock().apply(ctx.open(&key));
    let answer = ok(
        PANIC,
        "lock_until_finished",
        lock_until_finished(&mut a, || 42),
    );
    if answer != 42 {
        broke(
            PANIC,
            format!("lock_until_finished returned {answer} instead of the closure's 42"),
        );
    }
    // The panic message shows in the test output. Silencing it would mean replacing the global
    // panic hook, which would also hide the messages of checks failing at the same time.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        lock_until_finished(&mut a, || {
            panic!("deliberate panic in the critical section (conformance check, not a failure)")
        })
    }));
    if outcome.is_ok() {
        broke(PANIC, "the panic of the critical section did not go on");
    }
    match a.status() {
        Ok(LockStatus::Open) => {}
        other => broke(PANIC, format!("after the panic, the status is {other:?}")),
    }
    ok(PANIC, "lock() by another handle after the panic", b.lock());
    ok(PANIC, "unlock()", b.unlock());
}

/// `clone()` of a holding handle does not hold the lock, cannot release it, and excludes the
/// original once it holds the lock itself.
fn clone_is_a_new_handle_on_the_same_lock<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let clone = ctx
        .backend
        .clone
        .as_ref()
        .expect("the check needs the cloneable claim");
    let mut a = ctx.open(&ctx.key("lock"));
    take("a", &mut a);
    let mut copy = clone(&a);
    expect_status(CLONE, "a clone of the holder", &copy, LockStatus::Taken);
    expect_err!(
        CLONE,
        "try_lock of a clone of the holder",
        copy.try_lock(),
        AlreadyLocked
    );
    expect_err!(
        CLONE,
        "try_unlock of a clone of the holder",
        copy.try_unlock(),
        NotHeld
    );
    expect_status(
        CLONE,
        "the holder after its clone tried to unlock",
        &a,
        LockStatus::Mine,
    );
    drop(copy);
    expect_status(
        CLONE,
        "the holder after its clone was dropped",
        &a,
        LockStatus::Mine,
    );
    release("a", &mut a);
    let mut other = clone(&a);
    take("a clone", &mut other);
    expect_err!(
        CLONE,
        "try_lock of the original while its clone holds",
        a.try_lock(),
        AlreadyLocked
    );
    expect_status(
        CLONE,
        "the original while its clone holds",
        &a,
        LockStatus::Taken,
    );
    release("the clone", &mut other);
}

/// `holder()` and the `holder` of `AlreadyLocked` and `TimedOut` name this process while
/// another handle of it holds the lock (and the child's pid across processes, see
/// `another_process_sees_the_lock_taken`).
fn holder_names_the_holding_process<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut a = ctx.open(&key);
    let mut b = ctx.open(&key);
    take("a", &mut a);
    expect_holder(&b, process::id(), "another handle of this process");
    let err = expect_err!(
        ALREADY_LOCKED,
        "try_lock while held elsewhere",
        b.try_lock(),
        AlreadyLocked
    );
    expect_error_holder("try_lock", &err, process::id());
    // On another thread: this one holds the lock, and a backend may refuse a wait that could
    // never end here with `WouldDeadlock`.
    ctx.step("timed_lock(10ms) while held elsewhere");
    let pending = spawn(move || (b.timed_lock(Duration::from_millis(10)), b));
    let (result, b) = pending.expect_within(ctx.wake, TIMED_OUT, "timed_lock(10ms) did not return");
    let err = expect_err!(
        TIMED_OUT,
        "timed_lock(10ms) while held elsewhere",
        result,
        TimedOut
    );
    expect_error_holder("timed_lock", &err, process::id());
    release("a", &mut a);
    expect_no_holder("another handle", "after the release", &b);
}

/// Fails unless `handle.holder()` names `pid`; `by` says who holds the lock.
#[track_caller]
pub(super) fn expect_holder<H: ConcreteLock>(handle: &H, pid: u32, by: &str) {
    match handle.holder() {
        Ok(Some(holder)) if holder.pid == pid => {}
        other => broke(
            HOLDER_PID,
            format!("holder() is {other:?} while {by} (pid {pid}) holds the lock"),
        ),
    }
}

/// Fails unless `err` carries a holder naming `pid`.
#[track_caller]
pub(super) fn expect_error_holder(what: &str, err: &SimpleLockError, pid: u32) {
    match err.holder() {
        Some(holder) if holder.pid == pid => {}
        other => broke(
            HOLDER_PID,
            format!("{what} returned {err:?}: its holder is {other:?}, expected pid {pid}"),
        ),
    }
}

/// Shared handles hold the lock at the same time.
fn shared_holders_coexist<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut readers: Vec<H> = (0..3).map(|_| ctx.open_shared(&key)).collect();
    for (i, reader) in readers.iter_mut().enumerate() {
        ok(
            SHARED,
            &format!("try_lock of shared handle {i} while only shared handles hold"),
            reader.try_lock(),
        );
        expect_status(
            SHARED,
            &format!("shared handle {i}"),
            reader,
            LockStatus::Mine,
        );
    }
    let mut seen = HashSet::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        ok(
            SHARED,
            &format!("try_unlock of shared handle {i}"),
            reader.try_unlock(),
        );
        seen.insert(i);
    }
    let mut writer = ctx.open(&key);
    ok(
        SHARED,
        "try_lock of an exclusive handle after every shared one released",
        writer.try_lock(),
    );
    release("the exclusive handle", &mut writer);
}

/// A shared holder keeps exclusive handles out (a waiting one gets in after its release), and an
/// exclusive holder keeps shared handles out.
fn shared_and_exclusive_exclude_each_other<H: ConcreteLock + Send + 'static>(ctx: &Ctx<H>) {
    let key = ctx.key("lock");
    let mut reader = ctx.open_shared(&key);
    let mut writer = ctx.open(&key);
    take("a shared handle", &mut reader);
    expect_err!(
        SHARED,
        "try_lock of an exclusive handle while a shared one holds",
        writer.try_lock(),
        AlreadyLocked
    );
    ctx.step("an exclusive handle waits while a shared one holds");
    let waiter = spawn(move || (writer.hang_lock(), writer));
    waiter.expect_still_running(
        SETTLE,
        SHARED,
        "hang_lock of an exclusive handle returned while a shared handle held the lock",
    );
    release("the shared handle", &mut reader);
    let (result, mut writer) = waiter.expect_within(
        ctx.wake,
        WOKEN,
        "the waiting exclusive handle did not get the lock after the shared one released it",
    );
    ok(WOKEN, "hang_lock of the exclusive handle", result);
    expect_err!(
        SHARED,
        "try_lock of a shared handle while an exclusive one holds",
        reader.try_lock(),
        AlreadyLocked
    );
    release("the exclusive handle", &mut writer);
}
