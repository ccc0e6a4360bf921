//! [`Wait`]: how long one acquisition may wait, and the deadline arithmetic, written once.

use std::thread;
use std::time::{Duration, Instant};

use crate::{Holder, SimpleLockError};

/// How long an acquisition may wait: not at all, as long as it takes, for a while, or until a
/// point in time.
///
/// Every part of simplelock that decides how long to wait speaks this type: the
/// [`LockBuilder`](crate::LockBuilder) stores one, the default
/// [`ConcreteLock::timed_lock`](crate::ConcreteLock::timed_lock) polls with one, and backends
/// and tools use its arithmetic instead of their own. Times are on the monotonic clock
/// ([`Instant`]): changing the system time neither shortens nor extends a wait.
///
/// [`For`](Wait::For) is a wait that has not started: it becomes a deadline when
/// [`start`](Wait::start) is called (when the acquisition begins), so one value can configure
/// many acquisitions. [`Until`](Wait::Until) is a started one.
///
/// Nothing here panics or overflows: a timeout too long for the clock to hold a deadline for
/// ([`Duration::MAX`], say) is the same as waiting [`Forever`](Wait::Forever).
///
/// ```
/// use std::time::Duration;
/// use simplelock_core::Wait;
///
/// let wait = Wait::For(Duration::from_secs(5)).start(); // the acquisition begins
/// assert!(!wait.is_expired());
/// assert!(wait.remaining().unwrap() <= Duration::from_secs(5));
/// // Sleep at most 10 ms at a time, never past the deadline:
/// assert!(wait.sleep_slice(Duration::from_millis(10)).unwrap() <= Duration::from_millis(10));
///
/// assert_eq!(Wait::For(Duration::MAX).start(), Wait::Forever);
/// assert_eq!(Wait::Try.sleep_slice(Duration::from_millis(10)), None); // give up at once
/// ```
///
/// # For implementors
///
/// A backend's waiting loop reads the clock only through this type:
///
/// 1. `let wait = wait.start();` once, when the acquisition begins (on the slow path only, if
///    the fast path must read no clock);
/// 2. try; if the lock is taken, [`sleep_slice(step)`](Wait::sleep_slice) says how long to sleep
///    next — at most `step`, never past the deadline — or `None`: out of time, so return
///    [`out_of_time(name, holder)`](Wait::out_of_time), which is
///    [`AlreadyLocked`](SimpleLockError::AlreadyLocked) for [`Try`](Wait::Try) and
///    [`TimedOut`](SimpleLockError::TimedOut) with the timeout that was asked for otherwise;
/// 3. after a wake-up (a release, a signal, a spurious wake), go back to 2: the deadline is
///    fixed, so a signal neither ends nor extends the wait.
///
/// A wait cut into slices this way makes one last try at the deadline, since the last slice
/// ends exactly there. Treat [`Forever`](Wait::Forever) as "no deadline", not as a very long
/// one: it is the only kind of wait that can never end, so it is where a backend that can see a
/// self-deadlock should refuse to wait
/// ([`WouldDeadlock`](SimpleLockError::WouldDeadlock)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Wait {
    /// Do not wait: try once.
    Try,
    /// Wait as long as it takes.
    #[default]
    Forever,
    /// Wait at most this long, counted from when the acquisition [starts](Wait::start).
    For(Duration),
    /// Wait until `deadline` at most. Make one with [`Wait::until`] or [`Wait::start`].
    #[non_exhaustive]
    Until {
        /// When to give up, on the monotonic clock.
        deadline: Instant,
        /// The timeout that was asked for, for the error that says how long the call waited.
        timeout: Duration,
    },
}

impl Wait {
    /// Wait until `deadline` at most; the timeout an error reports is the time left from now.
    pub fn until(deadline: Instant) -> Wait {
        Wait::Until {
            deadline,
            timeout: deadline.saturating_duration_since(Instant::now()),
        }
    }

    /// The same wait, started now: [`For`](Wait::For) becomes [`Until`](Wait::Until) a
    /// deadline `timeout` from now, or [`Forever`](Wait::Forever) if the clock cannot hold
    /// that deadline. The other kinds are already started and stay as they are.
    #[must_use]
    pub fn start(self) -> Wait {
        match self {
            Wait::For(timeout) => match Instant::now().checked_add(timeout) {
                Some(deadline) => Wait::Until { deadline, timeout },
                None => Wait::Forever,
            },
            started => started,
        }
    }

    /// The timeout that was asked for: `Some` for [`For`](Wait::For) and
    /// [`Until`](Wait::Until), `None` for [`Try`](Wait::Try) and [`Forever`](Wait::Forever).
    pub fn timeout(&self) -> Option<Duration> {
        match *self {
            Wait::For(timeout) | Wait::Until { timeout, .. } => Some(timeout),
            Wait::Try | Wait::Forever => None,
        }
    }

    /// The deadline, for a started wait with one.
    pub fn deadline(&self) -> Option<Instant> {
        match *self {
            Wait::Until { deadline, .. } => Some(deadline),
            Wait::Try | Wait::Forever | Wait::For(_) => None,
        }
    }

    /// How much longer the acquisition may wait: `None` for [`Forever`](Wait::Forever), zero
    /// for [`Try`](Wait::Try) and for a deadline that has passed. A [`For`](Wait::For) that
    /// has not started has all of its timeout left.
    pub fn remaining(&self) -> Option<Duration> {
        match *self {
            Wait::Try => Some(Duration::ZERO),
            Wait::Forever => None,
            Wait::For(timeout) => Some(timeout),
            Wait::Until { deadline, .. } => {
                Some(deadline.saturating_duration_since(Instant::now()))
            }
        }
    }

    /// Whether the acquisition must give up now rather than wait: always for
    /// [`Try`](Wait::Try), never for [`Forever`](Wait::Forever), once the deadline is reached
    /// for [`Until`](Wait::Until).
    pub fn is_expired(&self) -> bool {
        self.remaining().is_some_and(|left| left.is_zero())
    }

    /// How long to sleep before the next try, at most `step`: the time left if that is
    /// shorter, `step` when waiting [`Forever`](Wait::Forever), and `None` when the wait is
    /// over (give up with [`out_of_time`](Wait::out_of_time)).
    pub fn sleep_slice(&self, step: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(step),
            Some(left) if left.is_zero() => None,
            Some(left) => Some(step.min(left)),
        }
    }

    /// Sleeps for [`sleep_slice(step)`](Wait::sleep_slice) and returns `true`, or returns
    /// `false` at once when the wait is over.
    pub fn sleep(&self, step: Duration) -> bool {
        match self.sleep_slice(step) {
            Some(nap) => {
                thread::sleep(nap);
                true
            }
            None => false,
        }
    }

    /// The error for an acquisition of `name` that this wait let go no further, `holder`
    /// holding the lock: [`AlreadyLocked`](SimpleLockError::AlreadyLocked) for
    /// [`Try`](Wait::Try), else [`TimedOut`](SimpleLockError::TimedOut) with the timeout that
    /// was asked for ([`Duration::MAX`] for a wait [`Forever`](Wait::Forever), which a caller
    /// cut short).
    pub fn out_of_time(&self, name: impl Into<String>, holder: Option<Holder>) -> SimpleLockError {
        match *self {
            Wait::Try => SimpleLockError::already_locked(name, holder),
            Wait::Forever => SimpleLockError::timed_out(name, Duration::MAX, holder),
            Wait::For(timeout) | Wait::Until { timeout, .. } => {
                SimpleLockError::timed_out(name, timeout, holder)
            }
        }
    }
}

/// An exponential backoff for waits that have nothing better than sleeping: each
/// [`next`](Backoff::next) doubles the sleep, from `first` up to `max`, cut to the time the
/// [`Wait`] has left.
///
/// ```
/// use std::time::Duration;
/// use simplelock_core::{Backoff, Wait};
///
/// let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
/// let wait = Wait::Forever;
/// let naps: Vec<_> = (0..4).map(|_| backoff.next(&wait).unwrap()).collect();
/// assert_eq!(naps, [1, 2, 4, 4].map(Duration::from_millis));
/// assert_eq!(backoff.next(&Wait::Try), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff whose first sleep is `first` and whose sleeps never exceed `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first.min(max),
            max,
        }
    }

    /// The next sleep, cut to what `wait` has left, or `None` if `wait` is over. The sleep
    /// after it doubles (up to the maximum).
    pub fn next(&mut self, wait: &Wait) -> Option<Duration> {
        let nap = wait.sleep_slice(self.next)?;
        self.next = self.next.saturating_mul(2).min(self.max);
        Some(nap)
    }

    /// Start again from `first` (after an event that makes a release likely soon).
    pub fn reset(&mut self, first: Duration) {
        self.next = first.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_mean_forever_and_never_panic() {
        for huge in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::new(u64::MAX, 0),
        ] {
            let wait = Wait::For(huge).start();
            assert_eq!(wait, Wait::Forever);
            assert_eq!(wait.remaining(), None);
            assert!(!wait.is_expired());
            assert_eq!(wait.sleep_slice(Duration::MAX), Some(Duration::MAX));
        }
        let mut backoff = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(backoff.next(&Wait::Forever), Some(Duration::MAX));
        assert_eq!(backoff.next(&Wait::Forever), Some(Duration::MAX));
    }

    #[test]
    fn a_started_wait_counts_down_to_its_deadline() {
        let wait = Wait::For(Duration::from_secs(3600)).start();
        let Wait::Until { deadline, timeout } = wait else {
            panic!("not started: {wait:?}");
        };
        assert_eq!(timeout, Duration::from_secs(3600));
        assert_eq!(wait.deadline(), Some(deadline));
        let left = wait.remaining().unwrap();
        assert!(
            left <= timeout && left > Duration::from_secs(3500),
            "{left:?}"
        );
        assert_eq!(
            wait.sleep_slice(Duration::from_millis(5)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(wait.start(), wait, "starting twice moves nothing");
    }

    #[test]
    fn past_deadlines_and_try_are_expired() {
        let past = Wait::until(Instant::now());
        assert!(past.is_expired());
        assert_eq!(past.sleep_slice(Duration::from_secs(1)), None);
        assert!(!past.sleep(Duration::from_secs(1)));
        assert!(Wait::Try.is_expired());
        assert!(Wait::For(Duration::ZERO).is_expired());
        assert!(Wait::For(Duration::ZERO).start().is_expired());
        assert!(!Wait::Forever.is_expired());
    }

    #[test]
    fn out_of_time_is_already_locked_for_try_and_timed_out_otherwise() {
        let holder = Some(Holder::new(7));
        let err = Wait::Try.out_of_time("x", holder.clone());
        assert!(
            matches!(&err, SimpleLockError::AlreadyLocked { .. }),
            "{err:?}"
        );
        assert_eq!(err.holder(), holder.as_ref());
        let asked = Duration::from_millis(1500);
        for wait in [Wait::For(asked), Wait::For(asked).start()] {
            match wait.out_of_time("x", None) {
                SimpleLockError::TimedOut { timeout, .. } => assert_eq!(timeout, asked),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            Wait::Forever.out_of_time("x", None),
            SimpleLockError::TimedOut {
                timeout: Duration::MAX,
                ..
            }
        ));
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_stops_at_the_deadline() {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(3));
        let wait = Wait::For(Duration::from_millis(2));
        assert_eq!(backoff.next(&wait), Some(Duration::from_millis(1)));
        assert_eq!(backoff.next(&wait), Some(Duration::from_millis(2)));
        assert_eq!(
            backoff.next(&wait),
            Some(Duration::from_millis(2)),
            "cut to what is left"
        );
        assert_eq!(backoff.next(&Wait::Forever), Some(Duration::from_millis(3)));
        backoff.reset(Duration::from_millis(1));
        assert_eq!(backoff.next(&Wait::Forever), Some(Duration::from_millis(1)));
        assert_eq!(backoff.next(&Wait::until(Instant::now())), None);
    }
}
