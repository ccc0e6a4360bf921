//! Checks of a counting semaphore's N permits, in one process, for every backend's tests (the
//! lock contract of a one-permit semaphore is the suite's; N processes with holders killed are
//! the facade's `tests/permits.rs`).
//!
//! Each check takes an opener, `open(n)`: a new handle on one semaphore private to the check
//! (a name of its own), with `n` permits. A failed check panics saying what the backend did.
//! A sketch of a backend's test (every permits backend of this workspace has them in its
//! `tests/permits.rs`):
//!
//! ```text
//! #[test]
//! fn status_and_holders_follow_the_permits() {
//!     simplelock_core::conformance::permits::status_and_holders(
//!         |n| MyPermits::named(&format!("{}-status", run_id()), n),
//!         true, // records since when each permit is held
//!     );
//! }
//! ```

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::PATIENCE;

use crate::{LockStatus, PermitState, Permits, SimpleLockError, SimpleLockResult};

fn opened<P>(open: &impl Fn(u32) -> SimpleLockResult<P>, n: u32) -> P {
    open(n).unwrap_or_else(|err| panic!("opening a semaphore of {n} permits: {err} ({err:?})"))
}

/// Three handles on a semaphore of two permits: `holders()` lists both free, then who holds
/// each (this process, with the time it took it if `records_since`); `status()` is `Mine`,
/// `Open` and `Taken` as permits are taken; the third `try_lock` fails with `AlreadyLocked`
/// naming a holder; the two holders hold different permits; `NotHeld` after a release; the
/// permit given back is the one the third handle then takes.
pub fn status_and_holders<P: Permits>(
    open: impl Fn(u32) -> SimpleLockResult<P>,
    records_since: bool,
) {
    let mut handles: Vec<P> = (0..3).map(|_| opened(&open, 2)).collect();
    let ok = |what: &str, result: SimpleLockResult<()>| {
        result.unwrap_or_else(|err| panic!("{what}: {err} ({err:?})"));
    };
    assert_eq!(handles[0].permits(), 2, "permits() is the N asked for");
    assert_eq!(
        handles[0].holders().unwrap(),
        [PermitState::Free, PermitState::Free],
        "a new semaphore's permits are all free"
    );
    ok("the first try_lock", handles[0].try_lock());
    assert_eq!(handles[0].status().unwrap(), LockStatus::Mine);
    assert_eq!(
        handles[1].status().unwrap(),
        LockStatus::Open,
        "one permit is free"
    );
    ok("the second try_lock", handles[1].try_lock());
    assert_eq!(
        handles[2].status().unwrap(),
        LockStatus::Taken,
        "both permits held"
    );
    match handles[2].try_lock() {
        Err(SimpleLockError::AlreadyLocked {
            holder: Some(holder),
            ..
        }) => assert_eq!(holder.pid, std::process::id(), "the holder named"),
        other => panic!("a third try_lock on two held permits: {other:?}"),
    }
    let (first, second) = (handles[0].held_permit(), handles[1].held_permit());
    assert!(
        first.is_some() && second.is_some() && first != second,
        "two holders hold two different permits: {first:?} and {second:?}"
    );
    assert_eq!(handles[2].held_permit(), None);
    let holders = handles[2].holders().unwrap();
    assert!(
        holders.iter().all(|state| state.holder().is_some_and(|h| {
            h.pid == std::process::id() && (h.since.is_some() || !records_since)
        })),
        "holders() names this process for both permits{}: {holders:?}",
        if records_since {
            ", and since when"
        } else {
            ""
        }
    );
    ok("the first release", handles[0].try_unlock());
    assert!(
        matches!(
            handles[0].try_unlock(),
            Err(SimpleLockError::NotHeld { .. })
        ),
        "a second release is NotHeld"
    );
    assert_eq!(handles[0].held_permit(), None);
    ok("a try_lock after a release", handles[2].try_lock());
    assert_eq!(
        handles[2].held_permit(),
        first,
        "the permit given back is taken"
    );
}

/// A semaphore opened with 4 permits refuses a handle that asks for 8, with an
/// `InvalidInput` error that names the semaphore and both numbers, while accepting another
/// handle with 4; 0 permits are an `InvalidName`.
pub fn disagreeing_permits_are_refused<P: Permits>(open: impl Fn(u32) -> SimpleLockResult<P>) {
    let four = opened(&open, 4);
    let err = match open(8) {
        Err(err) => err,
        Ok(_) => panic!("a semaphore of 4 permits was opened with 8"),
    };
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(text.contains('4') && text.contains('8'), "{text}");
    if let Some(name) = err.name() {
        assert!(text.contains(name), "the error names the semaphore: {text}");
    }
    drop(opened(&open, 4));
    match open(0) {
        Err(SimpleLockError::InvalidName { .. }) => {}
        Err(other) => panic!("a semaphore of 0 permits: {other:?}"),
        Ok(_) => panic!("a semaphore of 0 permits was opened"),
    }
    drop(four);
}

/// A thread that holds both permits of a semaphore through two handles and waits for another
/// without end gets `WouldDeadlock`; once it gives one back, the wait takes that one.
pub fn holding_every_permit_would_deadlock<P: Permits>(open: impl Fn(u32) -> SimpleLockResult<P>) {
    let mut held: Vec<P> = (0..2).map(|_| opened(&open, 2)).collect();
    for handle in &mut held {
        handle.hang_lock().unwrap();
    }
    let mut third = opened(&open, 2);
    // The wait that must not start cannot be interrupted: a hang guard ends the test binary.
    let answered = Arc::new(AtomicBool::new(false));
    let guard = Arc::clone(&answered);
    std::thread::spawn(move || {
        std::thread::sleep(PATIENCE);
        if !guard.load(Ordering::SeqCst) {
            eprintln!(
                "permits check `holding_every_permit_would_deadlock` failed: hang_lock of a \
                 thread that holds every permit still waits after {PATIENCE:?} (it waits for \
                 itself)"
            );
            std::process::exit(101);
        }
    });
    let outcome = third.hang_lock();
    answered.store(true, Ordering::SeqCst);
    match outcome {
        Err(SimpleLockError::WouldDeadlock { .. }) => {}
        other => panic!("hang_lock of a thread that holds every permit: {other:?}"),
    }
    let given_back = held[1].held_permit();
    held[1].try_unlock().unwrap();
    third.hang_lock().unwrap();
    assert_eq!(third.held_permit(), given_back);
}
