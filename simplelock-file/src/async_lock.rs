//! [`AsyncConcreteLock`] for [`FileLock`] (feature `tokio`): woken through the inotify
//! descriptor of the timed waits, which tokio's reactor watches, and tried with `LOCK_NB`.
//!
//! # The design, and why
//!
//! `flock` has no readiness event, and a blocking `flock` on a runtime worker stalls every
//! task of that worker; on a `spawn_blocking` thread it cannot be cancelled, and the thread
//! takes the lock later for a future that is gone. So an async waiter never calls a blocking
//! `flock`: it tries with `LOCK_NB` and sleeps until something happens to the file, exactly as
//! [`timed_lock`](simplelock_core::ConcreteLock::timed_lock) does (see "Timed waits" in the
//! crate docs) — only the sleep is different: the inotify instance is registered with tokio's
//! reactor ([`AsyncFd`]) instead of a `ppoll` on the thread. A release of a simplelock holder
//! rewrites the record (`IN_MODIFY`) and a holder that dies has its descriptor closed
//! (`IN_CLOSE_*`): both wake the task within microseconds.
//!
//! Releases that touch nothing (`flock -u`, a holder without a record) are caught by a tokio
//! timer that backs off from 1 ms to 50 ms (10 ms without inotify), as in the timed wait.
//!
//! Right after an event that announces a release (the record says `free`, or a descriptor
//! was closed), the unlock itself lands microseconds later: the task tries again, yielding to
//! the runtime between tries (a wake-up of itself, not a sleep), a bounded number of times,
//! then falls back to the timer.
//!
//! Cancel-safe: the lock is only taken by a `LOCK_NB` try inside a poll that returns
//! `Ready(Ok(()))`. The wait's state (the watch and the timer) belongs to the future; dropping
//! the future drops it, which removes the watch and gives the inotify instance back to the
//! pool. Nothing keeps running.
//!
//! Unlike [`hang_lock`](simplelock_core::ConcreteLock::hang_lock), an async wait never reports
//! `WouldDeadlock`: the tasks of one thread interleave, so another handle of the same thread
//! holding the lock will release it while this task waits.
//!
//! # Requirements
//!
//! Poll it inside a tokio runtime with IO and time enabled (`enable_all()`, as
//! `#[tokio::main]` and `#[tokio::test]` do): it panics elsewhere, as tokio's own IO does.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::time::{Instant, Sleep, sleep};
use simplelock_core::{AsyncConcreteLock, SimpleLockResult};

use super::{
    Announced, FIRST_PAUSE, FileLock, MAX_BLIND_PAUSE, MAX_DEAF, MAX_PAUSE, PAUSE_AFTER_EVENT,
    TRIES_AFTER_RELEASE,
};
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::sys;

/// The state of one async wait for a [`FileLock`]: the watch on the file and the timer.
#[derive(Debug)]
pub struct FileWait {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    watch: Option<::tokio::io::unix::AsyncFd<Watch>>,
    /// The file watched (device, inode): a replaced file gets a new watch.
    watched: (u64, u64),
    timer: Pin<Box<Sleep>>,
    /// The timer's current step while nothing happens.
    pause: Duration,
    /// Quick tries left after an event that announced a release.
    quick: u32,
    /// Zero, or how long to stay deaf after an event that did not bring the lock (doubles
    /// while such events keep coming: a holder writing the file).
    deaf: Duration,
    /// Events are ignored until the timer fires.
    deafened: bool,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "async_lock/watch.rs"]
mod watch;
#[cfg(any(target_os = "linux", target_os = "android"))]
use watch::Watch;

impl FileWait {
    fn new(lock: &FileLock) -> FileWait {
        FileWait::watching(lock.fd.file(), lock.managed, (lock.fd.dev, lock.fd.ino))
    }

    /// A wait on `file` (device and inode `watched`): an inotify watch registered with tokio's
    /// reactor (`writes`: notified of writes as well as closes), and the backoff timer.
    pub(crate) fn watching(file: &std::fs::File, writes: bool, watched: (u64, u64)) -> FileWait {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // An instance tokio cannot register leaves us with the timer.
        let watch = sys::Waiter::new(file, writes).and_then(watch::register);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (file, writes);
        FileWait {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            watch,
            watched,
            timer: Box::pin(sleep(FIRST_PAUSE)),
            pause: FIRST_PAUSE,
            quick: 0,
            deaf: Duration::ZERO,
            deafened: false,
        }
    }

    // The steps `FilePermits` takes (Linux and Android only).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    /// The file watched: (device, inode).
    pub(crate) fn watched(&self) -> (u64, u64) {
        self.watched
    }

    // The steps `FilePermits` takes (Linux and Android only).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    /// If quick tries are left after an event: uses one, wakes the task at once (a yield to
    /// the runtime, not a sleep) and says so.
    pub(crate) fn quick_try(&mut self, cx: &mut Context<'_>) -> bool {
        if self.quick == 0 {
            return false;
        }
        self.quick -= 1;
        cx.waker().wake_by_ref();
        true
    }

    // The steps `FilePermits` takes (Linux and Android only).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    /// After an event that may announce a release: `quick` tries at once, then the timer from
    /// `pause` on.
    pub(crate) fn after_event(&mut self, quick: u32, pause: Duration) {
        self.quick = quick;
        self.pause = pause;
    }

    // The steps `FilePermits` takes (Linux and Android only).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    /// Whether the backoff timer fired (re-armed twice as long, at most `longest` — or the
    /// blind bound `blind_longest` without inotify), registering the waker otherwise.
    pub(crate) fn backoff(
        &mut self,
        cx: &mut Context<'_>,
        longest: Duration,
        blind_longest: Duration,
    ) -> bool {
        let longest = if self.blind() { blind_longest } else { longest };
        let next = (self.pause * 2).min(longest);
        if self.poll_timer(cx, next) {
            self.pause = next;
            true
        } else {
            false
        }
    }

    fn blind(&self) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.watch.is_none();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return true;
    }

    /// Whether an event came (consumed), registering the waker for the next one otherwise.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(watch) = &self.watch {
            let mut woke = false;
            while let Poll::Ready(ready) = watch.poll_read_ready(cx) {
                match ready {
                    Ok(mut guard) => {
                        guard.get_inner().waiter().drain();
                        // Clears only the readiness this guard saw: an event that came after
                        // the drain keeps it set, and the next poll sees it.
                        guard.clear_ready();
                        woke = true;
                    }
                    // The reactor is shutting down: the timer still wakes us.
                    Err(_) => break,
                }
            }
            return woke;
        }
        let _ = cx;
        false
    }

    /// Whether the timer fired (and re-armed it `next` later), registering the waker otherwise.
    fn poll_timer(&mut self, cx: &mut Context<'_>, next: Duration) -> bool {
        if self.timer.as_mut().poll(cx).is_ready() {
            self.timer.as_mut().reset(Instant::now() + next);
            // Register the waker with the re-armed timer.
            let _ = self.timer.as_mut().poll(cx);
            true
        } else {
            false
        }
    }
}

impl AsyncConcreteLock for FileLock {
    type WaitState = FileWait;

    /// Tries with `LOCK_NB`; while someone else holds the lock, sleeps until the file changes
    /// (inotify, watched by tokio) or a backoff timer fires. See "Async waits" in the
    /// [crate docs](crate).
    ///
    /// # Panics
    /// Outside a tokio runtime with IO and time enabled.
    fn poll_lock(
        &mut self,
        state: &mut Option<FileWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        if state.is_none() {
            self.prepare_to_lock()?;
            if self.try_acquire()? {
                return Poll::Ready(Ok(()));
            }
            *state = Some(FileWait::new(self));
            // The first round below closes the race between the try and the watch.
        }
        let wait = state.as_mut().expect("set above");
        loop {
            if self.try_acquire()? {
                return Poll::Ready(Ok(()));
            }
            if self.moved_away() {
                self.reopen()?;
            }
            if (self.fd.dev, self.fd.ino) != wait.watched {
                // The file was replaced: watch the new one.
                *wait = FileWait::new(self);
                continue;
            }
            if wait.quick > 0 {
                // A release was announced: its unlock is microseconds away. Yield to the
                // runtime and try again at the next poll.
                wait.quick -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let event = !wait.deafened && wait.poll_event(cx);
            if event {
                let announced = self.release_announced();
                if announced != Announced::Held && wait.deaf.is_zero() {
                    wait.quick = TRIES_AFTER_RELEASE;
                }
                if announced == Announced::Free {
                    // A release another waiter may win: the handoff traffic of a busy lock.
                    wait.deaf = Duration::ZERO;
                } else {
                    wait.deaf = (wait.deaf * 2).clamp(PAUSE_AFTER_EVENT, MAX_DEAF);
                    wait.deafened = true;
                    wait.timer.as_mut().reset(Instant::now() + wait.deaf);
                }
                wait.pause = PAUSE_AFTER_EVENT;
                continue;
            }
            let longest = if wait.blind() {
                MAX_BLIND_PAUSE
            } else {
                MAX_PAUSE
            };
            let next = (wait.pause * 2).min(longest);
            if wait.poll_timer(cx, next) {
                if !wait.deafened {
                    wait.deaf = Duration::ZERO;
                }
                wait.deafened = false;
                wait.pause = next;
                continue;
            }
            return Poll::Pending;
        }
    }
}
