//! [`AsyncConcreteLock`] for [`FilePermits`] (feature `tokio`): tried with `F_OFD_SETLK` (which
//! never waits), woken through an inotify watch on the semaphore's file that tokio's reactor
//! watches — the blocking wait's design (see "Waiting without polling" in the module docs of
//! `permits`), with the sleep on the reactor instead of the thread, and the watch and timer of
//! `FileLock`'s async wait ([`FileWait`]).
//!
//! - A release writes the wake-up byte after its unlock (`IN_MODIFY`); a holder that dies has
//!   its descriptor closed (`IN_CLOSE_WRITE`), just before the kernel drops its locks: after
//!   an event, the task tries again a few times at once, yielding to the runtime in between,
//!   then falls back to a timer that backs off from 1 ms to 250 ms (10 ms without inotify) —
//!   the safety net for a release that writes nothing.
//! - Cancel-safe: a permit is only taken by a `F_OFD_SETLK` inside a poll that returns
//!   `Ready(Ok(()))`. The wait's state (the watch and the timer) belongs to the future;
//!   dropping the future drops it. Nothing keeps running.
//! - Unlike `hang_lock`, an async wait never reports `WouldDeadlock`: the tasks of one thread
//!   interleave, so another handle of this thread holding a permit may give it back while this
//!   task waits.
//!
//! Poll it inside a tokio runtime with IO and time enabled: it panics elsewhere, as tokio's own
//! IO does.

use std::task::{Context, Poll};
use std::time::Duration;

use simplelock_core::{AsyncConcreteLock, SimpleLockResult, Wait};

use super::{FilePermits, POLL_MAX, WAKE_MAX};
use crate::lock::FileWait;

/// How many tries at once follow an event: a dead holder's locks are dropped microseconds after
/// its close is notified.
const QUICK_TRIES: u32 = 16;

/// The timer's step right after an event whose quick tries found nothing.
const PAUSE_AFTER_EVENT: Duration = Duration::from_micros(100);

impl FilePermits {
    fn new_wait(&self) -> FileWait {
        FileWait::watching(self.fd.file(), true, (self.fd.dev, self.fd.ino))
    }
}

impl AsyncConcreteLock for FilePermits {
    type WaitState = FileWait;

    /// Tries every permit; while all are held, sleeps until the file changes (inotify, watched
    /// by tokio) or a backoff timer fires (see "Async waits" in the [crate docs](crate)).
    ///
    /// # Panics
    /// Outside a tokio runtime with IO and time enabled.
    fn poll_lock(
        &mut self,
        state: &mut Option<FileWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        if state.is_none() {
            // A bounded wait as far as `WouldDeadlock` goes: see the module docs.
            self.prepare_to_take(Wait::Try)?;
            if self.try_take()? {
                return Poll::Ready(Ok(()));
            }
            // Watch, then try again below: a release between the try and the watch is seen.
            *state = Some(self.new_wait());
        }
        let wait = state.as_mut().expect("set above");
        loop {
            if self.try_take()? {
                return Poll::Ready(Ok(()));
            }
            if wait.watched() != (self.fd.dev, self.fd.ino) {
                // The try opened the path again (the file was replaced): watch the new one.
                *wait = self.new_wait();
                continue;
            }
            if wait.quick_try(cx) {
                return Poll::Pending;
            }
            if wait.poll_event(cx) {
                wait.after_event(QUICK_TRIES, PAUSE_AFTER_EVENT);
                continue;
            }
            if wait.backoff(cx, WAKE_MAX, POLL_MAX) {
                continue;
            }
            return Poll::Pending;
        }
    }
}
