//! The PostgreSQL measurements of `cargo xtask bench`: one round trip, uncontended lock+unlock,
//! and handoff from one client's release to another client's return from its blocked lock
//! call — each for `PostgresLock` and for the same advisory-lock calls made raw with the
//! `postgres` crate (`raw`), and raw plus the fencing token (`raw-token`), in the same run;
//! `PostgresLock`'s timed wait (`ours-timed`: `timed_lock` with a timeout that does not run
//! out, the waiter in the server's queue as for `ours`);
//! with feature `tokio`, also `PostgresLock`'s async wait (`ours-async`: `lock_async().await` on
//! a current-thread runtime, released by `unlock().await`); and
//! `PostgresPermits` (`permits`: one of 3 permits, each process keeping one more through a
//! second handle, so that one permit passes back and forth and the waiter waits for any of the
//! three, woken by the release's notification); and the floor of such a wake-up made raw
//! (`raw-notify`: one key, a try, a wait for the release's `pg_notify`, a try again; only the
//! waiter listens). Prints one line of JSON on standard output and
//! nothing else:
//! the harness's typed result (`simplelock_harness::results::Postgres`), which `cargo xtask
//! bench` reads.
//!
//! `cargo run --release -p simplelock-postgres --example pg_bench -- [SAMPLES]`, with the server
//! in `$SIMPLELOCK_POSTGRES_URL` (else `postgres://127.0.0.1:5432/test`). Both sides connect
//! without TLS, so that only the lock code differs.
//!
//! `pg_bench ticker MILLIS` (feature `tokio`) is issue 12's ticker for `PostgresLock`: another
//! session holds the lock for MILLIS ms while tasks of a current-thread runtime wait for it in
//! `lock_async().await` and a ticker task of that runtime sleeps 10 ms at a time; it prints the
//! ticker's largest gap (`results::Ticker`). Each waiter is a handle with a connection of its
//! own, so there are as many waiters as the server has connections to spare (up to 1,000;
//! `max_connections` is 100 by default), not always 1,000 as for the other backends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simplelock_core::ConcreteLock;
use simplelock_harness::results::{Postgres, PostgresMeasure, emit};
use simplelock_postgres::{FencingTokens, PostgresLock, PostgresPermits, key_for_name};

/// The timeout of `ours-timed`'s waits: longer than any wait here, so that it measures the
/// timed wait's path (a `lock_timeout` on the server), not a timeout.
const TIMED_WAIT: Duration = Duration::from_secs(60);

fn url() -> String {
    let url = std::env::var("SIMPLELOCK_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned());
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    } else {
        format!("{url} sslmode=disable")
    }
}

fn raw() -> postgres::Client {
    postgres::Client::connect(&url(), postgres::NoTls).expect("connecting to the server")
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// One side of the lock, ours or raw, with the same three calls.
#[allow(
    clippy::large_enum_variant,
    reason = "a couple of values per process, never moved in a loop"
)]
enum Client {
    Ours(Box<PostgresLock>),
    /// `timed_lock` with a timeout that never runs out here (the wait of `ours-timed`).
    Timed(Box<PostgresLock>),
    #[cfg(feature = "tokio")]
    Async(Box<PostgresLock>, tokio::runtime::Runtime),
    /// A permit handle, and one more permit kept by this process.
    Permits {
        permit: Box<PostgresPermits>,
        _kept: Box<PostgresPermits>,
    },
    /// The floor of a notify-then-try wait, made raw (what `PostgresPermits` does, on one key):
    /// a try, and after a failed one `LISTEN`, a try again, and waits for a notification of the
    /// channel between tries; `UNLISTEN` once granted (with the release, after the waiter's
    /// time was taken). The release is `pg_advisory_unlock` and `pg_notify` in one statement,
    /// without a WAL flush. Only a waiter listens, as `PostgresPermits`' handles: a listening
    /// session of the database is woken by every notification, on any channel.
    RawNotify {
        c: postgres::Client,
        try_lock: postgres::Statement,
        release: postgres::Statement,
        key: i64,
        channel: String,
        listening: bool,
    },
    Raw(
        postgres::Client,
        postgres::Statement,
        postgres::Statement,
        i64,
    ),
}

impl Client {
    fn new(kind: &str, name: &str) -> Client {
        match kind {
            "ours" => Client::Ours(Box::new(
                PostgresLock::options().with_url(url()).named(name).unwrap(),
            )),
            "ours-timed" => Client::Timed(Box::new(
                PostgresLock::options().with_url(url()).named(name).unwrap(),
            )),
            #[cfg(feature = "tokio")]
            "ours-async" => Client::Async(
                Box::new(PostgresLock::options().with_url(url()).named(name).unwrap()),
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
            "permits" => {
                let open = || {
                    Box::new(
                        PostgresPermits::options()
                            .with_url(url())
                            .named(name, 3)
                            .unwrap(),
                    )
                };
                let mut kept = open();
                kept.try_lock().unwrap();
                Client::Permits {
                    permit: open(),
                    _kept: kept,
                }
            }
            "ours-no-token" => Client::Ours(Box::new(
                PostgresLock::options()
                    .with_url(url())
                    .with_fencing_tokens(FencingTokens::Disabled)
                    .named(name)
                    .unwrap(),
            )),
            "raw-notify" => {
                let mut c = raw();
                c.batch_execute("SET synchronous_commit = off").unwrap();
                Client::RawNotify {
                    try_lock: c.prepare("SELECT pg_try_advisory_lock($1)").unwrap(),
                    release: c
                        .prepare("SELECT pg_advisory_unlock($1), pg_notify($2, '')")
                        .unwrap(),
                    c,
                    key: key_for_name(name),
                    channel: format!("rn_{:016x}", key_for_name(name) as u64),
                    listening: false,
                }
            }
            _ => {
                let mut c = raw();
                // `raw-token`: the raw call plus the fencing token PostgresLock takes (a
                // transaction id, whose commit waits for a WAL flush), to tell the token's cost
                // from the rest.
                let sql = if kind == "raw-token" {
                    "SELECT pg_current_xact_id()::text FROM pg_advisory_lock($1)"
                } else {
                    "SELECT pg_advisory_lock($1)"
                };
                let lock = c.prepare(sql).unwrap();
                let unlock = c.prepare("SELECT pg_advisory_unlock($1)").unwrap();
                Client::Raw(c, lock, unlock, key_for_name(name))
            }
        }
    }
    fn lock(&mut self) {
        match self {
            Client::Ours(l) => l.hang_lock().unwrap(),
            Client::Timed(l) => l.timed_lock(TIMED_WAIT).unwrap(),
            #[cfg(feature = "tokio")]
            Client::Async(l, rt) => rt.block_on(async {
                use simplelock_core::AsyncLockExt;
                // Held on after the guard: `unlock` releases it.
                std::mem::forget(l.lock_async().await.unwrap());
            }),
            Client::Permits { permit, .. } => permit.hang_lock().unwrap(),
            Client::RawNotify {
                c,
                try_lock,
                key,
                channel,
                listening,
                ..
            } => {
                use postgres::fallible_iterator::FallibleIterator;
                while !c.query_one(&*try_lock, &[key]).unwrap().get::<_, bool>(0) {
                    if !*listening {
                        // Then a try at once: it sees a release before the LISTEN.
                        c.batch_execute(&format!("LISTEN {channel}")).unwrap();
                        *listening = true;
                        continue;
                    }
                    let mut woken = c.notifications();
                    let _ = woken
                        .timeout_iter(Duration::from_millis(100))
                        .next()
                        .unwrap();
                }
            }
            Client::Raw(c, lock, _, key) => {
                c.query_one(&*lock, &[key]).unwrap();
            }
        }
    }
    fn unlock(&mut self) {
        match self {
            Client::Ours(l) | Client::Timed(l) => l.try_unlock().unwrap(),
            #[cfg(feature = "tokio")]
            Client::Async(l, rt) => {
                use simplelock_core::AsyncConcreteLock;
                // What `AsyncLockGuard::unlock().await` does.
                rt.block_on(std::future::poll_fn(|cx| l.poll_unlock(cx)))
                    .unwrap();
            }
            Client::Permits { permit, .. } => permit.try_unlock().unwrap(),
            Client::RawNotify {
                c,
                release,
                key,
                channel,
                listening,
                ..
            } => {
                if std::mem::take(listening) {
                    use postgres::fallible_iterator::FallibleIterator;
                    c.batch_execute(&format!("UNLISTEN {channel}")).unwrap();
                    // What arrived meanwhile is of no more interest.
                    while c.notifications().iter().next().unwrap().is_some() {}
                }
                let released: bool = c.query_one(&*release, &[key, channel]).unwrap().get(0);
                assert!(released);
            }
            Client::Raw(c, _, unlock, key) => {
                let released: bool = c.query_one(&*unlock, &[key]).unwrap().get(0);
                assert!(released);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("waiter") {
        return waiter(&args[1], &args[2]);
    }
    if args.first().map(String::as_str) == Some("ticker") {
        let millis = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
        return ticker::run(Duration::from_millis(millis));
    }
    let samples: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(300);
    let name = format!("bench-{}", std::process::id());

    let mut c = raw();
    let one = c.prepare("SELECT 1").unwrap();
    let rt: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            c.query_one(&one, &[]).unwrap();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    let roundtrip_ns = median(rt) as u64;

    // The variants take turns, sample by sample, so that all meet the same machine: on a busy
    // machine, measuring one after the other compares the load more than the code.
    const KINDS: &[&str] = &[
        "raw",
        "raw-token",
        "ours",
        "ours-timed",
        "ours-no-token",
        #[cfg(feature = "tokio")]
        "ours-async",
        "permits",
        "raw-notify",
    ];
    let mut clients: Vec<Client> = KINDS
        .iter()
        .map(|kind| Client::new(kind, &format!("{name}-u-{kind}")))
        .collect();
    let mut pairs = vec![Vec::new(); KINDS.len()];
    for _ in 0..samples {
        for (client, pairs) in clients.iter_mut().zip(&mut pairs) {
            let t = Instant::now();
            client.lock();
            client.unlock();
            pairs.push(t.elapsed().as_nanos() as f64);
        }
    }
    let uncontended = KINDS.iter().zip(pairs).map(measure).collect();
    drop(clients);

    let mut sides: Vec<Handoff> = KINDS
        .iter()
        .map(|kind| Handoff::new(kind, &format!("{name}-h-{kind}")))
        .collect();
    let mut handoffs = vec![Vec::new(); KINDS.len()];
    for _ in 0..samples {
        for (side, handoffs) in sides.iter_mut().zip(&mut handoffs) {
            handoffs.push(side.once(&mut c));
        }
    }
    drop(sides);
    let handoff = KINDS.iter().zip(handoffs).map(measure).collect();
    let result = Postgres {
        samples: samples as u64,
        roundtrip_ns,
        uncontended,
        handoff,
    };
    if let Err(err) = emit(result) {
        eprintln!("pg_bench: {err}");
        std::process::exit(1);
    }
}

/// A variant's times, as the result says them.
fn measure((variant, times): (&&str, Vec<f64>)) -> PostgresMeasure {
    PostgresMeasure {
        variant: (*variant).to_owned(),
        median_ns: median(times.clone()) as u64,
        p99_ns: p99(times) as u64,
    }
}

/// A holder in this process and a waiting client in a child process, on one lock.
struct Handoff {
    holder: Client,
    child: std::process::Child,
    to_child: std::process::ChildStdin,
    from_child: BufReader<std::process::ChildStdout>,
    halves: (i64, i64),
    /// A permits waiter, which sleeps in the client (on notifications), not in the server.
    permits: bool,
}

impl Handoff {
    fn new(kind: &str, lock_name: &str) -> Handoff {
        let key = key_for_name(lock_name);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["waiter", kind, lock_name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Handoff {
            holder: Client::new(kind, lock_name),
            to_child: child.stdin.take().unwrap(),
            from_child: BufReader::new(child.stdout.take().unwrap()),
            child,
            halves: (
                ((key as u64) >> 32) as i64,
                ((key as u64) & 0xffff_ffff) as i64,
            ),
            permits: kind == "permits" || kind.starts_with("raw-notify"),
        }
    }

    /// One handoff: lock, let the child wait, release; the time from the release call to the
    /// child's return from its lock call.
    fn once(&mut self, monitor: &mut postgres::Client) -> f64 {
        let mut line = String::new();
        self.holder.lock();
        writeln!(self.to_child, "go").unwrap();
        self.from_child.read_line(&mut line).unwrap();
        // Until the server lists the waiter, it may not be waiting yet (an async waiter too: it
        // waits in the server's queue). A permits waiter is not listed (it sleeps in the
        // client): it has tried every permit and sleeps well within a pause of 20 ms.
        if self.permits {
            std::thread::sleep(Duration::from_millis(20));
        } else {
            self.until_the_server_lists_the_waiter(monitor);
        }
        let released_at = now_ns();
        self.holder.unlock();
        line.clear();
        self.from_child.read_line(&mut line).unwrap();
        let acquired_at: u128 = line.trim().parse().unwrap();
        acquired_at.saturating_sub(released_at) as f64
    }
}

impl Handoff {
    fn until_the_server_lists_the_waiter(&self, monitor: &mut postgres::Client) {
        let start = Instant::now();
        loop {
            let waiting: i64 = monitor
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND classid::bigint = $1 AND objid::bigint = $2",
                    &[&self.halves.0, &self.halves.1],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the waiter never waited"
            );
        }
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let _ = writeln!(self.to_child, "stop");
        let _ = self.child.wait();
    }
}

/// The waiting client: on each `go`, says it is about to wait, waits, and reports when its lock
/// call returned (before releasing).
fn waiter(kind: &str, name: &str) {
    let mut client = Client::new(kind, name);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        if line.unwrap() != "go" {
            break;
        }
        writeln!(out, "waiting").unwrap();
        out.flush().unwrap();
        client.lock();
        let at = now_ns();
        client.unlock();
        writeln!(out, "{at}").unwrap();
        out.flush().unwrap();
    }
}

/// `pg_bench ticker MILLIS`.
#[cfg(feature = "tokio")]
mod ticker {
    use std::time::Duration;

    use simplelock_core::AsyncLockExt;
    use simplelock_harness::results::{Ticker, emit};
    use simplelock_harness::{TICK, tick_while_held};
    use simplelock_postgres::{PostgresLock, key_for_name};
    /// Connections left to others: the holder's, and a margin for the server's other clients.
    const SPARE: i64 = 10;

    /// Measures and prints the result.
    pub(super) fn run(hold: Duration) {
        let name = format!("bench-{}-ticker", std::process::id());
        let mut monitor = super::raw();
        // As many waiters as the server takes connections for, after the reserved ones and
        // those open now.
        let free: i32 = monitor
            .query_one(
                "SELECT current_setting('max_connections')::int \
                        - current_setting('superuser_reserved_connections')::int \
                        - (SELECT count(*) FROM pg_stat_activity)::int",
                &[],
            )
            .unwrap()
            .get(0);
        let waiters = (i64::from(free) - SPARE).clamp(1, 1000) as u64;
        // The holder: another session, on a thread of its own (its calls block).
        let (taken_tx, taken_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let key = key_for_name(&name);
            monitor
                .execute("SELECT pg_advisory_lock($1)", &[&key])
                .unwrap();
            taken_tx.send(name).unwrap();
            std::thread::sleep(hold);
            monitor
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .unwrap();
        });
        let name = taken_rx.recv().expect("the holder took the lock");
        // Opening connects (a blocking call): done before the runtime runs.
        let handles: Vec<PostgresLock> = (0..waiters)
            .map(|_| {
                PostgresLock::options()
                    .with_url(super::url())
                    .named(&name)
                    .unwrap()
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ticks, max_gap) = runtime.block_on(async {
            let tasks: Vec<_> = handles
                .into_iter()
                .map(|mut lock| {
                    tokio::spawn(async move {
                        let guard = lock.lock_async().await.unwrap();
                        guard.unlock().await.unwrap();
                    })
                })
                .collect();
            let ticked = tick_while_held(hold).await;
            for task in tasks {
                task.await.expect("a waiter task");
            }
            ticked
        });
        holder.join().expect("the holder");
        let result = Ticker {
            backend: "postgres".to_owned(),
            waiters,
            period_ns: TICK.as_nanos() as u64,
            ticks,
            max_gap_ns: max_gap.as_nanos() as u64,
        };
        if let Err(err) = emit(result) {
            eprintln!("pg_bench: {err}");
            std::process::exit(1);
        }
    }
}

/// `pg_bench ticker` needs the async wait.
#[cfg(not(feature = "tokio"))]
mod ticker {
    /// Refuses: built without feature `tokio`.
    pub(super) fn run(_: std::time::Duration) {
        eprintln!("pg_bench: the ticker needs feature tokio");
        std::process::exit(2);
    }
}
