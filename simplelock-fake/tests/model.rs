//! Property test: random operation sequences on several handles of one FakeLock agree with a
//! plain model of a lock (one holder at most, misuse errors, injected failures, deaths).

use std::time::Duration;

use proptest::prelude::*;
use simplelock_core::{LockStatus, PreviousHolder, SimpleLockError};
use simplelock_fake::FakeLock;

const HANDLES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    TryLock(usize),
    /// Waits only where the model says it will not block forever.
    HangLock(usize),
    TimedLock(usize),
    Unlock(usize),
    Status(usize),
    Replace(usize),
    Death,
    FailNextLock,
    FailNextUnlock,
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..HANDLES;
    prop_oneof![
        h.clone().prop_map(Op::TryLock),
        h.clone().prop_map(Op::HangLock),
        h.clone().prop_map(Op::TimedLock),
        h.clone().prop_map(Op::Unlock),
        h.clone().prop_map(Op::Status),
        h.prop_map(Op::Replace),
        Just(Op::Death),
        Just(Op::FailNextLock),
        Just(Op::FailNextUnlock),
    ]
}

#[derive(Debug, Default)]
struct Model {
    holder: Option<usize>,
    died: bool,
    fail_lock: bool,
    fail_unlock: bool,
    previous: [Option<PreviousHolder>; HANDLES],
    acquisitions: u64,
    lock_calls: u64,
    unlock_calls: u64,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    AlreadyLocked,
    TimedOut,
    AlreadyHeld,
    NotHeld,
    Injected,
}

fn outcome(result: Result<(), SimpleLockError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(SimpleLockError::AlreadyLocked { .. }) => Outcome::AlreadyLocked,
        Err(SimpleLockError::TimedOut { .. }) => Outcome::TimedOut,
        Err(SimpleLockError::AlreadyHeld { .. }) => Outcome::AlreadyHeld,
        Err(SimpleLockError::NotHeld { .. }) => Outcome::NotHeld,
        Err(SimpleLockError::UnknownError { .. }) => Outcome::Injected,
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

impl Model {
    /// What a lock attempt by `h` returns; `busy` is the outcome when another handle holds it.
    fn lock(&mut self, h: usize, busy: Outcome) -> Outcome {
        self.lock_calls += 1;
        if std::mem::take(&mut self.fail_lock) {
            return Outcome::Injected;
        }
        match self.holder {
            Some(holder) if holder == h => Outcome::AlreadyHeld,
            Some(_) => busy,
            None => {
                self.holder = Some(h);
                self.acquisitions += 1;
                self.previous[h] = Some(if std::mem::take(&mut self.died) {
                    PreviousHolder::Died
                } else {
                    PreviousHolder::Released
                });
                Outcome::Ok
            }
        }
    }

    fn unlock(&mut self, h: usize) -> Outcome {
        self.unlock_calls += 1;
        if std::mem::take(&mut self.fail_unlock) {
            return Outcome::Injected;
        }
        if self.holder == Some(h) {
            self.holder = None;
            Outcome::Ok
        } else {
            Outcome::NotHeld
        }
    }

    fn status(&self, h: usize) -> LockStatus {
        match self.holder {
            Some(holder) if holder == h => LockStatus::Mine,
            Some(_) => LockStatus::Taken,
            None => LockStatus::Open,
        }
    }
}

fn injected() -> SimpleLockError {
    SimpleLockError::unknown("fake", "injected", None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fake_lock_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let origin = FakeLock::default();
        let mut handles: Vec<FakeLock> = (0..HANDLES).map(|_| origin.clone()).collect();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::TryLock(h) => {
                    let expected = model.lock(h, Outcome::AlreadyLocked);
                    prop_assert_eq!(outcome(handles[h].try_lock()), expected);
                }
                Op::HangLock(h) => {
                    if model.holder.is_some_and(|holder| holder != h) && !model.fail_lock {
                        continue; // would wait forever in a single thread
                    }
                    let expected = model.lock(h, Outcome::AlreadyLocked);
                    prop_assert_eq!(outcome(handles[h].hang_lock()), expected);
                }
                Op::TimedLock(h) => {
                    let expected = model.lock(h, Outcome::TimedOut);
                    let got = handles[h].timed_lock(Duration::from_micros(200));
                    prop_assert_eq!(outcome(got), expected);
                }
                Op::Unlock(h) => {
                    let expected = model.unlock(h);
                    prop_assert_eq!(outcome(handles[h].unlock()), expected);
                }
                Op::Status(h) => {
                    prop_assert_eq!(handles[h].status().unwrap(), model.status(h));
                }
                Op::Replace(h) => {
                    // Dropping a handle releases what it holds; the new one holds nothing.
                    if model.holder == Some(h) {
                        model.holder = None;
                    }
                    model.previous[h] = None;
                    handles[h] = origin.clone();
                }
                Op::Death => {
                    if model.holder.take().is_some() {
                        model.died = true;
                    }
                    origin.simulate_holder_death();
                }
                Op::FailNextLock => {
                    model.fail_lock = true;
                    origin.fail_next_lock(injected());
                }
                Op::FailNextUnlock => {
                    model.fail_unlock = true;
                    origin.fail_next_unlock(injected());
                }
            }
            for (h, handle) in handles.iter().enumerate() {
                prop_assert_eq!(handle.status().unwrap(), model.status(h));
                let previous = model.previous[h].unwrap_or(PreviousHolder::Unknown);
                prop_assert_eq!(handle.previous_holder(), previous);
            }
            prop_assert_eq!(origin.is_locked(), model.holder.is_some());
            prop_assert_eq!(origin.acquisitions(), model.acquisitions);
            prop_assert_eq!(origin.lock_calls(), model.lock_calls);
            prop_assert_eq!(origin.unlock_calls(), model.unlock_calls);
        }
    }
}
