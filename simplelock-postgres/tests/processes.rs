//! Real processes against the real server: exclusion with a racy counter in a file, holders
//! SIGKILLed inside their critical section, waiters killed while they wait, and fencing tokens
//! over many acquisitions from several processes.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_postgres::PostgresLock;

mod common;
use common::{Child, PATIENCE, Scratch, Section, child, env, eventually, role, say};

const WORKERS: usize = 4;
const ROUNDS: usize = 500;

/// Acquires `lock` the way round `round` of worker `worker` says: blocking only, or blocking,
/// timed and try mixed.
fn acquire(lock: &mut PostgresLock, mixed: bool, worker: usize, round: usize) {
    let mode = if mixed { (worker + round) % 3 } else { 0 };
    match mode {
        0 => lock.hang_lock().unwrap(),
        1 => loop {
            // A short timeout, so that some waits time out and are retried.
            match lock.timed_lock(Duration::from_millis(5)) {
                Ok(()) => break,
                Err(SimpleLockError::TimedOut { .. }) => continue,
                Err(e) => panic!("timed_lock failed: {e} ({e:?})"),
            }
        },
        _ => loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(SimpleLockError::AlreadyLocked { .. }) => std::thread::yield_now(),
                Err(e) => panic!("try_lock failed: {e} ({e:?})"),
            }
        },
    }
}

fn counter_worker() {
    let section = Section::new(&PathBuf::from(env(common::FILE)));
    let name = env(common::LOCK);
    let worker: usize = env("WORKER").parse().unwrap();
    let mixed = env("MIXED") == "1";
    let mut lock = common::open(&name);
    for round in 0..ROUNDS {
        acquire(&mut lock, mixed, worker, round);
        // The checked critical section: a racy read-modify-write of a counter, and a marker
        // file that a second holder would find.
        section.enter(false);
        section.increment();
        section.leave();
        lock.try_unlock().unwrap();
    }
}

fn run_counter(test: &str, mixed: bool) {
    let dir = Scratch::new(test);
    let section = Section::new(dir.path());
    let name = common::name(test);
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|worker| {
            Child::spawn(
                child(test, "counter")
                    .env(common::FILE, dir.path())
                    .env(common::LOCK, &name)
                    .env("WORKER", worker.to_string())
                    .env("MIXED", if mixed { "1" } else { "0" }),
            )
        })
        .collect();
    for worker in &mut workers {
        worker.wait_success();
    }
    let overlaps = Section::lines(&section.overlaps);
    assert!(overlaps.is_empty(), "two holders at once: {overlaps:?}");
    assert_eq!(
        section.count(),
        (WORKERS * ROUNDS) as u64,
        "lost updates: two holders at once"
    );
}

#[test]
fn four_processes_blocking_lose_no_update() {
    match role().as_deref() {
        Some("counter") => counter_worker(),
        _ => run_counter("four_processes_blocking_lose_no_update", false),
    }
}

#[test]
fn four_processes_mixed_modes_lose_no_update() {
    match role().as_deref() {
        Some("counter") => counter_worker(),
        _ => run_counter("four_processes_mixed_modes_lose_no_update", true),
    }
}

const KILLS: usize = 20;

/// A holder SIGKILLed inside its critical section releases at once: the next holder gets the
/// lock, with a larger token, 20 times in a row; while the holder lives nobody else gets in.
#[test]
fn kill_storm_releases_every_time() {
    const TEST: &str = "kill_storm_releases_every_time";
    if role().as_deref() == Some("holder") {
        let mut lock = common::open(&env(common::LOCK));
        lock.hang_lock().unwrap();
        say(&format!("held {}", lock.fencing_token().unwrap()));
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    let name = common::name(TEST);
    let mut me = common::open(&name);
    let mut last_token = 0;
    for kill in 0..KILLS {
        let mut holder = Child::spawn(child(TEST, "holder").env(common::LOCK, &name));
        let said = holder.next();
        let token: u64 = said.strip_prefix("held ").unwrap().parse().unwrap();
        assert!(
            token > last_token,
            "kill {kill}: token {token} after {last_token}"
        );
        match me.try_lock() {
            Err(SimpleLockError::AlreadyLocked { holder: who, .. }) => {
                let who = who.expect("the holder is named");
                assert_eq!(who.pid, holder.pid(), "the holder's pid");
                assert!(who.host.is_some() && who.program.is_some(), "{who:?}");
            }
            other => panic!("kill {kill}: try_lock while a live process holds: {other:?}"),
        }
        holder.kill();
        me.timed_lock(PATIENCE)
            .unwrap_or_else(|e| panic!("kill {kill}: the lock was not released: {e}"));
        let mine = me.fencing_token().unwrap();
        assert!(
            mine > token,
            "kill {kill}: token {mine} not above the dead holder's {token}"
        );
        last_token = mine;
        me.try_unlock().unwrap();
    }
}

/// A process killed while it waits leaves nothing behind: once the holder releases, the lock
/// is free (the dead waiter's session ends within client_connection_check_interval).
#[test]
fn waiter_killed_while_waiting_leaves_nothing() {
    const TEST: &str = "waiter_killed_while_waiting_leaves_nothing";
    if role().as_deref() == Some("waiter") {
        let mut lock = common::open(&env(common::LOCK));
        say("waiting");
        lock.hang_lock().unwrap();
        say("acquired");
        return;
    }
    let name = common::name(TEST);
    let mut me = common::open(&name);
    let mut other = common::open(&name);
    me.hang_lock().unwrap();
    let mut waiter = Child::spawn(child(TEST, "waiter").env(common::LOCK, &name));
    waiter.expect("waiting");
    // Until the server lists it as waiting, it may not have asked yet.
    let mut raw = common::raw();
    eventually("the server lists the waiter as waiting", || {
        let waiting: i64 = raw
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .unwrap()
            .get(0);
        waiting > 0
    });
    waiter.kill();
    me.try_unlock().unwrap();
    other
        .timed_lock(PATIENCE)
        .expect("the killed waiter left the lock held");
    other.try_unlock().unwrap();
}

const TOKEN_PROCS: usize = 4;
const TOKEN_ROUNDS: usize = 250;

/// 1000 acquisitions by 4 processes: each writes its token in the critical section, so the
/// file lists them in the order of acquisition, and they must strictly increase.
#[test]
fn fencing_tokens_strictly_increase_across_processes() {
    const TEST: &str = "fencing_tokens_strictly_increase_across_processes";
    if role().as_deref() == Some("tokens") {
        let file = PathBuf::from(env(common::FILE));
        let worker: usize = env("WORKER").parse().unwrap();
        let mut lock = common::open(&env(common::LOCK));
        for round in 0..TOKEN_ROUNDS {
            acquire(&mut lock, true, worker, round);
            let mut out = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&file)
                .unwrap();
            writeln!(out, "{}", lock.fencing_token().unwrap()).unwrap();
            lock.try_unlock().unwrap();
        }
        return;
    }
    let dir = Scratch::new(TEST);
    let file = dir.path().join("tokens");
    let name = common::name(TEST);
    let mut workers: Vec<Child> = (0..TOKEN_PROCS)
        .map(|worker| {
            Child::spawn(
                child(TEST, "tokens")
                    .env(common::FILE, &file)
                    .env(common::LOCK, &name)
                    .env("WORKER", worker.to_string()),
            )
        })
        .collect();
    for worker in &mut workers {
        worker.wait_success();
    }
    let tokens: Vec<u64> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(tokens.len(), TOKEN_PROCS * TOKEN_ROUNDS);
    for pair in tokens.windows(2) {
        assert!(pair[1] > pair[0], "token {} after {}", pair[1], pair[0]);
    }
}
