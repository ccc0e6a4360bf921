//! The async measurements of `cargo xtask bench` (issue 12): the handoff to a waiter in
//! `lock_async().await` (`bench-handoff BACKEND async N`, next to the blocking `hang`), and
//! `bench-ticker`, how late a ticker task on a current-thread runtime runs while 1,000 tasks of
//! that runtime wait for a lock another process holds.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use simplelock_core::{AsyncConcreteLock, AsyncLockExt, ConcreteLock, LockStatus};
use simplelock_file::FileLock;
use simplelock_sema::SemaphoreLock;

use crate::results::{Ticker, emit};
use crate::state::now_ns;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a tokio runtime: {e}"))
}

/// Runs `body` with a handle on the lock of `backend` (the same locks as `backends::open`: the
/// file `dir/file.lock`, the semaphore `name`), typed, since the async wait is generic.
macro_rules! with_async_lock {
    ($backend:expr, $dir:expr, $name:expr, |$lock:ident| $body:expr) => {
        match $backend {
            "file" => {
                let $lock = FileLock::options()
                    .with_folder($dir)
                    .named("file")
                    .map_err(|e| e.to_string())?;
                $body
            }
            "sema" => {
                let $lock = SemaphoreLock::named($name).map_err(|e| e.to_string())?;
                $body
            }
            other => Err(format!(
                "{other}: no async wait measured for this lock (file, sema)"
            )),
        }
    };
}

/// One side of `bench-handoff BACKEND async N`: as the blocking peer, but it waits in
/// `lock_async().await` on a current-thread tokio runtime, and holds with a tokio sleep.
pub(crate) fn handoff_peer(
    backend: &str,
    dir: &Path,
    name: &str,
    id: u64,
    rounds: u64,
    hold: Duration,
) -> Result<(), String> {
    let baton = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("baton"))
        .map_err(|e| format!("opening the baton: {e}"))?;
    let latencies = runtime()?.block_on(async {
        with_async_lock!(backend, dir, name, |lock| {
            peer_rounds(lock, &baton, id, rounds, hold).await
        })
    })?;
    let bytes: Vec<u8> = latencies.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = dir.join(format!("samples-{id}"));
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn read_baton(baton: &File) -> Result<(u64, u64), String> {
    let mut bytes = [0u8; 16];
    baton
        .read_exact_at(&mut bytes, 0)
        .map_err(|e| format!("reading the baton: {e}"))?;
    let half = |range: std::ops::Range<usize>| {
        u64::from_le_bytes(bytes[range].try_into().expect("8 bytes"))
    };
    Ok((half(0..8), half(8..16)))
}

async fn peer_rounds<L: AsyncConcreteLock>(
    mut lock: L,
    baton: &File,
    id: u64,
    rounds: u64,
    hold: Duration,
) -> Result<Vec<u64>, String> {
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        let guard = lock.lock_async().await.map_err(|e| e.to_string())?;
        let acquired = now_ns();
        let (released, last) = read_baton(baton)?;
        if released != 0 && last != id {
            latencies.push(acquired.saturating_sub(released));
        }
        baton
            .write_all_at(&id.to_le_bytes(), 8)
            .map_err(|e| format!("writing the baton: {e}"))?;
        tokio::time::sleep(hold).await;
        let mut bytes = now_ns().to_le_bytes().to_vec();
        bytes.extend(id.to_le_bytes());
        baton
            .write_all_at(&bytes, 0)
            .map_err(|e| format!("writing the baton: {e}"))?;
        guard.unlock().await.map_err(|e| e.to_string())?;
        // Do not barge back in: wait until the other side has the lock (or is finished).
        let waited = Instant::now();
        while read_baton(baton)?.1 == id && waited.elapsed() < Duration::from_millis(500) {
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
    }
    Ok(latencies)
}

/// `bench-ticker BACKEND WAITERS MILLIS`: another process holds the lock for MILLIS ms while
/// WAITERS tasks of a current-thread runtime wait for it in `lock_async().await` and a ticker
/// task of the same runtime sleeps 10 ms at a time; the result is the ticker's largest gap
/// between two ticks (10 ms if nothing got in its way). Then the holder releases and every
/// waiter gets its turn.
#[derive(Debug, clap::Args)]
pub(crate) struct TickerArgs {
    /// The lock: file or sema
    backend: String,
    /// Tasks waiting for the lock
    waiters: u64,
    /// How long the other process holds it, in milliseconds
    millis: u64,
}

/// The ticker's period.
pub const TICK: Duration = Duration::from_millis(10);

/// The ticker of `bench-ticker` (and of simplelock-postgres's `pg_bench ticker`): sleeps
/// [`TICK`] at a time on the current runtime while the lock is held (`hold`, less 100 ms for the
/// holder's start), and returns the ticks counted and the largest time between two of them.
pub async fn tick_while_held(hold: Duration) -> (u64, Duration) {
    let mut ticks = 0u64;
    let mut max_gap = Duration::ZERO;
    let mut last = Instant::now();
    let end = last + hold.saturating_sub(Duration::from_millis(100));
    while Instant::now() < end {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        max_gap = max_gap.max(now - last);
        last = now;
        ticks += 1;
    }
    (ticks, max_gap)
}

/// Runs the measurement and prints its [`Ticker`] result.
pub(crate) fn ticker(args: &TickerArgs) -> Result<(), String> {
    let TickerArgs {
        backend,
        waiters,
        millis,
    } = args;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("simplelock-bench-{pid}-{backend}-ticker"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let name = format!("/bench-{pid}-{backend}-ticker");
    let result = measure(
        backend,
        &dir,
        &name,
        *waiters,
        Duration::from_millis(*millis),
    );
    if backend == "sema" {
        let _ = SemaphoreLock::remove(&name);
    }
    let _ = std::fs::remove_dir_all(&dir);
    emit(result?)
}

fn measure(
    backend: &str,
    dir: &Path,
    name: &str,
    waiters: u64,
    hold: Duration,
) -> Result<Ticker, String> {
    let mut holder = spawn_holder(backend, dir, name, hold)?;
    // Wait until the holder has the lock.
    let started = Instant::now();
    loop {
        let taken: Result<bool, String> = with_async_lock!(backend, dir, name, |lock| {
            Ok(lock.status().map_err(|e| e.to_string())? == LockStatus::Taken)
        });
        if taken? {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = holder.kill();
            return Err("the holder did not take the lock within 30 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let outcome = runtime()?.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..waiters {
            let (backend, dir, name) = (backend.to_owned(), dir.to_owned(), name.to_owned());
            tasks.push(tokio::spawn(async move {
                let waited: Result<(), String> =
                    with_async_lock!(backend.as_str(), &dir, &name, |lock| {
                        wait_once(lock).await
                    });
                waited
            }));
        }
        let (ticks, max_gap) = tick_while_held(hold).await;
        for task in tasks {
            task.await.map_err(|e| format!("a waiter task: {e}"))??;
        }
        Ok::<_, String>((ticks, max_gap))
    });
    let status = holder
        .wait()
        .map_err(|e| format!("waiting for the holder: {e}"))?;
    if !status.success() {
        return Err(format!("the holder ended with {status}"));
    }
    let (ticks, max_gap) = outcome?;
    Ok(Ticker {
        backend: backend.to_owned(),
        waiters,
        period_ns: TICK.as_nanos() as u64,
        ticks,
        max_gap_ns: max_gap.as_nanos() as u64,
    })
}

async fn wait_once<L: AsyncConcreteLock>(mut lock: L) -> Result<(), String> {
    let guard = lock.lock_async().await.map_err(|e| e.to_string())?;
    guard.unlock().await.map_err(|e| e.to_string())
}

fn spawn_holder(backend: &str, dir: &Path, name: &str, hold: Duration) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    Command::new(exe)
        .args([
            "ticker-holder",
            backend,
            &dir.display().to_string(),
            name,
            &hold.as_millis().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(crate::cli::to_stderr()?)
        .spawn()
        .map_err(|e| format!("starting the holder: {e}"))
}

/// The other process of `bench-ticker`: holds the lock for MILLIS ms.
#[derive(Debug, clap::Args)]
pub(crate) struct TickerHolder {
    backend: String,
    dir: PathBuf,
    name: String,
    millis: u64,
}

/// Plays [`TickerHolder`].
pub(crate) fn ticker_holder(args: &TickerHolder) -> Result<(), String> {
    let mut lock =
        crate::backends::open(&args.backend, &args.dir, &args.name).map_err(|e| e.to_string())?;
    lock.hang_lock().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(args.millis));
    lock.try_unlock().map_err(|e| e.to_string())
}
