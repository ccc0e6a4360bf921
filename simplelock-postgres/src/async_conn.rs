//! What the async waits of [`PostgresLock`](crate::PostgresLock) and
//! [`PostgresPermits`](crate::PostgresPermits) share (feature `tokio`): a request in flight on
//! a handle's connection, driven by the polls of the caller's task, and requests sent without
//! waiting for their answer. The design (the socket on the caller's runtime, a dropped request
//! followed by "release if mine") is argued in the module docs of `async_lock`; the permits'
//! wait uses it with tries woken by notifications (see [`crate::permits`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use simplelock_core::{SimpleLockError, SimpleLockResult};
use tokio_postgres::{Notification, Row};

use crate::conn::Conn;

/// The answer to a request of an async call.
pub(crate) type Answer = Result<Row, tokio_postgres::Error>;

/// A request of an async call in flight on a handle's connection, kept by the handle (a try
/// has no wait state to keep it in), with what it is (`W`).
pub(crate) struct InFlight<W> {
    pub(crate) what: W,
    /// In a mutex only so that the handle stays `Sync`; reached through `get_mut`.
    answer: Mutex<Pin<Box<dyn Future<Output = Answer> + Send>>>,
}

impl<W> InFlight<W> {
    /// The request `what`, whose answer `answer` gives; queued on the connection by its first
    /// poll ([`poll`](InFlight::poll)).
    pub(crate) fn new(what: W, answer: impl Future<Output = Answer> + Send + 'static) -> Self {
        InFlight {
            what,
            answer: Mutex::new(Box::pin(answer)),
        }
    }

    /// Polls the answer, driving `conn` in between (which writes the request and reads what
    /// came back), and gives each notification read to `notified`.
    pub(crate) fn poll(
        &mut self,
        conn: &Conn,
        cx: &mut Context<'_>,
        mut notified: impl FnMut(&Notification),
    ) -> Poll<Answer> {
        let answer = self.answer.get_mut().unwrap_or_else(|e| e.into_inner());
        // Its first poll queues the request; the drive writes it and reads what came back.
        let mut step = answer.as_mut().poll(cx);
        if step.is_pending() {
            conn.drive(cx, &mut notified);
            step = answer.as_mut().poll(cx);
        }
        step
    }
}

/// A request sent already, kept to wait for its answer later.
pub(crate) type Queued<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<W> InFlight<W> {
    /// The request's answer, to wait for it without the request's kind.
    pub(crate) fn into_answer(self) -> Queued<Answer> {
        self.answer.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Polls `request` once, which queues it on its connection, and keeps its answer (to be
/// awaited once).
pub(crate) fn queue_now<T: Send + 'static>(
    request: impl Future<Output = T> + Send + 'static,
) -> Queued<T> {
    let mut answer: Queued<T> = Box::pin(request);
    match answer
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(done) => Box::pin(std::future::ready(done)),
        Poll::Pending => answer,
    }
}

pub(crate) use crate::conn::{flush_now, send_now};

/// The connection of an async call, moved to this task's runtime: the error of a handle whose
/// connection ended (an async call does not reconnect, so as not to block) or of a poll outside
/// a tokio runtime.
pub(crate) fn bind_here<'c>(lock: &str, conn: Option<&'c Conn>) -> SimpleLockResult<&'c Conn> {
    let Some(conn) = conn.filter(|c| c.alive()) else {
        return Err(SimpleLockError::unknown(
            lock,
            "the connection ended; a blocking call (try_lock, outside the runtime) opens a \
             new one, which an async call does not, so as not to block",
            None,
        )
        .with_kind(std::io::ErrorKind::NotConnected));
    };
    conn.bind_here(lock)?;
    Ok(conn)
}
