//! Real processes: mutual exclusion with a racy counter, a kill storm with death detection,
//! close-on-exec, fork, and a timed handoff between processes.
//!
//! The children are this test binary, re-run for one test with a role in the environment
//! (see `common::child`); a normal run of a test is always the parent.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]
#![allow(
    unsafe_code,
    reason = "fork, kill and _exit in the tests of fork and crash behaviour"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::{Child, LOCK_PATH, PATIENCE, WORK_DIR, command, hear, role, say, scratch};
use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};

fn env_path(key: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(key).expect("set by the parent"))
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion between processes.

const WRITERS: usize = 4;
const ROUNDS: usize = 250;
const READERS: usize = 2;

/// Enters the critical section: the occupant file must be empty (nobody inside), then names us.
fn enter(occupant: &Path) {
    let before = fs::read_to_string(occupant).unwrap();
    assert!(
        before.is_empty(),
        "two holders at once: {before} was inside when {} entered",
        std::process::id()
    );
    fs::write(occupant, std::process::id().to_string()).unwrap();
}

/// Leaves it: we must still be the occupant.
fn leave(occupant: &Path) {
    let inside = fs::read_to_string(occupant).unwrap();
    assert_eq!(
        inside,
        std::process::id().to_string(),
        "someone entered while we held the lock"
    );
    fs::write(occupant, "").unwrap();
}

fn writer(dir: &Path, lock: &Path) {
    let mut lock = common::lock_file(lock).unwrap();
    let (counter, occupant) = (dir.join("counter"), dir.join("occupant"));
    for round in 0..ROUNDS {
        match round % 3 {
            0 => lock.hang_lock().unwrap(),
            1 => lock.timed_lock(PATIENCE).unwrap(),
            _ => loop {
                match lock.try_lock() {
                    Ok(()) => break,
                    Err(SimpleLockError::AlreadyLocked { .. }) => thread::yield_now(),
                    Err(other) => panic!("try_lock: {other}"),
                }
            },
        }
        assert_ne!(lock.previous_holder(), PreviousHolder::Died);
        enter(&occupant);
        // A deliberately racy read-modify-write: only the lock keeps the total exact.
        let seen: usize = fs::read_to_string(&counter).unwrap().parse().unwrap();
        thread::yield_now();
        fs::write(&counter, (seen + 1).to_string()).unwrap();
        leave(&occupant);
        lock.try_unlock().unwrap();
    }
}

fn reader(dir: &Path, lock: &Path) {
    let mut lock = common::lock_file_shared(lock).unwrap();
    let occupant = dir.join("occupant");
    for round in 0..ROUNDS / 2 {
        match round % 2 {
            0 => lock.hang_lock().unwrap(),
            _ => lock.timed_lock(PATIENCE).unwrap(),
        }
        // Readers share the lock with readers only: no writer is ever inside meanwhile.
        for _ in 0..3 {
            let inside = fs::read_to_string(&occupant).unwrap();
            assert!(inside.is_empty(), "writer {inside} inside with a reader");
            thread::yield_now();
        }
        lock.try_unlock().unwrap();
    }
}

#[test]
fn processes_exclude_each_other_and_lose_no_update() {
    const TEST: &str = "processes_exclude_each_other_and_lose_no_update";
    match role().as_deref() {
        Some("writer") => return writer(&env_path(WORK_DIR), &env_path(LOCK_PATH)),
        Some("reader") => return reader(&env_path(WORK_DIR), &env_path(LOCK_PATH)),
        _ => {}
    }
    let dir = scratch(TEST);
    let lock = dir.join("counter.lock");
    fs::write(dir.join("counter"), "0").unwrap();
    fs::write(dir.join("occupant"), "").unwrap();
    let spawn = |role: &str| {
        Child::spawn(
            command(TEST, role)
                .env(WORK_DIR, &dir)
                .env(LOCK_PATH, &lock),
        )
    };
    let children: Vec<_> = (0..WRITERS)
        .map(|_| spawn("writer"))
        .chain((0..READERS).map(|_| spawn("reader")))
        .collect();
    for mut child in children {
        child.wait_success();
    }
    let total: usize = fs::read_to_string(dir.join("counter"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, WRITERS * ROUNDS, "lost updates");
    let record = fs::read_to_string(&lock).unwrap();
    assert!(
        record.starts_with("simplelock 1 free pid="),
        "the last writer released: {record:?}"
    );
}

#[test]
fn threads_with_their_own_handles_exclude_each_other() {
    let dir = scratch("threads_with_their_own_handles_exclude_each_other");
    let lock = dir.join("counter.lock");
    fs::write(dir.join("counter"), "0").unwrap();
    let inside = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..4 {
            let (dir, lock, inside) = (&dir, &lock, &inside);
            s.spawn(move || {
                let mut lock = common::lock_file(lock).unwrap();
                for round in 0..200 {
                    if (t + round) % 2 == 0 {
                        lock.hang_lock().unwrap();
                    } else {
                        lock.timed_lock(PATIENCE).unwrap();
                    }
                    let was = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(was, 0, "two threads inside");
                    let counter = dir.join("counter");
                    let seen: usize = fs::read_to_string(&counter).unwrap().parse().unwrap();
                    thread::yield_now();
                    fs::write(&counter, (seen + 1).to_string()).unwrap();
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    lock.try_unlock().unwrap();
                }
            });
        }
    });
    let total: usize = fs::read_to_string(dir.join("counter"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, 800, "lost updates");
}

// ---------------------------------------------------------------------------------------------
// Crashes.

/// A holder that never lets go: it locks, says so, and waits to be killed.
fn holder_until_killed(dir: &Path, lock: &Path) -> ! {
    let mut lock = common::lock_file(lock).unwrap();
    lock.hang_lock().unwrap();
    fs::write(dir.join("occupant"), std::process::id().to_string()).unwrap();
    say(&format!("locked {:?}", lock.previous_holder()));
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn kill_storm_releases_at_once_and_reports_the_death() {
    const TEST: &str = "kill_storm_releases_at_once_and_reports_the_death";
    const KILLS: usize = 30;
    if role().as_deref() == Some("holder") {
        holder_until_killed(&env_path(WORK_DIR), &env_path(LOCK_PATH));
    }
    let dir = scratch(TEST);
    let path = dir.join("storm.lock");
    let occupant = dir.join("occupant");
    fs::write(&occupant, "").unwrap();
    let mut probe = common::lock_file(&path).unwrap();
    for round in 0..KILLS {
        let mut holder = Child::spawn(
            command(TEST, "holder")
                .env(WORK_DIR, &dir)
                .env(LOCK_PATH, &path),
        );
        let pid = holder.pid();
        let said = holder.next();
        assert_eq!(
            said, "locked Released",
            "round {round}: the last holder released"
        );
        assert_eq!(fs::read_to_string(&occupant).unwrap(), pid.to_string());

        // Held, by that process, as the error and the status say.
        match probe.try_lock() {
            Err(SimpleLockError::AlreadyLocked { holder, .. }) => {
                assert_eq!(holder.map(|h| h.pid), Some(pid), "round {round}");
            }
            other => panic!("round {round}: a second holder got in: {other:?}"),
        }
        assert_eq!(probe.status().unwrap(), LockStatus::Taken);
        let named = probe.holder().unwrap().expect("the holder is known");
        assert_eq!(named.pid, pid);
        assert!(named.since.is_some(), "since comes from the record");

        // A waiter, exclusive or shared, blocked before the kill; the kill must wake it.
        let shared = round % 3 == 2;
        let mut next = if shared {
            common::lock_file_shared(&path).unwrap()
        } else {
            common::lock_file(&path).unwrap()
        };
        let waiter = thread::spawn(move || {
            let result = if round % 2 == 0 {
                next.timed_lock(PATIENCE)
            } else {
                next.hang_lock()
            };
            result.map(|()| next)
        });
        thread::sleep(Duration::from_millis(5));
        assert!(
            !waiter.is_finished(),
            "round {round}: got in before the kill"
        );
        holder.kill();
        let mut next = waiter.join().unwrap().unwrap();
        assert_eq!(
            next.previous_holder(),
            PreviousHolder::Died,
            "round {round}: the next holder must learn that the previous one died"
        );
        // Only the dead holder was ever inside before us.
        assert_eq!(fs::read_to_string(&occupant).unwrap(), pid.to_string());
        fs::write(&occupant, "").unwrap();
        next.try_unlock().unwrap();
        if shared {
            // A reader leaves the record alone; an exclusive holder repairs and releases.
            probe.try_lock().unwrap();
            assert_eq!(probe.previous_holder(), PreviousHolder::Died);
            probe.try_unlock().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// exec and fork.

#[test]
fn an_execed_program_does_not_keep_the_lock() {
    const TEST: &str = "an_execed_program_does_not_keep_the_lock";
    if role().as_deref() == Some("exec") {
        let mut lock = common::lock_file(env_path(LOCK_PATH)).unwrap();
        lock.try_lock().unwrap();
        // Never waited for: this process is killed, and the test kills the sleeper.
        #[allow(clippy::zombie_processes)]
        let sleeper = std::process::Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        say(&format!("sleeper {}", sleeper.id()));
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
    let dir = scratch(TEST);
    let path = dir.join("exec.lock");
    let mut parent = Child::spawn(command(TEST, "exec").env(LOCK_PATH, &path));
    let said = parent.next();
    let sleeper: i32 = said.strip_prefix("sleeper ").unwrap().parse().unwrap();
    let mut lock = common::lock_file(&path).unwrap();
    assert!(matches!(
        lock.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    // The program it started has no descriptor of the lock file ...
    let canonical = fs::canonicalize(&path).unwrap();
    for fd in fs::read_dir(format!("/proc/{sleeper}/fd")).unwrap() {
        let target = fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert_ne!(
            target, canonical,
            "the exec'd program inherited the lock file"
        );
    }
    // ... so when the holder dies, the lock is free although the program lives on.
    parent.kill();
    assert!(Path::new(&format!("/proc/{sleeper}")).exists());
    lock.timed_lock(PATIENCE).unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Died);
    lock.try_unlock().unwrap();
    // SAFETY: kill has no memory effects; the sleeper is our grandchild, still running.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
}

/// Forks; the child runs `child_part` and exits with its code; returns the child's exit code.
fn in_forked_child(child_part: impl FnOnce() -> i32) -> i32 {
    // SAFETY: this process is a child started for this test alone (one test thread); the forked
    // child only runs `child_part` and then `_exit`s without unwinding or running destructors
    // of the parent's state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child_part)).unwrap_or(99);
        // SAFETY: ends the forked child at once, as a forked child should.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a live int; `pid` is our child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status),
        "the forked child did not exit: {status}"
    );
    libc::WEXITSTATUS(status)
}

/// Drops the forked child's copy of `lock`, as leaving scope would.
fn drop_in_child<L>(lock: &L) {
    // SAFETY: called in a forked child that `_exit`s right after, without using or dropping
    // `lock` again: the value read here is the only one that is dropped in this process.
    drop(unsafe { std::ptr::read(lock) });
}

/// Runs `scenario` on a lock file of its own in a process of its own (a fork in the
/// multi-threaded test runner would copy its other threads' locks half taken): the child
/// started as `forker` runs it, in the lock's folder, and says `@done`.
fn in_forker(test: &str, scenario: impl FnOnce(&Path)) {
    if role().as_deref() == Some("forker") {
        scenario(&env_path(LOCK_PATH));
        say("done");
        return;
    }
    let dir = scratch(test);
    let mut forker = Child::spawn(
        command(test, "forker")
            .env(LOCK_PATH, dir.join("fork.lock"))
            .current_dir(&dir),
    );
    assert_eq!(forker.next(), "done");
    forker.wait_success();
}

/// The child's copy: unlock is NotHeld, status sees the parent's hold, a lock attempt re-opens
/// the file and is excluded like any other process, and dropping releases nothing.
#[test]
fn a_forked_childs_copy_holds_nothing_and_is_excluded() {
    in_forker(
        "a_forked_childs_copy_holds_nothing_and_is_excluded",
        |path| {
            let mut lock = common::lock_file(path).unwrap();
            lock.try_lock().unwrap();
            let code = in_forked_child(|| {
                if !matches!(lock.try_unlock(), Err(SimpleLockError::NotHeld { .. })) {
                    return 10;
                }
                if lock.status().ok() != Some(LockStatus::Taken) {
                    return 11;
                }
                if lock.holder().ok().flatten().map(|h| h.pid)
                    != Some(std::os::unix::process::parent_id())
                {
                    return 12;
                }
                if !matches!(lock.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })) {
                    return 13;
                }
                if !matches!(
                    lock.timed_lock(Duration::from_millis(20)),
                    Err(SimpleLockError::TimedOut { .. })
                ) {
                    return 14;
                }
                drop_in_child(&lock);
                0
            });
            assert_eq!(code, 0, "the fork scenario failed at step {code}");
            assert_eq!(lock.status().unwrap(), LockStatus::Mine);
            let mut other = common::lock_file(path).unwrap();
            assert!(
                matches!(other.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })),
                "the child released the parent's lock"
            );
        },
    );
}

/// A counting semaphore's handle copied into a forked child: the parent's permit is not the
/// child's (release is NotHeld, `held_permit` is None), the child takes a permit of its own
/// (the other one: the parent's stays held), and its end gives that one back, as a death.
#[cfg(target_os = "linux")]
#[test]
fn a_forked_childs_copy_of_a_permit_holds_nothing() {
    use simplelock_core::Permits;
    use simplelock_file::FilePermits;

    in_forker("a_forked_childs_copy_of_a_permit_holds_nothing", |path| {
        let path = path.with_extension("permits");
        let mut permit = FilePermits::at_path(&path, 2).unwrap();
        permit.try_lock().unwrap();
        let mine = permit.held_permit();
        let code = in_forked_child(|| {
            if !matches!(permit.try_unlock(), Err(SimpleLockError::NotHeld { .. })) {
                return 10;
            }
            if permit.held_permit().is_some() {
                return 11;
            }
            if permit.try_lock().is_err() || permit.held_permit() == mine {
                return 12; // the child's own permit: the other one
            }
            0 // `_exit`s holding it: the kernel closes its description
        });
        assert_eq!(code, 0, "the fork scenario failed at step {code}");
        assert_eq!(permit.held_permit(), mine);
        let mut other = FilePermits::at_path(&path, 2).unwrap();
        other.try_lock().unwrap(); // the child's permit came back when it exited
        assert!(other.previous_holder().died(), "the child exited holding");
        let mut third = FilePermits::at_path(&path, 2).unwrap();
        assert!(
            matches!(third.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })),
            "the child released the parent's permit"
        );
    });
}

/// A child that just drops its copy, without touching it first, releases nothing and writes
/// nothing.
#[test]
fn a_forked_child_dropping_its_copy_releases_nothing() {
    in_forker(
        "a_forked_child_dropping_its_copy_releases_nothing",
        |path| {
            let mut lock = common::lock_file(path).unwrap();
            lock.try_lock().unwrap();
            let code = in_forked_child(|| {
                drop_in_child(&lock);
                0
            });
            assert_eq!(code, 0);
            let mut other = common::lock_file(path).unwrap();
            assert!(
                matches!(other.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })),
                "dropping the child's copy released the parent's lock"
            );
            assert!(
                fs::read(path)
                    .unwrap()
                    .starts_with(b"simplelock 1 held pid="),
                "the child wrote the record"
            );
            lock.try_unlock().unwrap();
        },
    );
}

/// The parent's release is unaffected by the child's copy, and a child can take the lock once
/// it is free.
#[test]
fn a_forked_child_takes_the_lock_once_the_parent_released_it() {
    in_forker(
        "a_forked_child_takes_the_lock_once_the_parent_released_it",
        |path| {
            let mut lock = common::lock_file(path).unwrap();
            lock.try_lock().unwrap();
            lock.try_unlock().unwrap();
            let code = in_forked_child(|| {
                let Ok(()) = lock.try_lock() else { return 20 };
                if lock.previous_holder() != PreviousHolder::Released {
                    return 21;
                }
                let Ok(()) = lock.try_unlock() else { return 22 };
                0
            });
            assert_eq!(code, 0, "the fork scenario failed at step {code}");
            let mut other = common::lock_file(path).unwrap();
            other.try_lock().unwrap();
            other.try_unlock().unwrap();
        },
    );
}

/// A handle made with a relative path (this process runs in the lock's folder) names the file
/// it opened, also in a child that changed folder before it re-opens the file: re-opening the
/// relative path there would lock another file, beside the parent's hold.
#[test]
fn a_forked_child_in_another_folder_reopens_the_file_it_inherited() {
    in_forker(
        "a_forked_child_in_another_folder_reopens_the_file_it_inherited",
        |path| {
            let mut lock = common::lock_file(path).unwrap();
            let mut relative = common::lock_file(path.file_name().unwrap()).unwrap();
            relative.try_lock().unwrap();
            let elsewhere = path.with_file_name("elsewhere");
            fs::create_dir_all(&elsewhere).unwrap();
            let code = in_forked_child(|| {
                if std::env::set_current_dir(&elsewhere).is_err() {
                    return 40;
                }
                if lock.status().ok() != Some(LockStatus::Taken) {
                    return 41;
                }
                if !matches!(lock.try_lock(), Err(SimpleLockError::AlreadyLocked { .. })) {
                    return 42;
                }
                if !matches!(
                    relative.try_lock(),
                    Err(SimpleLockError::AlreadyLocked { .. })
                ) {
                    return 43;
                }
                0
            });
            assert_eq!(code, 0, "the fork scenario failed at step {code}");
            assert!(
                !elsewhere.join(path.file_name().unwrap()).exists(),
                "the child created a lock file in its new folder"
            );
            relative.try_unlock().unwrap();
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Handoff between processes.

#[test]
fn timed_lock_takes_over_promptly_from_another_process() {
    const TEST: &str = "timed_lock_takes_over_promptly_from_another_process";
    if role().as_deref() == Some("brief") {
        let mut lock = common::lock_file(env_path(LOCK_PATH)).unwrap();
        lock.try_lock().unwrap();
        say("locked");
        hear();
        lock.try_unlock().unwrap();
        return;
    }
    let dir = scratch(TEST);
    let path = dir.join("handoff.lock");
    let mut holder = Child::spawn(command(TEST, "brief").env(LOCK_PATH, &path));
    assert_eq!(holder.next(), "locked");
    let mut lock = common::lock_file(&path).unwrap();
    let timeout = PATIENCE;
    let waiter = thread::spawn(move || {
        let result = lock.timed_lock(timeout);
        (result, Instant::now(), lock)
    });
    thread::sleep(Duration::from_millis(20));
    assert!(!waiter.is_finished(), "got the lock while it was held");
    let released = Instant::now();
    holder.send("");
    let (result, acquired, lock) = waiter.join().unwrap();
    result.unwrap();
    assert_eq!(lock.previous_holder(), PreviousHolder::Released);
    // A hang guard only: the handoff must happen long before the timeout.
    assert!(acquired - released < timeout / 2);
    holder.wait_success();
}
