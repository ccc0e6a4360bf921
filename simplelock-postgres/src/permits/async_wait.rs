//! [`AsyncConcreteLock`] for [`PostgresPermits`] (feature `tokio`): `lock_async().await` on
//! the caller's tokio runtime, cancel-safe, without blocking a worker.
//!
//! It shares [`PostgresLock`](crate::PostgresLock)'s async machinery (`async_conn`; the
//! design of the socket on the caller's runtime is argued in `async_lock`), with the blocking
//! wait's wake-ups of the [module docs](super) — not the lock's wait in the server, which
//! cannot wait for any one of N keys:
//!
//! - the connection's socket moves to the caller's runtime and is driven by the polls of the
//!   lock future itself; nothing is spawned, no thread blocks;
//! - a wait goes through the permits one `pg_try_advisory_lock` at a time (the permit named by
//!   the latest notification first, then in order), never waiting in the server;
//! - while all are held it sleeps until a notification arrives on the semaphore's channel
//!   (every release of a permit, blocking or async, announces itself; the session listens
//!   from the first round that found every permit taken, with another round right behind the
//!   `LISTEN`, to the end of the wait) or [`SLICE`](super::SLICE) passes (for holders that died, whose release
//!   announces nothing). A notification read while a try is in flight makes the wait go
//!   through the permits again at once, so no release is missed between a failed round and the
//!   sleep.
//!
//! # Cancel-safety
//!
//! Between two polls, the only request of the wait that can be on its way is one try, of one
//! permit: a wait sends the next try only after the answer to the last. When the future is
//! dropped, [`cancel_wait`](AsyncConcreteLock::cancel_wait) queues, on the same connection and
//! before returning, `UNLOCK_IF_MINE` for that permit's key — released (and announced to the
//! other waiters) if this session holds it — and writes it to the socket without waiting. The
//! server runs a session's statements in order, so a grant to a dropped future lasts one
//! statement; the handle held no permit before the try (`AlreadyHeld` otherwise), so one unlock
//! is exactly right. If the connection breaks instead, the server ends the session and
//! releases everything it held. The same holds for a timed wait that ran out, and for a
//! dropped `try_lock_async`.
//!
//! # Releasing, limits
//!
//! As for the lock: `unlock().await` sends the release (unlock and notify) and awaits the
//! answer, with the errors of `try_unlock`; a guard dropped inside a runtime writes the release
//! to the socket at once without waiting for its answer. The handle is opened, and reconnected
//! after its connection ended, by the blocking calls only (an async call on an ended connection
//! fails with `NotConnected`); `AlreadyLocked` and `TimedOut` from the async calls do not name
//! a holder; an async wait never reports `WouldDeadlock` (the tasks of one thread interleave, so
//! another handle of this thread may give its permit back meanwhile).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use simplelock_core::{AsyncConcreteLock, Permits, SimpleLockError, SimpleLockResult, Wait};
use tokio::time::{Sleep, sleep};
use tokio_postgres::Notification;

use super::{PostgresPermits, SLICE};
use crate::async_conn::{self, Answer, send_now};
use crate::{error, holder, key};

/// A request of an async call in flight on the handle's connection.
pub(crate) type InFlight = async_conn::InFlight<Request>;

/// What is in flight.
pub(crate) enum Request {
    /// A try of `permit`; `rest`: the permits still to try in this round, the next last.
    Try { permit: u32, rest: Vec<u32> },
    /// The release of the permit held.
    Unlock,
}

/// The state of one async wait for a [`PostgresPermits`]: the timer between rounds of tries,
/// and what the notifications said since the last round began.
#[derive(Debug)]
pub struct PostgresPermitsWait {
    timer: Option<Pin<Box<Sleep>>>,
    /// A release was announced since the last round began.
    notified: bool,
    /// The permit the latest announcement named: the next round tries it first.
    hint: Option<u32>,
}

impl PostgresPermitsWait {
    /// Takes in notification `n` if it is of `channel` (of a semaphore of `permits`).
    fn note(&mut self, channel: &str, permits: u32, n: &Notification) {
        if n.channel() == channel {
            self.notified = true;
            if let Some(permit) = n.payload().parse::<u32>().ok().filter(|&p| p < permits) {
                self.hint = Some(permit);
            }
        }
    }
}

impl PostgresPermits {
    /// What every async acquisition does first: the checks of the blocking calls (but
    /// `WouldDeadlock`, see the module docs) and the socket moved to this runtime.
    fn begin_async(&mut self) -> SimpleLockResult<()> {
        self.check_owner()?;
        let permits = self.permits();
        self.held.before_acquire(&self.name, permits, Wait::Try)?;
        // A request left by a dropped unlock: sent already, its answer is of no interest.
        self.in_flight = None;
        async_conn::bind_here(&self.name, self.session.as_ref().map(|s| &s.conn))?;
        Ok(())
    }

    /// Starts a round of tries through `order` (the blocking calls' notifications so far are
    /// of releases it sees).
    fn start_round(&mut self, order: impl Iterator<Item = u32>) {
        let mut rest: Vec<u32> = order.collect();
        rest.reverse();
        let permit = rest.pop().expect("a semaphore has a permit");
        self.send_try(permit, rest);
    }

    /// Queues the try of `permit` on the connection (sent by the next drive).
    fn send_try(&mut self, permit: u32, rest: Vec<u32>) {
        let session = self.session.as_ref().expect("begin_async checked it");
        let client = session.conn.shared_client();
        let stmt = session.try_take.clone();
        let key = self.keys[permit as usize];
        let base = holder::app_base();
        self.in_flight = Some(InFlight::new(Request::Try { permit, rest }, async move {
            client.query_one(&stmt, &[&key, &base]).await
        }));
    }

    /// Drives the connection and polls the request in flight, giving the notifications read
    /// to `wait` (if any). Ready: the request, and its answer.
    fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
        mut wait: Option<&mut PostgresPermitsWait>,
    ) -> Poll<(Request, Answer)> {
        let permits = self.permits();
        let (Some(session), Some(flight)) = (self.session.as_ref(), self.in_flight.as_mut()) else {
            unreachable!("a request is in flight on a connection");
        };
        let channel = &self.channel;
        let answer = ready!(flight.poll(&session.conn, cx, |n| {
            if let Some(wait) = wait.as_deref_mut() {
                wait.note(channel, permits, n);
            }
        }));
        let flight = self.in_flight.take().expect("polled above");
        Poll::Ready((flight.what, answer))
    }

    /// The answer to a try of `permit`: the caller's result if it is one (granted, or an
    /// error), `None` if the permit is taken.
    fn tried(&mut self, permit: u32, answer: Answer) -> Option<SimpleLockResult<()>> {
        let row = match answer {
            Ok(row) => row,
            Err(e) => return Some(Err(error::query_error(&self.name, "trying a permit", e))),
        };
        match self.took(permit, &row) {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err((granted, err)) => {
                let session = self.session.take().expect("a try ran on it");
                if granted {
                    // Not our session: release there what we just took, and give up on it.
                    let client = session.conn.shared_client();
                    let stmt = session.release.clone();
                    let (key, channel) = (self.keys[permit as usize], self.channel.clone());
                    send_now(async move { client.query(&stmt, &[&key, &channel, &"-"]).await });
                    async_conn::flush_now(&session.conn);
                }
                Some(Err(err))
            }
        }
    }

    /// Writes what is queued on the connection without waiting; drops a connection found
    /// broken (closing it releases what its session held).
    fn flush_now(&mut self) {
        if self
            .session
            .as_ref()
            .is_some_and(|s| !async_conn::flush_now(&s.conn))
        {
            self.session = None;
        }
    }

    /// The first half of every async release: forget the permit (`NotHeld` if there is none),
    /// and say what to release.
    fn start_async_release(&mut self) -> SimpleLockResult<(i64, String)> {
        self.check_owner()?;
        let Some(permit) = self.held.permit() else {
            return Err(SimpleLockError::not_held(&self.name));
        };
        self.held.gave_back();
        Ok((self.keys[permit as usize], permit.to_string()))
    }

    /// Queues the release of `key` (announced with `payload`), on a live connection; `false`
    /// if there is none.
    fn send_release(&mut self, key: i64, payload: String, keep: bool) -> bool {
        let Some(session) = self.session.as_ref().filter(|s| s.conn.alive()) else {
            return false;
        };
        let client = session.conn.shared_client();
        let stmt = session.release.clone();
        let channel = self.channel.clone();
        let answer = async move { client.query_one(&stmt, &[&key, &channel, &payload]).await };
        if keep {
            self.in_flight = Some(InFlight::new(Request::Unlock, answer));
        } else {
            send_now(answer);
        }
        true
    }
}

impl AsyncConcreteLock for PostgresPermits {
    type WaitState = PostgresPermitsWait;

    fn poll_lock(
        &mut self,
        state: &mut Option<PostgresPermitsWait>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        if state.is_none() {
            if let Err(e) = self.begin_async() {
                return Poll::Ready(Err(e));
            }
            *state = Some(PostgresPermitsWait {
                timer: None,
                notified: true, // a round at once
                hint: self.take_hint(),
            });
        }
        let wait = state.as_mut().expect("set above");
        loop {
            if self.in_flight.is_none() {
                // Between rounds: read the notifications, look at the timer.
                let (permits, channel) = (self.permits(), &self.channel);
                if let Some(session) = self.session.as_ref() {
                    session.conn.drive(cx, |n| wait.note(channel, permits, n));
                }
                let timer_done = wait
                    .timer
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if !(wait.notified || timer_done) {
                    return Poll::Pending;
                }
                wait.notified = false;
                wait.timer = None;
                let order = self.order(wait.hint.take());
                self.start_round(order);
            }
            let (request, answer) = ready!(self.poll_answer(cx, Some(wait)));
            let Request::Try { permit, mut rest } = request else {
                unreachable!("a wait sends tries only");
            };
            if let Some(done) = self.tried(permit, answer) {
                // Granted or failed: the session stops listening (written at once, so that
                // it runs while this handle holds, on no handoff's way).
                self.stop_listening();
                return Poll::Ready(done);
            }
            match rest.pop() {
                Some(next) => self.send_try(next, rest),
                // Every permit taken, and the session not listening yet: listen, and another
                // round at once with the LISTEN ahead of its first try, which sees a release
                // between the two rounds.
                None if self.queue_listening(true) => wait.notified = true,
                // Sleep until a release is announced or the slice ends.
                None => wait.timer = Some(Box::pin(sleep(SLICE))),
            }
        }
    }

    fn cancel_wait(&mut self) {
        let flight = self.in_flight.take();
        // A try in flight may have been granted: release it right behind, if it was (module
        // docs, "Cancel-safety").
        if let Some(flight) = flight
            && let Request::Try { permit, .. } = flight.what
            && let Some(session) = self.session.as_ref().filter(|s| s.conn.alive())
        {
            let client = session.conn.shared_client();
            let stmt = session.unlock_if_mine.clone();
            let key = self.keys[permit as usize];
            let (hi, lo) = key::pg_locks_halves(key);
            let (channel, payload) = (self.channel.clone(), permit.to_string());
            send_now(async move {
                client
                    .query(&stmt, &[&key, &channel, &payload, &hi, &lo])
                    .await
            });
            drop(flight);
        }
        self.stop_listening();
        self.flush_now();
    }

    fn poll_try_lock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        if !matches!(&self.in_flight, Some(f) if matches!(f.what, Request::Try { .. })) {
            if let Err(e) = self.begin_async() {
                return Poll::Ready(Err(e));
            }
            let order = self.order(self.take_hint());
            self.start_round(order);
        }
        loop {
            let (request, answer) = ready!(self.poll_answer(cx, None));
            let Request::Try { permit, mut rest } = request else {
                unreachable!("checked above");
            };
            if let Some(done) = self.tried(permit, answer) {
                return Poll::Ready(done);
            }
            match rest.pop() {
                Some(next) => self.send_try(next, rest),
                None => {
                    return Poll::Ready(Err(SimpleLockError::already_locked(&self.name, None)));
                }
            }
        }
    }

    fn poll_unlock(&mut self, cx: &mut Context<'_>) -> Poll<SimpleLockResult<()>> {
        if !matches!(&self.in_flight, Some(f) if matches!(f.what, Request::Unlock)) {
            let (key, payload) = match self.start_async_release() {
                Ok(release) => release,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let bound = self
                .session
                .as_ref()
                .is_some_and(|s| s.conn.bind_here(&self.name).is_ok());
            if !(bound && self.send_release(key, payload, true)) {
                return Poll::Ready(self.finish_release(None));
            }
        }
        let (_, answer) = ready!(self.poll_answer(cx, None));
        Poll::Ready(self.finish_release(Some(answer)))
    }

    fn release_on_drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            let _ = simplelock_core::ConcreteLock::try_unlock(self);
            return;
        }
        let Ok((key, payload)) = self.start_async_release() else {
            return;
        };
        // A request of a dropped `unlock().await`: superseded.
        self.in_flight = None;
        if self.send_release(key, payload, false) {
            self.flush_now();
        } else {
            // Closing the connection releases what its session held.
            self.session = None;
        }
    }
}
