//! Real processes against the real server: exclusion with a racy counter in a file, holders
//! SIGKILLed inside their critical section, waiters killed while they wait, and fencing tokens
//! over many acquisitions from several processes.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_postgres::PostgresLock;

mod common;
use common::{PATIENCE, Proc, child, role, say};

const WORKERS: usize = 4;
const ROUNDS: usize = 500;

/// A folder for one test, removed first if an earlier run left it.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "simplelock-postgres-tests-{}-{test}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

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

/// The critical section: a racy read-modify-write of the counter, with a marker file that a
/// second holder would find.
fn increment(dir: &Path) {
    let marker = dir.join("inside");
    if let Err(e) = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        panic!("two holders at once: the marker exists ({e})");
    }
    let counter = dir.join("counter");
    let seen: u64 = fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    std::thread::yield_now();
    fs::write(&counter, (seen + 1).to_string()).unwrap();
    fs::remove_file(&marker).unwrap();
}

fn counter_worker() {
    let dir = PathBuf::from(std::env::var(common::FILE).unwrap());
    let name = std::env::var(common::LOCK).unwrap();
    let worker: usize = std::env::var("WORKER").unwrap().parse().unwrap();
    let mixed = std::env::var("MIXED").unwrap() == "1";
    let mut lock = PostgresLock::new(common::url(), &name).unwrap();
    for round in 0..ROUNDS {
        acquire(&mut lock, mixed, worker, round);
        increment(&dir);
        lock.try_unlock().unwrap();
    }
}

fn run_counter(test: &str, mixed: bool) {
    let dir = scratch(test);
    let name = common::name(test);
    let workers: Vec<Proc> = (0..WORKERS)
        .map(|worker| {
            Proc::spawn(
                child(test, "counter")
                    .env(common::FILE, &dir)
                    .env(common::LOCK, &name)
                    .env("WORKER", worker.to_string())
                    .env("MIXED", if mixed { "1" } else { "0" }),
            )
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        worker.finish(&format!("worker {i}"));
    }
    let total: usize = fs::read_to_string(dir.join("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(total, WORKERS * ROUNDS, "lost updates: two holders at once");
    fs::remove_dir_all(&dir).unwrap();
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
        let mut lock =
            PostgresLock::new(common::url(), &std::env::var(common::LOCK).unwrap()).unwrap();
        lock.hang_lock().unwrap();
        say(format!("held {}", lock.fencing_token().unwrap()));
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    let name = common::name(TEST);
    let mut me = PostgresLock::new(common::url(), &name).unwrap();
    let mut last_token = 0;
    for kill in 0..KILLS {
        let mut holder = Proc::spawn(child(TEST, "holder").env(common::LOCK, &name));
        let said = holder.next();
        let token: u64 = said.strip_prefix("held ").unwrap().parse().unwrap();
        assert!(
            token > last_token,
            "kill {kill}: token {token} after {last_token}"
        );
        match me.try_lock() {
            Err(SimpleLockError::AlreadyLocked { holder: who, .. }) => {
                let who = who.expect("the holder is named");
                assert_eq!(who.pid, holder.id(), "the holder's pid");
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
        let mut lock =
            PostgresLock::new(common::url(), &std::env::var(common::LOCK).unwrap()).unwrap();
        say("waiting");
        lock.hang_lock().unwrap();
        say("acquired");
        return;
    }
    let name = common::name(TEST);
    let mut me = PostgresLock::new(common::url(), &name).unwrap();
    let mut other = PostgresLock::new(common::url(), &name).unwrap();
    me.hang_lock().unwrap();
    let mut waiter = Proc::spawn(child(TEST, "waiter").env(common::LOCK, &name));
    assert_eq!(waiter.next(), "waiting");
    // Until the server lists it as waiting, it may not have asked yet.
    let mut raw = common::raw();
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = raw
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the waiter never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
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
        let file = PathBuf::from(std::env::var(common::FILE).unwrap());
        let worker: usize = std::env::var("WORKER").unwrap().parse().unwrap();
        let mut lock =
            PostgresLock::new(common::url(), &std::env::var(common::LOCK).unwrap()).unwrap();
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
    let dir = scratch(TEST);
    let file = dir.join("tokens");
    let name = common::name(TEST);
    let workers: Vec<Proc> = (0..TOKEN_PROCS)
        .map(|worker| {
            Proc::spawn(
                child(TEST, "tokens")
                    .env(common::FILE, &file)
                    .env(common::LOCK, &name)
                    .env("WORKER", worker.to_string()),
            )
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        worker.finish(&format!("worker {i}"));
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
    fs::remove_dir_all(&dir).unwrap();
}
