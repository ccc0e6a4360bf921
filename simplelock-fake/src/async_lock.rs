//! [`AsyncConcreteLock`] for [`FakeLock`]: async waiters keep their wakers in the lock's state,
//! and every release wakes them all (as the blocking waiters' condition variable is notified).
//!
//! Nothing blocks: the state's mutex is held for a few instructions. Cancel-safe: the lock is
//! taken only inside a poll that returns `Ready(Ok(()))`; a dropped future's waker is removed
//! by `cancel_wait` (and a stale one would only cost one spurious wake-up).

use std::task::{Context, Poll, Waker};

use simplelock_core::{AsyncConcreteLock, SimpleLockError, SimpleLockResult};

use crate::{FakeLock, State, take};

/// Wakes every async waiter: the lock was released.
pub(crate) fn wake_all(state: &mut State) {
    for (_, waker) in state.wakers.drain(..) {
        waker.wake();
    }
}

impl FakeLock {
    fn forget_waker(state: &mut State, id: u64) {
        state.wakers.retain(|(waiter, _)| *waiter != id);
    }
}

impl AsyncConcreteLock for FakeLock {
    /// The waker lives in the lock's state, keyed by the handle.
    type WaitState = ();

    /// Takes the lock if it is free; otherwise keeps `cx`'s waker until the next release.
    /// Each poll counts as a lock call, and the injected lock error ends the wait.
    fn poll_lock(
        &mut self,
        _: &mut Option<()>,
        cx: &mut Context<'_>,
    ) -> Poll<SimpleLockResult<()>> {
        let mut state = self.state();
        state.lock_calls += 1;
        if let Some(error) = state.fail_next_lock.take() {
            FakeLock::forget_waker(&mut state, self.id);
            return Poll::Ready(Err(error));
        }
        if state.holder == Some(self.id) {
            return Poll::Ready(Err(SimpleLockError::already_held(self.name())));
        }
        if state.holder.is_some() {
            let id = self.id;
            match state.wakers.iter_mut().find(|(waiter, _)| *waiter == id) {
                Some((_, waker)) => waker.clone_from(cx.waker()),
                None => state.wakers.push((id, Waker::clone(cx.waker()))),
            }
            return Poll::Pending;
        }
        FakeLock::forget_waker(&mut state, self.id);
        let previous = take(&mut state, self.id);
        drop(state);
        self.previous = previous;
        Poll::Ready(Ok(()))
    }

    fn cancel_wait(&mut self) {
        let mut state = self.state();
        FakeLock::forget_waker(&mut state, self.id);
    }
}
