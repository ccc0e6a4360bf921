//! Exclusion and recovery between real processes: each test that needs helpers starts this test
//! binary again for itself (`--exact NAME`) with a role in an environment variable.
//!
//! Big storms are `cargo xtask stress --backend sema`'s job; these stay small enough to run in
//! every `cargo test`.

#![allow(unsafe_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{ConcreteLock, LockStatus, PreviousHolder, SimpleLockError};
use simplelock_sema::SemaphoreLock;

mod common;
use common::{Child, Cleanup, PATIENCE, Scratch, Section, hear, role, say};

/// The lock name and scratch folder a parent passes to its children.
const LOCK: &str = "SEMA_TEST_LOCK";
const DIR: &str = "SEMA_TEST_DIR";

/// Acquires in one of the three ways, picked by `round`, within the guard.
fn acquire(lock: &mut SemaphoreLock, round: usize) {
    match round % 3 {
        0 => common::lock_within_guard(lock),
        1 => lock.timed_lock(PATIENCE).unwrap(),
        _ => {
            let start = Instant::now();
            loop {
                match lock.try_lock() {
                    Ok(()) => break,
                    Err(SimpleLockError::AlreadyLocked { .. }) => {
                        assert!(start.elapsed() < PATIENCE, "try_lock never succeeded");
                        thread::yield_now();
                    }
                    Err(e) => panic!("try_lock: {e}"),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

const COUNTER_PROCS: usize = 4;
const COUNTER_THREADS: usize = 2;
const COUNTER_ROUNDS: usize = 150;

/// 4 processes × 2 threads, each thread with its own handle, doing a racy read-modify-write of
/// a counter in a file under the lock: the total is exact and nobody was ever inside together.
#[test]
fn processes_and_threads_exclude_each_other() {
    if role().is_some() {
        let section = Section::new(common::env(DIR).as_ref());
        let name = common::env(LOCK);
        thread::scope(|s| {
            for t in 0..COUNTER_THREADS {
                let (section, name) = (&section, &name);
                s.spawn(move || {
                    let mut lock = SemaphoreLock::named(name).unwrap();
                    for round in 0..COUNTER_ROUNDS {
                        acquire(&mut lock, round + t);
                        assert_ne!(lock.previous_holder(), PreviousHolder::Died);
                        section.enter(false);
                        section.increment();
                        section.leave();
                        lock.try_unlock().unwrap();
                    }
                });
            }
        });
        say("done");
        return;
    }
    let name = common::unique_name("counter");
    let _cleanup = Cleanup::new(&[&name]);
    let dir = Scratch::new("counter");
    let section = Section::new(dir.path());
    let dir_str = dir.path().to_str().unwrap();
    let mut children: Vec<Child> = (0..COUNTER_PROCS)
        .map(|_| {
            Child::start(
                "processes_and_threads_exclude_each_other",
                "counter",
                &[(LOCK, &name), (DIR, dir_str)],
            )
        })
        .collect();
    for child in &mut children {
        child.expect("done");
        child.wait_success();
    }
    assert_eq!(Section::lines(&section.overlaps), Vec::<String>::new());
    assert_eq!(
        section.count(),
        (COUNTER_PROCS * COUNTER_THREADS * COUNTER_ROUNDS) as u64,
        "lost updates"
    );
}

// ---------------------------------------------------------------------------------------------

const KILLS: usize = 50;
const STORM_WORKERS: usize = 2;

/// Holders SIGKILLed inside their critical section, 50 times: each time a waiting worker takes
/// the lock over, learns that its predecessor died and repairs what it left; nobody is ever
/// inside together, and the counter of the workers' increments is exact.
#[test]
fn kill_storm_recovers_every_holder() {
    match role().as_deref() {
        Some("worker") => {
            let section = Section::new(common::env(DIR).as_ref());
            let stop = std::path::Path::new(&common::env(DIR)).join("stop");
            let mut lock = SemaphoreLock::named(&common::env(LOCK)).unwrap();
            let mut count = 0u64;
            while !stop.exists() {
                common::lock_within_guard(&mut lock);
                section.enter(lock.previous_holder() == PreviousHolder::Died);
                section.increment();
                count += 1;
                section.leave();
                lock.try_unlock().unwrap();
                // Outside the lock for a moment, so that the victims get their turn.
                thread::sleep(Duration::from_micros(300));
            }
            say(&format!("count {count}"));
            return;
        }
        Some("victim") => {
            let section = Section::new(common::env(DIR).as_ref());
            let mut lock = SemaphoreLock::named(&common::env(LOCK)).unwrap();
            common::lock_within_guard(&mut lock);
            section.enter(lock.previous_holder() == PreviousHolder::Died);
            say("held");
            thread::sleep(PATIENCE * 10); // until SIGKILL
            panic!("the victim was not killed");
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
    let name = common::unique_name("storm");
    let _cleanup = Cleanup::new(&[&name]);
    let dir = Scratch::new("storm");
    let section = Section::new(dir.path());
    let dir_str = dir.path().to_str().unwrap();
    let envs = [(LOCK, name.as_str()), (DIR, dir_str)];
    let test = "kill_storm_recovers_every_holder";
    let mut workers: Vec<Child> = (0..STORM_WORKERS)
        .map(|_| Child::start(test, "worker", &envs))
        .collect();
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    for kill in 0..KILLS {
        let mut victim = Child::start(test, "victim", &envs);
        victim.expect("held");
        // Let the workers fall asleep on the futex, for a varying while.
        thread::sleep(Duration::from_micros(500 * (kill % 4) as u64));
        let killed_at = Instant::now();
        victim.kill();
        if kill % 2 == 0 {
            // Reaped at once: the holder's process id is gone (ESRCH). Otherwise it stays a
            // zombie until after the recovery.
            victim.wait_within(PATIENCE);
        }
        common::eventually("recovery after the kill", || {
            Section::lines(&section.repairs).len() > kill
        });
        let recovery = killed_at.elapsed();
        assert!(
            recovery < Duration::from_secs(2),
            "kill {kill}: recovery took {recovery:?}"
        );
        worst = worst.max(recovery);
        total += recovery;
        victim.wait_within(PATIENCE);
    }
    fs::write(dir.path().join("stop"), "").unwrap();
    let mut counted = 0;
    for worker in &mut workers {
        let line = worker.next();
        counted += line
            .strip_prefix("count ")
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("worker said {line:?}"));
        worker.wait_success();
    }
    println!(
        "kill storm: {KILLS} holders killed, worst recovery {worst:?}, mean {:?}",
        total / KILLS as u32
    );
    assert_eq!(Section::lines(&section.overlaps), Vec::<String>::new());
    assert_eq!(
        Section::lines(&section.repairs).len(),
        KILLS,
        "every death must be seen exactly once as PreviousHolder::Died"
    );
    assert_eq!(section.count(), counted, "lost or invented updates");
}

// ---------------------------------------------------------------------------------------------

const INIT_ROUNDS: usize = 20;
const INIT_PROCS: usize = 8;

/// 8 processes open a brand-new name at the same moment, 20 times: all of them get the same
/// object (the first opener's), and they exclude each other.
#[test]
fn many_processes_open_a_new_name_at_once() {
    if role().is_some() {
        let name = common::env(LOCK);
        let section = Section::new(common::env(DIR).as_ref());
        assert_eq!(hear(), "go");
        let mut lock = SemaphoreLock::named(&name).unwrap();
        let ino = fs::metadata(common::object_path(&name)).unwrap().ino();
        say(&format!("ino {ino}"));
        common::lock_within_guard(&mut lock);
        assert_ne!(lock.previous_holder(), PreviousHolder::Died);
        section.enter(false);
        thread::sleep(Duration::from_millis(1));
        section.increment();
        section.leave();
        lock.try_unlock().unwrap();
        say("done");
        return;
    }
    for round in 0..INIT_ROUNDS {
        let name = common::unique_name("init");
        let _cleanup = Cleanup::new(&[&name]);
        let dir = Scratch::new("init");
        let section = Section::new(dir.path());
        let envs = [(LOCK, name.as_str()), (DIR, dir.path().to_str().unwrap())];
        let mut children: Vec<Child> = (0..INIT_PROCS)
            .map(|_| Child::start("many_processes_open_a_new_name_at_once", "opener", &envs))
            .collect();
        assert!(!common::object_path(&name).exists());
        for child in &mut children {
            child.send("go");
        }
        let inos: Vec<String> = children.iter().map(|c| c.next()).collect();
        assert!(
            inos.iter().all(|i| i == &inos[0]),
            "round {round}: openers got different objects: {inos:?}"
        );
        for child in &mut children {
            child.expect("done");
            child.wait_success();
        }
        assert_eq!(Section::lines(&section.overlaps), Vec::<String>::new());
        assert_eq!(section.count(), INIT_PROCS as u64, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------

/// The file descriptors, memory mappings and lock objects of this process.
fn resources(prefix: &str) -> (usize, usize, usize) {
    let fds = fs::read_dir("/proc/self/fd").unwrap().count();
    let maps = fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count();
    let objects = fs::read_dir("/dev/shm")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .count();
    (fds, maps, objects)
}

/// 100 000 open/lock/unlock-or-drop cycles (and a removal every 10 000) leave the number of
/// file descriptors, memory mappings and objects in `/dev/shm` where they were. Runs in a child
/// process, so that other tests' files do not disturb the counts.
#[test]
fn no_leak_over_100k_cycles() {
    if role().is_some() {
        let names: Vec<String> = (0..16).map(|_| common::unique_name("leak")).collect();
        let prefix = format!("sl.slt-{}-leak-", std::process::id());
        let cycle = |i: usize| {
            let name = &names[i % names.len()];
            let mut lock = SemaphoreLock::named(name).unwrap();
            lock.try_lock().unwrap();
            if i.is_multiple_of(2) {
                lock.try_unlock().unwrap();
            }
            drop(lock); // releases when still held
            if i % 10_000 == 9_999 {
                assert!(SemaphoreLock::remove(name).unwrap());
            }
        };
        // Warm up what is made once per process (the page wiped on fork, the allocator's
        // arenas), then count.
        (0..1_000).for_each(cycle);
        for name in &names {
            SemaphoreLock::remove(name).unwrap();
        }
        let before = resources(&prefix);
        (0..100_000).for_each(cycle);
        for name in &names {
            SemaphoreLock::remove(name).unwrap();
        }
        let after = resources(&prefix);
        say(&format!("{before:?} | {after:?}"));
        return;
    }
    let mut child = Child::start("no_leak_over_100k_cycles", "cycles", &[]);
    let line = child.next_for(Duration::from_secs(120));
    child.wait_success();
    let (before, after) = line.split_once(" | ").unwrap();
    assert_eq!(
        before, after,
        "(fds, mappings, objects) before and after the cycles"
    );
    assert!(before.ends_with(" 0)"), "objects left before: {before}");
}

// ---------------------------------------------------------------------------------------------

/// Another process holds the lock: our unlocks are `NotHeld` and change nothing (unlike an
/// extra `sem_post`, which would let a second holder in), our tries fail naming the holder's
/// pid, and a holder that exits without unlocking is reported dead to the next one.
#[test]
fn extra_unlock_cannot_admit_a_second_holder() {
    if role().is_some() {
        let mut lock = SemaphoreLock::named(&common::env(LOCK)).unwrap();
        lock.try_lock().unwrap();
        say("held");
        assert_eq!(hear(), "exit");
        // Exit while holding, without running destructors.
        std::process::exit(0);
    }
    let name = common::unique_name("extra");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = Child::start(
        "extra_unlock_cannot_admit_a_second_holder",
        "holder",
        &[(LOCK, &name)],
    );
    holder.expect("held");
    let mut a = SemaphoreLock::named(&name).unwrap();
    let mut b = SemaphoreLock::named(&name).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            a.try_unlock(),
            Err(SimpleLockError::NotHeld { .. })
        ));
    }
    match b.try_lock() {
        Err(SimpleLockError::AlreadyLocked {
            holder: Some(h), ..
        }) => assert_eq!(h.pid, holder.pid()),
        other => panic!("expected AlreadyLocked by the child, got {other:?}"),
    }
    assert!(matches!(
        a.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    assert_eq!(a.status().unwrap(), LockStatus::Taken);
    assert_eq!(a.holder().unwrap().map(|h| h.pid), Some(holder.pid()));
    // A timed lock gives up, not before its deadline.
    let timeout = Duration::from_millis(150);
    let start = Instant::now();
    match a.timed_lock(timeout) {
        Err(SimpleLockError::TimedOut { holder: h, .. }) => {
            assert_eq!(h.map(|h| h.pid), Some(holder.pid()))
        }
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(start.elapsed() >= timeout, "gave up early");
    holder.send("exit");
    holder.wait_success();
    common::lock_within_guard(&mut a);
    assert_eq!(
        a.previous_holder(),
        PreviousHolder::Died,
        "a holder that exited without unlocking died holding the lock"
    );
    assert!(matches!(
        b.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    a.try_unlock().unwrap();
    b.try_lock().unwrap();
    assert_eq!(b.previous_holder(), PreviousHolder::Released);
    b.try_unlock().unwrap();
}

// ---------------------------------------------------------------------------------------------

/// A waiter asleep on the futex acquires soon after the holder is SIGKILLed — the requirement
/// is 50 ms; printed, with a generous guard.
#[test]
fn waiter_recovers_soon_after_sigkill() {
    if role().is_some() {
        let mut lock = SemaphoreLock::named(&common::env(LOCK)).unwrap();
        lock.try_lock().unwrap();
        say("held");
        thread::sleep(PATIENCE * 10);
        panic!("not killed");
    }
    let name = common::unique_name("recover");
    let _cleanup = Cleanup::new(&[&name]);
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let mut holder = Child::start(
            "waiter_recovers_soon_after_sigkill",
            "holder",
            &[(LOCK, &name)],
        );
        holder.expect("held");
        let mut lock = SemaphoreLock::named(&name).unwrap();
        let recovered = thread::scope(|s| {
            let waiter = s.spawn(|| {
                lock.timed_lock(PATIENCE).unwrap();
                Instant::now()
            });
            thread::sleep(Duration::from_millis(30)); // the waiter is asleep in the kernel
            let killed = Instant::now();
            holder.kill();
            waiter.join().unwrap().duration_since(killed)
        });
        assert_eq!(lock.previous_holder(), PreviousHolder::Died);
        assert!(recovered < Duration::from_secs(2), "took {recovered:?}");
        worst = worst.max(recovered);
        lock.try_unlock().unwrap();
        holder.wait_within(PATIENCE);
    }
    println!("worst recovery of a sleeping waiter after SIGKILL: {worst:?}");
}

// ---------------------------------------------------------------------------------------------

/// `remove` waits for the holder; afterwards every handle — old ones in other processes, old
/// and new ones here — uses the new object, and they still exclude each other.
#[test]
fn removal_while_others_wait_moves_them_to_the_new_object() {
    if role().is_some() {
        let mut lock = SemaphoreLock::named(&common::env(LOCK)).unwrap();
        say("opened");
        loop {
            match hear().as_str() {
                "lock" => {
                    common::lock_within_guard(&mut lock);
                    say(&format!("acquired {:?}", lock.previous_holder()));
                }
                "unlock" => {
                    lock.try_unlock().unwrap();
                    say("released");
                }
                "exit" => return,
                other => panic!("unknown command {other:?}"),
            }
        }
    }
    let name = common::unique_name("remove");
    let _cleanup = Cleanup::new(&[&name]);
    assert!(!SemaphoreLock::remove(&name).unwrap(), "nothing to remove");
    let spawn = || {
        let c = Child::start(
            "removal_while_others_wait_moves_them_to_the_new_object",
            "user",
            &[(LOCK, &name)],
        );
        c.expect("opened");
        c
    };
    let (mut c1, mut c2) = (spawn(), spawn());
    let old_ino = fs::metadata(common::object_path(&name)).unwrap().ino();
    let mut old_here = SemaphoreLock::named(&name).unwrap();

    // c1 holds; `remove` must wait for it.
    c1.send("lock");
    assert_eq!(c1.next(), "acquired Released");
    thread::scope(|s| {
        let remover = s.spawn(|| SemaphoreLock::remove(&name));
        thread::sleep(Duration::from_millis(100));
        assert!(!remover.is_finished(), "remove did not wait for the holder");
        c1.send("unlock");
        c1.expect("released");
        assert!(remover.join().unwrap().unwrap(), "remove removed nothing");
    });
    assert!(!common::object_path(&name).exists());

    // Now a holding handle and a waiter, then an unlink by the holder: the waiter moves over.
    let mut remover = SemaphoreLock::named(&name).unwrap();
    assert_ne!(
        fs::metadata(common::object_path(&name)).unwrap().ino(),
        old_ino
    );
    let held_ino = fs::metadata(common::object_path(&name)).unwrap().ino();
    remover.try_lock().unwrap();
    c2.send("lock");
    thread::sleep(Duration::from_millis(50)); // c2 is asleep on the futex
    assert_eq!(c2.next_within(Duration::ZERO), None);
    remover.unlink().unwrap();
    assert_eq!(c2.next(), "acquired Released");
    let new_ino = fs::metadata(common::object_path(&name)).unwrap().ino();
    assert_ne!(
        new_ino, held_ino,
        "the waiter must have opened a new object"
    );

    // c1's handle is on the first, removed object; ours too: both must see c2's holding.
    assert!(matches!(
        old_here.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    assert_eq!(old_here.status().unwrap(), LockStatus::Taken);
    c1.send("lock");
    assert_eq!(
        c1.next_within(Duration::from_millis(150)),
        None,
        "two holders"
    );
    c2.send("unlock");
    c2.expect("released");
    assert_eq!(c1.next(), "acquired Released");
    assert!(matches!(
        old_here.try_lock(),
        Err(SimpleLockError::AlreadyLocked { .. })
    ));
    c1.send("unlock");
    c1.expect("released");
    old_here.try_lock().unwrap();
    old_here.try_unlock().unwrap();
    for c in [&mut c1, &mut c2] {
        c.send("exit");
        c.wait_success();
    }
}

// ---------------------------------------------------------------------------------------------

/// An object created by root with the default mode (0o600) cannot be opened by another user:
/// `PermissionDenied` naming the lock. One created with `with_mode(0o666)` gets exactly that
/// mode (the umask does not narrow it), so the other user can use it — but not delete it.
#[test]
fn another_users_lock_is_permission_denied() {
    if role().is_some() {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).unwrap();
        nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).unwrap();
        let private = common::env(LOCK);
        match SemaphoreLock::named(&private) {
            Err(e @ SimpleLockError::PermissionDenied { .. }) => {
                assert!(e.to_string().contains(&private), "{e}");
                say("denied");
            }
            other => panic!("expected PermissionDenied, got {other:?}"),
        }
        let shared = common::env(DIR);
        // Root's object for everyone, opened as the documented opt-in says.
        let mut lock = SemaphoreLock::options()
            .with_mode(0o666)
            .with_owner(0)
            .named(&shared)
            .unwrap();
        lock.try_lock().unwrap();
        lock.try_unlock().unwrap();
        drop(lock);
        match SemaphoreLock::remove(&shared) {
            Err(SimpleLockError::PermissionDenied { .. }) => {}
            other => panic!("expected PermissionDenied removing root's object, got {other:?}"),
        }
        say("shared ok");
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        println!("note: not root, cannot test another user's lock; skipped");
        return;
    }
    let private = common::unique_name("private");
    let shared = common::unique_name("shared");
    let _cleanup = Cleanup::new(&[&private, &shared]);
    let _p = SemaphoreLock::named(&private).unwrap();
    let _s = SemaphoreLock::options()
        .with_mode(0o666)
        .named(&shared)
        .unwrap();
    let mode = |name: &str| fs::metadata(common::object_path(name)).unwrap().mode() & 0o777;
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&shared), 0o666);
    let mut child = Child::start(
        "another_users_lock_is_permission_denied",
        "nobody",
        &[(LOCK, &private), (DIR, &shared)],
    );
    child.expect("denied");
    child.expect("shared ok");
    child.wait_success();
    // The failed removal left the lock usable and free.
    let mut lock = SemaphoreLock::options()
        .with_mode(0o666)
        .named(&shared)
        .unwrap();
    lock.try_lock().unwrap();
    lock.try_unlock().unwrap();
}

// ---------------------------------------------------------------------------------------------

/// A process in another pid namespace than the `/proc` it sees (here: the first process of a
/// new pid namespace, with the old `/proc`) could not check owners by their process ids: it
/// gets an error instead of a lock.
#[test]
fn a_process_in_another_pid_namespace_is_refused() {
    if role().is_some() {
        // SAFETY: unshare takes flags only; it affects the children made after it.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            say(&format!(
                "skip: unshare: {}",
                std::io::Error::last_os_error()
            ));
            return;
        }
        // SAFETY: the child only opens a lock, inspects the error and `_exit`s.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, code) => say(&format!("exit {code}")),
                    other => say(&format!("ended {other:?}")),
                }
            }
            nix::unistd::ForkResult::Child => {
                let code = match SemaphoreLock::named(&common::env(LOCK)) {
                    Ok(_) => 1,
                    Err(e) if e.kind() == std::io::ErrorKind::Unsupported => 0,
                    Err(_) => 2,
                };
                // SAFETY: ends the child at once, running nothing else.
                unsafe { libc::_exit(code) }
            }
        }
        return;
    }
    let name = common::unique_name("pidns");
    let _cleanup = Cleanup::new(&[&name]);
    let mut child = Child::start(
        "a_process_in_another_pid_namespace_is_refused",
        "unshare",
        &[(LOCK, &name)],
    );
    let line = child.next();
    child.wait_success();
    if let Some(reason) = line.strip_prefix("skip: ") {
        println!("note: cannot make a pid namespace here ({reason}); skipped");
        return;
    }
    assert_eq!(line, "exit 0", "1: the lock opened; 2: another error");
    assert!(
        !common::object_path(&name).exists(),
        "a refused opener created the object"
    );
}
