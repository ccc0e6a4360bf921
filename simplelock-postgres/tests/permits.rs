//! PostgresPermits against the real server: with one permit it is a lock and passes the
//! conformance suite of simplelock-core (across processes, crash-safe, the holder's pid; not
//! `reports_deaths`: the server keeps no trace of how a session let go); with N permits, status,
//! holders, a disagreeing N, a thread holding them all, a forked child, a lost permit; with
//! feature `tokio`, the async checks of the suite and an async wait for one of N permits.
//! (8 processes contending for 3 permits with holders SIGKILLed are in the facade's
//! `tests/permits.rs`, for every backend at once.)

use simplelock_core::conformance::run_id;
use simplelock_core::{ConcreteLock, Permits, SimpleLockError, SimpleLockResult};
use simplelock_postgres::{LockLost, PostgresPermits};

mod common;

fn name(key: &str) -> String {
    format!("simplelock-test-{}-permits-{key}", run_id())
}

fn open(key: &str) -> SimpleLockResult<PostgresPermits> {
    PostgresPermits::options()
        .with_url(common::url())
        .named(&name(key), 1)
}

#[cfg(not(feature = "tokio"))]
mod conformance {
    use super::*;

    simplelock_core::conformance_tests!(open, across_processes, crash_safe, holder_pid,);
}

// With feature `tokio`, the async checks too, each on a current-thread tokio runtime of its own
// (the async wait drives the connection on the caller's runtime). As for the lock, an async
// guard's drop writes the release without waiting for the server's answer: other sessions see
// the permit free a round trip later, not at once (`async_release_later`).
#[cfg(feature = "tokio")]
mod conformance {
    use super::*;

    simplelock_core::conformance_tests!(
        open,
        across_processes,
        crash_safe,
        holder_pid,
        async_release_later,
        async_waits(|future| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(future)
        }),
    );
}

#[test]
fn status_and_holders_follow_the_permits() {
    let name = name("status");
    simplelock_core::conformance::permits::status_and_holders(
        |n| {
            PostgresPermits::options()
                .with_url(common::url())
                .named(&name, n)
        },
        true,
    );
}

#[test]
fn a_waiter_is_woken_by_a_release_of_any_permit() -> SimpleLockResult<()> {
    let name = name("wake");
    let mut first = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 2)?;
    let mut second = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 2)?;
    first.try_lock()?;
    second.try_lock()?;
    let waiter = std::thread::spawn(move || {
        let mut waiter = PostgresPermits::options()
            .with_url(common::url())
            .named(&name, 2)?;
        waiter.hang_lock()?;
        Ok::<_, SimpleLockError>(waiter.held_permit())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    second.try_unlock()?;
    assert_eq!(waiter.join().unwrap()?, Some(1));
    Ok(())
}

#[test]
fn disagreeing_and_bad_permits_are_refused() -> SimpleLockResult<()> {
    let name = name("disagree");
    simplelock_core::conformance::permits::disagreeing_permits_are_refused(|n| {
        PostgresPermits::options()
            .with_url(common::url())
            .named(&name, n)
    });
    // Once no handle uses it, the semaphore is gone: another N is fine.
    PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 8)?;
    let err = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, PostgresPermits::MAX + 1)
        .unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
    let err = PostgresPermits::options()
        .with_url(common::url())
        .named("", 2)
        .unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_thread_that_holds_every_permit_would_deadlock() {
    let name = name("deadlock");
    simplelock_core::conformance::permits::holding_every_permit_would_deadlock(|n| {
        PostgresPermits::options()
            .with_url(common::url())
            .named(&name, n)
    });
}

#[test]
fn a_permit_whose_session_is_terminated_is_lost_and_comes_back() -> SimpleLockResult<()> {
    let name = name("terminated");
    let mut holder = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 1)?;
    let mut waiter = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 1)?;
    holder.try_lock()?;
    let pid = holder.backend_pid().expect("connected");
    common::raw()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    // No notification comes from a session that ended: the waiter's slice finds the permit.
    // (A timed wait: this thread still counts the lost permit as its own until it learns.)
    waiter.timed_lock(common::PATIENCE)?;
    let err = holder.try_unlock().unwrap_err();
    assert!(LockLost::find(&err).is_some(), "{err:?}");
    // The handle connects again and can take a permit when one is free.
    waiter.try_unlock()?;
    holder.try_lock()?;
    Ok(())
}

#[test]
fn a_forked_child_cannot_use_or_release_the_parents_permit() -> SimpleLockResult<()> {
    let name = name("fork");
    let mut permit = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 1)?;
    permit.try_lock()?;
    #[allow(unsafe_code)]
    // SAFETY: the child only calls into code that takes no lock another thread could hold at
    // the fork (the owner check comes first, and glibc's malloc is fork-safe), then `_exit`s
    // without running destructors or atexit handlers of the parent's state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let refused = matches!(
            permit.try_unlock(),
            Err(SimpleLockError::UnknownError { .. })
        ) && permit.try_lock().is_err();
        drop(permit); // must neither release nor close the parent's connection
        #[allow(unsafe_code)]
        // SAFETY: `_exit` ends the child at once; always sound.
        unsafe {
            libc::_exit(if refused { 0 } else { 1 })
        };
    }
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: waits for our own child, with a valid pointer to `status`.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child could use its parent's permit (status {status})"
    );
    let mut other = PostgresPermits::options()
        .with_url(common::url())
        .named(&name, 1)?;
    assert!(
        matches!(other.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })),
        "the child's drop released the parent's permit"
    );
    permit.try_unlock()?;
    other.try_lock()?;
    Ok(())
}

/// An async waiter for one of three held permits: a wait dropped (by a timeout) while all are
/// held takes nothing; a try fails with `AlreadyLocked`; the waiter is woken by the release of
/// the permit a thread gives back (blocking), takes that one, and its guard's drop gives it
/// back (another handle then takes it); then the release of a killed holder's permit (its
/// session terminated: no notification) is found by the waiter's slice.
#[cfg(feature = "tokio")]
#[test]
fn an_async_waiter_takes_any_permit_given_back() -> SimpleLockResult<()> {
    use simplelock_core::AsyncLockExt;
    use std::time::Duration;

    let name = name("async-n");
    let open = || {
        PostgresPermits::options()
            .with_url(common::url())
            .named(&name, 3)
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut handle = open()?;
        handle.try_lock()?;
        held.push(handle);
    }
    let mut waiter = open()?;
    let mut other = open()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut middle = held.remove(1);
    let given_back = middle.held_permit();
    assert!(given_back.is_some());
    let got = runtime.block_on(async {
        let timed_out = tokio::time::timeout(Duration::from_millis(150), waiter.lock_async())
            .await
            .is_err();
        assert!(timed_out, "a permit was taken while all were held");
        assert!(matches!(
            waiter.try_lock_async().await.map(drop),
            Err(SimpleLockError::AlreadyLocked { .. })
        ));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            middle.try_unlock().map(|()| middle)
        });
        let guard = tokio::time::timeout(common::PATIENCE, waiter.lock_async())
            .await
            .expect("the waiter was not woken by the release")?;
        let got = guard.lock().held_permit();
        drop(guard);
        releaser.join().unwrap()?;
        Ok::<_, SimpleLockError>(got)
    })?;
    assert_eq!(got, given_back);
    assert_eq!(waiter.held_permit(), None);
    // The dropped guard gave it back: another handle takes it (a blocking wait, bounded).
    other.timed_lock(common::PATIENCE)?;
    assert_eq!(other.held_permit(), given_back);
    other.try_unlock()?;
    // Nothing was left taken by the dropped waits: exactly one permit is free.
    other.try_lock()?;
    assert!(matches!(
        open()?.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    other.try_unlock()?;
    // A holder whose session ends announces nothing: the slice finds its permit.
    let mut filler = open()?;
    filler.try_lock()?;
    let killed = held.pop().unwrap();
    let killed_permit = killed.held_permit();
    let pid = killed.backend_pid().expect("connected");
    let got = runtime.block_on(async {
        let mut acquire = std::pin::pin!(waiter.lock_async());
        // Long enough to have tried every permit and to sleep (a release announced earlier,
        // while it did not wait, included).
        let pending = tokio::time::timeout(Duration::from_millis(300), acquire.as_mut())
            .await
            .is_err();
        assert!(pending, "a permit was free");
        // The raw client blocks: on a thread of its own, outside the runtime.
        std::thread::spawn(move || {
            common::raw()
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .unwrap()
        })
        .join()
        .unwrap();
        let guard = tokio::time::timeout(common::PATIENCE, acquire)
            .await
            .expect("the dead holder's permit was never found")?;
        let got = guard.lock().held_permit();
        guard.unlock().await?;
        Ok::<_, SimpleLockError>(got)
    })?;
    assert_eq!(got, killed_permit);
    drop(killed);
    Ok(())
}
