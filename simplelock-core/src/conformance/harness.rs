//! Running one check under its watchdog, and the verdict helpers the checks use.
//!
//! A check runs on a thread of its own, and every thread it starts is detached: when the
//! backend gets stuck, the check (or the watchdog) fails without waiting for the stuck thread,
//! which is left behind on keys no other check uses.

use std::fmt;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Backend, Failure};
use crate::{ConcreteLock, LockStatus, SimpleLockError, SimpleLockResult};

/// What a check knows: the backend, its own name, and the step it is at (for the watchdog).
pub(super) struct Ctx<H> {
    pub(super) backend: Backend<H>,
    pub(super) check: &'static str,
    /// The libtest name of the test that runs the check, to start children with.
    pub(super) test: String,
    /// How long an event may take to have its effect (a waiter woken, a lock freed by a death).
    pub(super) wake: Duration,
    /// A number of this run of the check, so that keys of two runs never meet.
    serial: usize,
    step: Arc<Mutex<String>>,
}

impl<H: ConcreteLock + Send + 'static> Ctx<H> {
    /// The key `part` of this check: the same `part` is the same lock within one run of the
    /// check, and no other check or run uses it.
    pub(super) fn key(&self, part: &str) -> String {
        format!("{}-{}-{part}", self.check, self.serial)
    }

    /// A new handle for `key`.
    #[track_caller]
    pub(super) fn open(&self, key: &str) -> H {
        (self.backend.open)(key).unwrap_or_else(|e| {
            broke(
                "the opener returns a handle for every key",
                format!("opening key {key:?} failed: {e} ({e:?})"),
            )
        })
    }

    /// A new shared handle for `key`.
    #[track_caller]
    pub(super) fn open_shared(&self, key: &str) -> H {
        let open = self
            .backend
            .open_shared
            .as_ref()
            .expect("the check runs only for backends that claim shared handles");
        open(key).unwrap_or_else(|e| {
            broke(
                "the shared opener returns a handle for every key",
                format!("opening a shared handle for key {key:?} failed: {e} ({e:?})"),
            )
        })
    }

    /// Records what the check does now, for the watchdog's verdict if it never finishes.
    pub(super) fn step(&self, what: impl Into<String>) {
        *self.step.lock().unwrap_or_else(PoisonError::into_inner) = what.into();
    }
}

/// Runs check `name` on a thread of its own and returns its verdict, or a verdict naming the
/// step it was stuck in after the backend's patience ran out.
pub(super) fn run<H: ConcreteLock + Send + 'static>(
    name: &'static str,
    test: &str,
    backend: Backend<H>,
) -> Result<(), Failure> {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let patience = backend.patience;
    let wake = backend.wake;
    let step = Arc::new(Mutex::new(String::from("starting")));
    let ctx = Ctx {
        backend,
        check: name,
        test: test.to_owned(),
        wake,
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        step: Arc::clone(&step),
    };
    let (tx, rx) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name(format!("conformance::{name}"))
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| super::checks::run(name, &ctx)));
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(Failure {
            check: name,
            message: format!("could not start the thread of the check: {e}"),
        });
    }
    match rx.recv_timeout(patience) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(payload)) => Err(Failure {
            check: name,
            message: panic_message(payload.as_ref()),
        }),
        Err(_) => Err(Failure {
            check: name,
            message: format!(
                "stuck: it did not finish within its patience of {patience:?}, while {} \
                 (a deadlock or a missed wake-up in the backend; the stuck thread is left behind)",
                step.lock().unwrap_or_else(PoisonError::into_inner)
            ),
        }),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else {
        "the check panicked with a value that is not a message".to_owned()
    }
}

/// Fails the check: `rule` of the contract was broken, and `did` is what the backend did.
#[track_caller]
pub(super) fn broke(rule: &str, did: impl fmt::Display) -> ! {
    let at = Location::caller();
    panic!("{rule}\n  the backend: {did}\n  (seen by the check at {at})")
}

/// The value of `result`, or a failure saying that `what` must succeed under `rule`.
#[track_caller]
pub(super) fn ok<T>(rule: &str, what: &str, result: SimpleLockResult<T>) -> T {
    result.unwrap_or_else(|e| broke(rule, format!("{what} failed: {e} ({e:?})")))
}

/// Fails unless `handle.status()` is `Ok(expected)`; `who` says which handle it is.
#[track_caller]
pub(super) fn expect_status<H: ConcreteLock>(
    rule: &str,
    who: &str,
    handle: &H,
    expected: LockStatus,
) {
    match handle.status() {
        Ok(status) if status == expected => {}
        Ok(status) => broke(
            rule,
            format!(
                "status() of {who} is {status:?} ({status}), expected {expected:?} ({expected})"
            ),
        ),
        Err(e) => broke(rule, format!("status() of {who} failed: {e} ({e:?})")),
    }
}

/// Fails unless `$result` is `Err(SimpleLockError::$variant { .. })`, and evaluates to the
/// error; `$what` says what call it was.
macro_rules! expect_err {
    ($rule:expr, $what:expr, $result:expr, $variant:ident) => {
        match $result {
            Err(err @ $crate::SimpleLockError::$variant { .. }) => err,
            Ok(value) => $crate::conformance::harness::broke(
                $rule,
                format!(
                    "{} succeeded ({value:?}), expected {} ",
                    $what,
                    stringify!($variant)
                ),
            ),
            Err(other) => $crate::conformance::harness::broke(
                $rule,
                format!(
                    "{} failed with {other:?} ({other}), expected {}",
                    $what,
                    stringify!($variant)
                ),
            ),
        }
    };
}
pub(super) use expect_err;

/// Fails unless `err` names a lock, and names this process as the holder if it names one.
#[track_caller]
pub(super) fn check_error_payload(what: &str, err: &SimpleLockError, holder_pid: u32) {
    let name = err.name().unwrap_or_default();
    if name.is_empty() {
        broke(
            "errors name the lock they are about",
            format!("{what} returned {err:?}, with an empty name"),
        );
    }
    if let Some(holder) = err.holder()
        && holder.pid != holder_pid
    {
        broke(
            "the holder reported, if any, is the process that holds the lock",
            format!(
                "{what} returned {err:?}, naming pid {} instead of {holder_pid}",
                holder.pid
            ),
        );
    }
}

/// A call running on a thread of its own, whose result is awaited with a bound.
pub(super) struct Pending<T> {
    rx: Receiver<thread::Result<T>>,
}

/// Runs `op` on a new detached thread.
pub(super) fn spawn<T: Send + 'static>(op: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(op)));
    });
    Pending { rx }
}

impl<T> Pending<T> {
    /// The result if the call finished within `wait`. A panic of the call goes on here.
    pub(super) fn within(&self, wait: Duration) -> Option<T> {
        match self.rx.recv_timeout(wait) {
            Ok(Ok(value)) => Some(value),
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                unreachable!("the thread sends before it ends")
            }
        }
    }

    /// The result, which must come within `wait`; otherwise `rule` was broken and `late` says
    /// what did not happen.
    #[track_caller]
    pub(super) fn expect_within(&self, wait: Duration, rule: &str, late: impl fmt::Display) -> T {
        match self.within(wait) {
            Some(value) => value,
            None => broke(rule, format!("{late} (still waiting after {wait:?})")),
        }
    }

    /// Fails if the call finishes within `wait`: `rule` says why it must not, `early` what it
    /// would mean. The call's result must be a tuple whose first field is what the backend
    /// returned.
    #[track_caller]
    pub(super) fn expect_still_running(&self, wait: Duration, rule: &str, early: &str)
    where
        T: Returned,
    {
        if let Some(value) = self.within(wait) {
            broke(rule, format!("{early} (it returned {})", value.returned()));
        }
    }
}

/// Measures how long `op` takes.
pub(super) fn timed<T>(op: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = op();
    (value, start.elapsed())
}

/// What a backend call running in a [`Pending`] returned, for a verdict.
pub(super) trait Returned {
    fn returned(&self) -> String;
}

impl<R: fmt::Debug, H> Returned for (R, H) {
    fn returned(&self) -> String {
        format!("{:?}", self.0)
    }
}

impl<R: fmt::Debug, I, H> Returned for (R, I, H) {
    fn returned(&self) -> String {
        format!("{:?}", self.0)
    }
}
