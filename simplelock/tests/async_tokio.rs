//! Async waits on tokio, across processes, for `FileLock` and `SemaphoreLock` (and for
//! `PostgresLock`'s cancel-safety with feature `postgres`, against the test server:
//! `$SIMPLELOCK_POSTGRES_URL`, else `127.0.0.1:5432/test`):
//!
//! - a current-thread runtime keeps running while 1,000 tasks wait for a lock another process
//!   holds (a blocking wait would stop it: no tick at all);
//! - cancel-safety: processes drop lock futures at random points (before the first poll, while
//!   waiting, right after the grant) in 10,000+ iterations in all; exclusion holds throughout
//!   and the lock is free at the end;
//! - a holder killed with SIGKILL wakes the async waiters, and the next one is told it died.
//!
//! The children are this test binary, re-run for one test with a role in its environment.

#![cfg(all(feature = "file", feature = "sema", feature = "tokio"))]

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use simplelock_harness::child::{Child, Section, Watchdog, env, hear, role, say, scratch};

use simplelock::{
    AsyncConcreteLock, AsyncLockExt, ConcreteLock, FileLock, LockStatus, SemaphoreLock,
    SimpleLockError, TokioLockExt,
};

/// The cross-process backends, opened by name.
#[derive(Debug, Clone, Copy)]
enum Kind {
    File,
    Sema,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s {
            "file" => Kind::File,
            "sema" => Kind::Sema,
            #[cfg(feature = "postgres")]
            "postgres" => Kind::Postgres,
            other => panic!("unknown backend {other}"),
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Sema => "sema",
            #[cfg(feature = "postgres")]
            Kind::Postgres => "postgres",
        }
    }
}

/// Runs `body` with a handle of `kind` on the lock `name` (a file in `dir`, or a semaphore).
macro_rules! with_lock {
    ($kind:expr, $name:expr, $dir:expr, |$lock:ident| $body:expr) => {
        match $kind {
            Kind::File => {
                let mut $lock = FileLock::at_path_for_test($dir, $name);
                $body
            }
            Kind::Sema => {
                let mut $lock =
                    SemaphoreLock::named(&format!("/{}", $name)).expect("open the lock");
                $body
            }
            // Opened (and so connected) outside any runtime, as PostgresLock requires.
            #[cfg(feature = "postgres")]
            Kind::Postgres => {
                let mut $lock = simplelock::PostgresLock::options()
                    .with_url(&postgres_url())
                    .named($name)
                    .expect("open the lock (a PostgreSQL server is needed)");
                $body
            }
        }
    };
}

/// The test server, as simplelock-postgres's tests find it.
#[cfg(feature = "postgres")]
fn postgres_url() -> String {
    std::env::var("SIMPLELOCK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned())
}

/// The file lock of a test: a lock folder's file keeps the holder record, so deaths are
/// reported.
trait AtPath {
    fn at_path_for_test(dir: &Path, name: &str) -> FileLock;
}
impl AtPath for FileLock {
    fn at_path_for_test(dir: &Path, name: &str) -> FileLock {
        FileLock::options()
            .with_folder(dir)
            .named(name)
            .expect("open the lock")
    }
}

/// A name no other test of this run (nor of another run) uses: the tag, this process and a
/// counter.
fn unique(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "async-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn rand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

/// xorshift64*: the random drop points (no dependency for a test's dice).
struct Dice(u64);
impl Dice {
    fn new(seed: u64) -> Dice {
        Dice(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn start_child(test: &str, role: &str, envs: &[(&str, String)]) -> Child {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Child::start(test, role, &envs)
}

fn finish(child: &mut Child) {
    let status = child.finish(simplelock_harness::child::PATIENCE);
    assert!(
        status.is_some_and(|s| s.success()),
        "child {} failed: {status:?}",
        child.pid()
    );
}

/// Child role "hold": take the lock, say so, release when told (or be killed).
fn play_holder() {
    let kind = Kind::parse(&env("BACKEND"));
    let name = env("NAME");
    let dir = PathBuf::from(env("DIR"));
    with_lock!(kind, &name, &dir, |lock| {
        lock.hang_lock().expect("take the lock");
        say("held");
        assert_eq!(hear(), "release");
        lock.try_unlock().expect("release");
        say("released");
    });
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------------------------
// 1,000 waiters do not stop a ticker on a current-thread runtime.

fn thousand_waiters(kind: Kind, test: &str) {
    if role().as_deref() == Some("hold") {
        return play_holder();
    }
    let _watchdog = Watchdog::new("1,000 async waiters and a ticker");
    const WAITERS: usize = 1000;
    let name = unique(&format!("ticker-{}", kind.tag()));
    let dir = scratch(&format!("ticker-{}", kind.tag()));
    let mut holder = start_child(
        test,
        "hold",
        &[
            ("BACKEND", kind.tag().to_owned()),
            ("NAME", name.clone()),
            ("DIR", dir.display().to_string()),
        ],
    );
    assert_eq!(holder.next(), "held");
    let (ticks, max_gap, done) = current_thread().block_on(async {
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..WAITERS {
            let (name, dir, done) = (name.clone(), dir.clone(), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                with_lock!(kind, &name, &dir, |lock| {
                    let guard = lock.lock_async().await.expect("an async wait");
                    done.fetch_add(1, Ordering::SeqCst);
                    drop(guard);
                });
            }));
        }
        // The ticker, for 500 ms while the other process holds the lock.
        let mut ticks = 0u32;
        let mut max_gap = Duration::ZERO;
        let mut last = Instant::now();
        let end = last + Duration::from_millis(500);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = Instant::now();
            max_gap = max_gap.max(now - last);
            last = now;
            ticks += 1;
        }
        let acquired_while_held = done.load(Ordering::SeqCst);
        holder.send("release");
        assert_eq!(holder.next(), "released");
        for task in tasks {
            task.await.expect("a waiter task");
        }
        (ticks, max_gap, acquired_while_held)
    });
    finish(&mut holder);
    let _ = fs::remove_dir_all(&dir);
    if let Kind::Sema = kind {
        let _ = SemaphoreLock::remove(format!("/{name}"));
    }
    println!(
        "{}: {WAITERS} async waiters, ticker every 10 ms: {ticks} ticks in 500 ms, max gap {max_gap:?}",
        kind.tag()
    );
    assert_eq!(
        done, 0,
        "a waiter acquired the lock while another process held it"
    );
    // A blocking wait on the runtime's only thread stops the ticker: no tick at all.
    assert!(
        ticks >= 2,
        "the ticker stopped while tasks waited: the wait blocks the runtime"
    );
}

#[test]
fn file_thousand_async_waiters_leave_a_current_thread_runtime_running() {
    thousand_waiters(
        Kind::File,
        "file_thousand_async_waiters_leave_a_current_thread_runtime_running",
    );
}

#[test]
fn sema_thousand_async_waiters_leave_a_current_thread_runtime_running() {
    thousand_waiters(
        Kind::Sema,
        "sema_thousand_async_waiters_leave_a_current_thread_runtime_running",
    );
}

// ---------------------------------------------------------------------------------------------
// Cancel-safety: futures dropped at random points, across processes.

/// Polls `future` at most `polls` times (yielding to the runtime between polls), then drops
/// it: `None` if it was not ready by then.
async fn poll_at_most<F: Future>(future: F, polls: u64) -> Option<F::Output> {
    let mut future = pin!(future);
    for _ in 0..polls {
        let step = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = step {
            return Some(out);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Child role "cancel": `ITERATIONS` acquisitions cut short at random points.
fn play_canceller() {
    let kind = Kind::parse(&env("BACKEND"));
    let name = env("NAME");
    let dir = PathBuf::from(env("DIR"));
    let iterations: u64 = env("ITERATIONS").parse().expect("a number");
    let mut dice = Dice::new(rand_seed());
    let section = Section::new(&dir);
    let runtime = current_thread();
    let mut acquired = 0u64;
    let mut by_way = [0u64; 4];
    with_lock!(kind, &name, &dir, |lock| {
        runtime.block_on(async {
            for _ in 0..iterations {
                let way = dice.below(4);
                let guard = match way {
                    // Dropped before or after a random number of polls.
                    0 => poll_at_most(lock.lock_async(), dice.below(4))
                        .await
                        .map(|r| r.expect("lock_async")),
                    // A timed wait whose timeout may fire before, during or right at a grant.
                    1 => match lock
                        .lock_timeout(Duration::from_micros(dice.below(300)))
                        .await
                    {
                        Ok(guard) => Some(guard),
                        Err(SimpleLockError::TimedOut { .. }) => None,
                        Err(other) => panic!("lock_timeout: {other}"),
                    },
                    // tokio's own timeout around the plain wait: the future is dropped wherever
                    // it is when the timer fires.
                    2 => tokio::time::timeout(
                        Duration::from_micros(dice.below(500)),
                        lock.lock_async(),
                    )
                    .await
                    .ok()
                    .map(|r| r.expect("lock_async")),
                    // A try.
                    _ => match lock.try_lock_async().await {
                        Ok(guard) => Some(guard),
                        Err(SimpleLockError::AlreadyLocked { .. }) => None,
                        Err(other) => panic!("try_lock_async: {other}"),
                    },
                };
                let Some(guard) = guard else { continue };
                by_way[way as usize] += 1;
                acquired += 1;
                if dice.below(8) == 0 {
                    // Dropped right after the grant, nothing done (and not counted: the
                    // counter counts the critical sections).
                    drop(guard);
                    acquired -= 1;
                    by_way[way as usize] -= 1;
                    continue;
                }
                section.enter(false);
                section.increment();
                for _ in 0..dice.below(3) {
                    tokio::task::yield_now().await;
                }
                section.leave();
                if dice.below(2) == 0 {
                    guard.unlock().await.expect("unlock");
                } else {
                    drop(guard);
                }
            }
        });
        // Outside the runtime: PostgresLock's status is a blocking call.
        assert_ne!(
            lock.status().expect("status"),
            LockStatus::Mine,
            "a handle still holds the lock after all its guards are gone"
        );
        say(&format!("acquired {acquired} {by_way:?}"));
        // Alive, with the handle open, while the parent looks: a lock kept by this process for
        // a dropped future (a server session holding it, say) would still be held then.
        assert_eq!(hear(), "exit");
    });
}

fn cancel_safety(kind: Kind, test: &str) {
    if role().as_deref() == Some("cancel") {
        return play_canceller();
    }
    let _watchdog = Watchdog::new("cancel-safety across processes");
    const CHILDREN: u64 = 3;
    // 10,200 in all. On PostgreSQL too: an iteration is a round trip or two (~0.3 ms here), so
    // the three children take a few seconds.
    const ITERATIONS: u64 = 3400;
    let name = unique(&format!("cancel-{}", kind.tag()));
    let dir = scratch(&format!("cancel-{}", kind.tag()));
    let mut kids: Vec<Child> = (0..CHILDREN)
        .map(|_| {
            start_child(
                test,
                "cancel",
                &[
                    ("BACKEND", kind.tag().to_owned()),
                    ("NAME", name.clone()),
                    ("DIR", dir.display().to_string()),
                    ("ITERATIONS", ITERATIONS.to_string()),
                ],
            )
        })
        .collect();
    let mut total = 0u64;
    for kid in &mut kids {
        let said = kid.next();
        let count = said
            .strip_prefix("acquired ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("a child said {said:?}"));
        println!("{}: a child {said}", kind.tag());
        total += count;
    }
    let section = Section::new(&dir);
    let overlaps = Section::lines(&section.overlaps);
    assert!(overlaps.is_empty(), "two holders at once: {overlaps:?}");
    assert_eq!(
        section.count(),
        total,
        "an update was lost: two holders overlapped"
    );
    assert!(total > 0, "nobody ever acquired the lock");
    // Free at the end, while the children still live: no thread or task of a dead future took
    // it afterwards, and no handle kept it.
    with_lock!(kind, &name, &dir, |lock| {
        assert_eq!(lock.status().expect("status"), LockStatus::Open);
        lock.try_lock()
            .expect("the lock is free after every future was dropped");
        lock.try_unlock().expect("release");
    });
    for kid in &mut kids {
        kid.send("exit");
        finish(kid);
    }
    let _ = fs::remove_dir_all(&dir);
    if let Kind::Sema = kind {
        let _ = SemaphoreLock::remove(format!("/{name}"));
    }
}

#[test]
fn file_futures_dropped_at_random_points_never_leave_the_lock_held() {
    cancel_safety(
        Kind::File,
        "file_futures_dropped_at_random_points_never_leave_the_lock_held",
    );
}

#[test]
fn sema_futures_dropped_at_random_points_never_leave_the_lock_held() {
    cancel_safety(
        Kind::Sema,
        "sema_futures_dropped_at_random_points_never_leave_the_lock_held",
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_futures_dropped_at_random_points_never_leave_the_lock_held() {
    cancel_safety(
        Kind::Postgres,
        "postgres_futures_dropped_at_random_points_never_leave_the_lock_held",
    );
}

// ---------------------------------------------------------------------------------------------
// A holder killed in its critical section wakes the async waiters.

fn killed_holder(kind: Kind, test: &str) {
    if role().as_deref() == Some("hold") {
        return play_holder();
    }
    let _watchdog = Watchdog::new("an async waiter after its holder was killed");
    let name = unique(&format!("killed-{}", kind.tag()));
    let dir = scratch(&format!("killed-{}", kind.tag()));
    let mut holder = start_child(
        test,
        "hold",
        &[
            ("BACKEND", kind.tag().to_owned()),
            ("NAME", name.clone()),
            ("DIR", dir.display().to_string()),
        ],
    );
    assert_eq!(holder.next(), "held");
    let died = current_thread().block_on(async {
        with_lock!(kind, &name, &dir, |lock| {
            let mut waiting = Box::pin(lock.lock_async());
            // Really waiting: a few rounds of the runtime.
            assert!(
                poll_at_most(waiting.as_mut(), 20).await.is_none(),
                "acquired while another process holds the lock"
            );
            holder.kill();
            let guard = waiting.await.expect("the async wait after the holder died");
            guard.previous_holder_died()
        })
    });
    let _ = fs::remove_dir_all(&dir);
    if let Kind::Sema = kind {
        let _ = SemaphoreLock::remove(format!("/{name}"));
    }
    assert!(died, "the next holder was not told its predecessor died");
}

#[test]
fn file_killed_holder_wakes_the_async_waiter_and_is_reported_dead() {
    killed_holder(
        Kind::File,
        "file_killed_holder_wakes_the_async_waiter_and_is_reported_dead",
    );
}

#[test]
fn sema_killed_holder_wakes_the_async_waiter_and_is_reported_dead() {
    killed_holder(
        Kind::Sema,
        "sema_killed_holder_wakes_the_async_waiter_and_is_reported_dead",
    );
}

/// A timed wait gives up with `TimedOut` naming the timeout and the holding process.
#[test]
fn timed_async_waits_time_out_naming_the_holder() {
    let name = unique("timed");
    let dir = scratch("timed");
    current_thread().block_on(async {
        for kind in [Kind::File, Kind::Sema] {
            with_lock!(kind, &name, &dir, |holder| {
                let _held = holder.lock_async().await.expect("lock");
                with_lock!(kind, &name, &dir, |waiter| {
                    let timeout = Duration::from_millis(30);
                    match waiter.lock_timeout(timeout).await {
                        Err(SimpleLockError::TimedOut {
                            timeout: t, holder, ..
                        }) => {
                            assert_eq!(t, timeout);
                            assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
                        }
                        other => panic!("{}: expected TimedOut, got {other:?}", kind.tag()),
                    }
                });
            });
        }
    });
    let _ = fs::remove_dir_all(&dir);
    let _ = SemaphoreLock::remove(format!("/{name}"));
}

/// The generic bound works for code written once for every backend.
#[allow(dead_code, reason = "a compile-time check")]
async fn generic<L: AsyncConcreteLock>(lock: &mut L) -> simplelock::SimpleLockResult<()> {
    lock.lock_async().await?.unlock().await
}
