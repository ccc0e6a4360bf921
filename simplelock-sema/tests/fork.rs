//! What a child made by `fork` sees of a lock its parent holds, and why a process whose main
//! thread exited is not taken for dead while its other threads run.
//!
//! A forked child of this multi-threaded test process must not touch locks that another thread
//! may have held at the fork (stdout, stderr): it reports by exit code only, each check its own.
#![allow(unsafe_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};
use simplelock_sema::SemaphoreLock;

mod common;
use common::{Cleanup, PATIENCE, Scratch};

/// Runs `child` in a forked child and returns its pid; the child exits with what `child`
/// returns (0: all checks passed, else the number of the failed check).
fn fork_child(child: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child only runs `child` — lock operations, file reads and writes, sleeps —
    // and then `_exit`s without running destructors or atexit handlers; it never touches the
    // stdio locks other threads of the parent may have held at the fork.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            die_with_parent();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
            exit_now(code)
        }
    }
}

/// Makes the kernel SIGKILL the calling thread's process when the parent's test thread ends, so
/// that a failed test leaves no child behind holding the test's output pipe open.
fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and no pointers.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// Ends a forked child at once: no destructors, no atexit handlers, no stdio flushing.
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// The checks a forked child makes with its copy of the parent's holding handle; 0 if all pass,
/// else the number of the first that failed.
fn inherited_checks(mut inherited: SemaphoreLock, name: &str, parent: u32) -> i32 {
    let fresh = SemaphoreLock::named(name).unwrap();
    let mut checks = vec![
        matches!(inherited.status(), Ok(LockStatus::Taken)),
        matches!(inherited.try_unlock(), Err(SimpleLockError::NotHeld { .. })),
        matches!(inherited.try_lock(),
            Err(SimpleLockError::AlreadyLocked { holder: Some(h), .. }) if h.pid == parent),
        matches!(
            inherited.timed_lock(Duration::from_millis(30)),
            Err(SimpleLockError::TimedOut { .. })
        ),
        matches!(fresh.holder(), Ok(Some(h)) if h.pid == parent),
    ];
    drop(inherited); // must not release the parent's lock
    checks.push(matches!(fresh.status(), Ok(LockStatus::Taken)));
    checks
        .iter()
        .position(|passed| !passed)
        .map_or(0, |i| i32::try_from(i).unwrap() + 1)
}

/// Waits for the forked child `pid` and returns its exit code.
fn exit_code(pid: Pid) -> i32 {
    match waitpid(pid, None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child {pid} ended with {other:?}"),
    }
}

/// The forked child's copy of a holding handle does not hold: its unlock is `NotHeld`, its
/// status `Taken` (the parent holds), its locks fail or wait for the parent, and dropping it
/// does not release the parent's lock. A new handle in the child waits for the parent's release,
/// and a child that exits holding is reported dead to the parent.
#[test]
fn a_forked_child_does_not_inherit_ownership() {
    let name = common::unique_name("fork");
    let _cleanup = Cleanup::new(&[&name]);
    let scratch = Scratch::new("fork");
    let released = scratch.path().join("released");
    let mut lock = SemaphoreLock::named(&name).unwrap();
    lock.try_lock().unwrap();
    let parent = std::process::id();

    // Inline rather than through `fork_child`: the child's arm moves the handle (its own copy)
    // and never returns, while the parent's arm keeps using its handle.
    // SAFETY: as in `fork_child`.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            die_with_parent();
            let inherited = lock; // the child's copy of the parent's holding handle
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inherited_checks(inherited, &name, parent)
            }))
            .unwrap_or(99);
            exit_now(code)
        }
    };
    assert_eq!(
        exit_code(child),
        0,
        "the numbered check in the child failed"
    );
    assert_eq!(
        lock.status().unwrap(),
        LockStatus::Mine,
        "the child's drop released it"
    );
    let mut other = SemaphoreLock::named(&name).unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));

    // A child that waits for the parent, acquires after its release, and exits holding.
    let child = fork_child(|| {
        let mut fresh = SemaphoreLock::named(&name).unwrap();
        if fresh.try_lock().is_ok() {
            return 1;
        }
        if fresh.timed_lock(PATIENCE).is_err() {
            return 2;
        }
        if !released.exists() {
            return 3; // acquired before the parent released
        }
        if fresh.previous_holder() != PreviousHolder::Released {
            return 4;
        }
        std::mem::forget(fresh); // exit holding: no destructor releases it
        0
    });
    thread::sleep(Duration::from_millis(100));
    fs::write(&released, "").unwrap();
    lock.try_unlock().unwrap();
    assert_eq!(
        exit_code(child),
        0,
        "the numbered check in the child failed"
    );
    common::lock_within_guard(&mut lock);
    assert_eq!(lock.previous_holder(), PreviousHolder::Died);
    lock.try_unlock().unwrap();
}

/// A child whose main thread exited (a zombie leader, `Z` in `/proc/PID/stat`) while another of
/// its threads holds the lock is alive: waiters must not take the lock over. Once the whole
/// process is killed, they do.
#[test]
fn a_zombie_leader_with_live_threads_keeps_the_lock() {
    let name = common::unique_name("zombie");
    let _cleanup = Cleanup::new(&[&name]);
    let mut lock = SemaphoreLock::named(&name).unwrap();
    let child = fork_child(|| {
        let name = name.clone();
        thread::spawn(move || {
            die_with_parent();
            let Ok(mut held) = SemaphoreLock::named(&name) else {
                exit_now(1)
            };
            if held.try_lock().is_err() {
                exit_now(2);
            }
            loop {
                thread::sleep(Duration::from_secs(60));
            }
        });
        // End the main thread only (SYS_exit, not exit_group), without unwinding.
        // SAFETY: the thread ends here; nothing of it runs again.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!("SYS_exit returned")
    });
    let pid = u32::try_from(child.as_raw()).unwrap();
    common::eventually("the child holding the lock as a zombie leader", || {
        common::process_state(pid).as_deref() == Some("Z")
            && matches!(lock.holder(), Ok(Some(h)) if h.pid == pid)
    });
    assert!(matches!(
        lock.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    assert_eq!(lock.status().unwrap(), LockStatus::Taken);
    // Several liveness checks (one per 10 ms slice) must all find it alive.
    let start = Instant::now();
    assert!(matches!(
        lock.timed_lock(Duration::from_millis(60)),
        Err(SimpleLockError::TimedOut { .. })
    ));
    assert!(start.elapsed() >= Duration::from_millis(60));
    nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL).unwrap();
    common::lock_within_guard(&mut lock);
    assert_eq!(lock.previous_holder(), PreviousHolder::Died);
    lock.try_unlock().unwrap();
    assert!(matches!(waitpid(child, None), Ok(WaitStatus::Signaled(..))));
}

/// A process that was stopped (SIGSTOP) while holding is alive: it keeps the lock until it is
/// continued and releases it.
#[test]
fn a_stopped_holder_keeps_the_lock() {
    let name = common::unique_name("stopped");
    let _cleanup = Cleanup::new(&[&name]);
    let scratch = Scratch::new("stopped");
    let go = scratch.path().join("go");
    let mut lock = SemaphoreLock::named(&name).unwrap();
    let child = fork_child(|| {
        let mut held = SemaphoreLock::named(&name).unwrap();
        if held.try_lock().is_err() {
            return 1;
        }
        let start = Instant::now();
        while !go.exists() {
            if start.elapsed() > PATIENCE {
                return 2;
            }
            thread::sleep(Duration::from_millis(1));
        }
        if held.try_unlock().is_err() {
            return 3;
        }
        0
    });
    let pid = u32::try_from(child.as_raw()).unwrap();
    common::eventually(
        "the child holding the lock",
        || matches!(lock.holder(), Ok(Some(h)) if h.pid == pid),
    );
    nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGSTOP).unwrap();
    common::eventually("the child stopped", || {
        common::process_state(pid).as_deref() == Some("T")
    });
    assert!(matches!(
        lock.timed_lock(Duration::from_millis(60)),
        Err(SimpleLockError::TimedOut { .. })
    ));
    assert_eq!(lock.status().unwrap(), LockStatus::Taken);
    fs::write(&go, "").unwrap();
    nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGCONT).unwrap();
    common::lock_within_guard(&mut lock);
    assert_eq!(lock.previous_holder(), PreviousHolder::Released);
    lock.try_unlock().unwrap();
    assert_eq!(
        exit_code(child),
        0,
        "the numbered check in the child failed"
    );
}

/// A forked child's copy of a holding handle, used after the parent removed the lock, moves to
/// the new object like any handle and locks it (in debug builds this once tripped an assertion
/// that a handle meeting a removed object holds nothing — the copy still records the parent).
#[test]
fn a_forked_copy_of_a_holding_handle_follows_a_removal() {
    let name = common::unique_name("fork-removed");
    let _cleanup = Cleanup::new(&[&name]);
    let mut lock = SemaphoreLock::named(&name).unwrap();
    lock.try_lock().unwrap();
    let path = common::object_path(&name);
    let old_ino = fs::metadata(&path).unwrap().ino();
    // SAFETY: as in `fork_child`; the child's arm moves its own copy of the handle.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            die_with_parent();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let start = Instant::now();
                while fs::metadata(&path).is_ok_and(|m| m.ino() == old_ino) {
                    if start.elapsed() > PATIENCE {
                        return 2;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                match lock.try_lock() {
                    Ok(()) if lock.try_unlock().is_ok() => 0,
                    _ => 3,
                }
            }))
            .unwrap_or(99);
            exit_now(code)
        }
    };
    lock.unlink().unwrap();
    assert_eq!(
        exit_code(child),
        0,
        "2: the removal was not seen; 3: the lock failed; 99: the child panicked"
    );
}

/// An async wait in a forked child works although the child has none of its parent's threads:
/// the parent has a watcher thread for the lock (an async waiter of its own is pending) when it
/// forks; the child's async waiter must get a watcher of its own, or no release ever wakes it.
#[test]
fn an_async_wait_in_a_forked_child_is_woken() {
    use simplelock_core::AsyncLockExt;
    use simplelock_core::conformance::{block_on, sleep};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let name = common::unique_name("fork-async");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    // The parent's own async waiter, left pending: its watcher thread runs at the fork.
    let mut parents = SemaphoreLock::named(&name).unwrap();
    let mut waiting = Box::pin(parents.lock_async());
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    let child = fork_child(|| {
        let mut lock = SemaphoreLock::named(&name).unwrap();
        // Woken by the parent's release, or not at all: the timer only bounds a failure (and
        // is no timed wait, whose last try would succeed once the lock is free).
        let mut acquiring = Box::pin(lock.lock_async());
        let mut timer = Box::pin(sleep(PATIENCE));
        let outcome = block_on(std::future::poll_fn(|cx| {
            // The timer first: once it fired, a free lock must not count as a wake-up.
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            acquiring.as_mut().poll(cx).map(|done| Some(done.is_ok()))
        }));
        match outcome {
            Some(true) => 0,
            Some(false) => 3,
            None => 2,
        }
    });
    // Let the child wait (it waits either way; this only makes the test meaningful).
    thread::sleep(Duration::from_millis(100));
    holder.try_unlock().unwrap();
    assert_eq!(
        exit_code(child),
        0,
        "2: the child's async wait was never woken; 3: it failed; 99: it panicked"
    );
    drop(waiting);
}

/// A counting semaphore's handle copied into a forked child: the parent's permit is not the
/// child's (release is NotHeld, `held_permit` is None), the child takes a permit of its own
/// (the other one: the parent's stays held), and its death gives that one back.
#[test]
fn a_forked_childs_copy_of_a_permit_holds_nothing() {
    use simplelock_core::Permits;
    use simplelock_sema::SemaphorePermits;

    let name = common::unique_name("fork-permits");
    let mut permit = SemaphorePermits::named(&name, 2).unwrap();
    permit.try_lock().unwrap();
    let mine = permit.held_permit();
    // SAFETY: as in `fork_child`.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            die_with_parent();
            let mut inherited = permit; // the child's copy of the parent's holding handle
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if !matches!(inherited.try_unlock(), Err(SimpleLockError::NotHeld { .. })) {
                    return 10;
                }
                if inherited.held_permit().is_some() {
                    return 11;
                }
                if inherited.try_lock().is_err() || inherited.held_permit() == mine {
                    return 12; // the child's own permit: the other one
                }
                std::mem::forget(inherited); // exit holding
                0
            }))
            .unwrap_or(99);
            exit_now(code)
        }
    };
    assert_eq!(
        exit_code(child),
        0,
        "the numbered check in the child failed"
    );
    assert_eq!(permit.held_permit(), mine);
    assert_eq!(permit.status().unwrap(), LockStatus::Mine);
    let mut other = SemaphorePermits::named(&name, 2).unwrap();
    other.timed_lock(PATIENCE).unwrap(); // the dead child's permit, taken over
    assert_eq!(other.previous_holder(), PreviousHolder::Died);
    let mut third = SemaphorePermits::named(&name, 2).unwrap();
    assert!(
        matches!(third.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })),
        "the child released the parent's permit"
    );
    drop((permit, other, third));
    SemaphorePermits::remove(&name).unwrap();
}

/// A child forked while another thread of its parent was making an io_uring for an async wait
/// on tokio (inside the process's table of rings, whose mutex that thread held at the fork:
/// the child has no such thread) must not wait for that mutex forever: its own async wait on
/// tokio gets `Pending` (served without the table) like any other. Forks until 200 children
/// all came through; a child that hangs is ended by its alarm, and the test fails.
#[cfg(feature = "tokio")]
#[test]
fn a_child_forked_while_a_ring_was_being_made_can_wait_on_tokio() {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::Poll;

    use simplelock_core::AsyncLockExt;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    let name = common::unique_name("fork-ring");
    let busy = common::unique_name("fork-ring-busy");
    let _cleanup = Cleanup::new(&[&name, &busy]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    let mut busy_holder = SemaphoreLock::named(&busy).unwrap();
    busy_holder.try_lock().unwrap();
    // Another thread makes rings again and again: a handle that waits once and goes takes its
    // ring with it, so the next one makes a new one (in the table's mutex).
    let stop = Arc::new(AtomicBool::new(false));
    let maker = {
        let stop = Arc::clone(&stop);
        let busy = busy.clone();
        thread::spawn(move || {
            let runtime = current_thread();
            while !stop.load(Ordering::Relaxed) {
                let mut lock = SemaphoreLock::named(&busy).unwrap();
                let mut waiting = Box::pin(lock.lock_async());
                runtime.block_on(std::future::poll_fn(|cx| {
                    assert!(waiting.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                }));
            }
        })
    };
    let mut codes = Vec::new();
    for _ in 0..200 {
        let child = fork_child(|| {
            // SAFETY: `alarm` takes a number of seconds; SIGALRM's default action ends the
            // child, which the parent sees (the hang guard).
            unsafe { libc::alarm(PATIENCE.as_secs().try_into().unwrap_or(u32::MAX)) };
            let runtime = current_thread();
            let mut lock = SemaphoreLock::named(&name).unwrap();
            let mut waiting = Box::pin(lock.lock_async());
            let pending = runtime.block_on(std::future::poll_fn(|cx| {
                Poll::Ready(waiting.as_mut().poll(cx).is_pending())
            }));
            if pending { 0 } else { 2 }
        });
        let outcome = waitpid(child, None).expect("waitpid");
        codes.push(outcome);
        if outcome != WaitStatus::Exited(child, 0) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    maker.join().unwrap();
    let last = codes.last().unwrap();
    assert!(
        matches!(last, WaitStatus::Exited(_, 0)),
        "child {} of 200: {last:?} (SIGALRM: it hung; 2: its lock was not pending)",
        codes.len()
    );
}
