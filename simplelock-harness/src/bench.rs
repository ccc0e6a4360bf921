//! Multi-process measurements for `cargo xtask bench`: how fast a waiting process gets the lock
//! after its holder lets go (handoff), and how many acquisitions per second several contending
//! processes make (throughput), and how long a SIGKILLed holder keeps the others waiting
//! (recovery). Each prints its result as one JSON document on standard output (see
//! [`crate::results`]), which xtask reads; the peers' output goes to standard error.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{ConcreteLock, SimpleLockError};

use crate::backends;
use crate::results::{Handoff, Recovery, Throughput, emit};
use crate::state::now_ns;
use crate::worker::Mode;

/// A folder for one measurement, removed (with the backend's kernel object) when dropped.
struct Scratch {
    dir: PathBuf,
    backend: String,
    name: String,
}

impl Scratch {
    fn new(backend: &str, what: &str) -> Result<Self, String> {
        let pid = std::process::id();
        let dir = env::temp_dir().join(format!("simplelock-bench-{pid}-{backend}-{what}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Scratch {
            dir,
            backend: backend.to_owned(),
            name: format!("bench-{pid}-{backend}-{what}"),
        })
    }

    fn spawn(&self, args: &[String]) -> Result<Child, String> {
        let exe = env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(crate::cli::to_stderr()?)
            .spawn()
            .map_err(|e| format!("starting a peer: {e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        backends::cleanup(&self.backend, &self.name);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wait_ok(mut child: Child, what: &str) -> Result<(), String> {
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} ended with {status}"))
    }
}

fn read_u64s(path: &Path) -> Result<Vec<u64>, String> {
    let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap()))
        .collect())
}

fn write_u64s(path: &Path, values: &[u64]) -> Result<(), String> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// How a peer waits for the lock.
fn wait_for(lock: &mut dyn ConcreteLock, timed: bool) -> Result<(), SimpleLockError> {
    if timed {
        lock.timed_lock(Duration::from_secs(30))
    } else {
        lock.hang_lock()
    }
}

/// `bench-handoff BACKEND hang|timed|async SAMPLES`: two processes pass the lock back and forth; each
/// time, the new holder measures the time from the old holder's release to its own return from
/// the lock call. The holder keeps the lock for 2 ms or more (see [`hold_time`]), so the other is
/// always asleep in its wait.
#[derive(Debug, clap::Args)]
pub(crate) struct HandoffArgs {
    /// The lock: file, sema, flock or poll50
    backend: String,
    /// How the waiter waits (`async`: `lock_async().await` on tokio, file and sema only)
    #[arg(value_parser = ["hang", "timed", "async"])]
    how: String,
    /// Handoffs to measure
    samples: u64,
}

/// Runs the measurement and prints its [`Handoff`] result.
pub(crate) fn handoff(args: &HandoffArgs) -> Result<(), String> {
    let HandoffArgs {
        backend,
        how,
        samples,
    } = args;
    let samples = *samples;
    let scratch = Scratch::new(backend, &format!("handoff-{how}"))?;
    // The baton: [release time ns, id of the last holder].
    File::create(scratch.dir.join("baton"))
        .and_then(|f| f.write_all_at(&[0u8; 16], 0))
        .map_err(|e| format!("creating the baton: {e}"))?;
    let peer = |id: u64| {
        let args: Vec<String> = [
            "handoff-peer",
            backend,
            how,
            &scratch.dir.display().to_string(),
            &scratch.name,
            &id.to_string(),
            &(samples / 2 + 1).to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        scratch.spawn(&args)
    };
    let (a, b) = (peer(1)?, peer(2)?);
    wait_ok(a, "handoff peer 1")?;
    wait_ok(b, "handoff peer 2")?;
    let mut latencies = read_u64s(&scratch.dir.join("samples-1"))?;
    latencies.extend(read_u64s(&scratch.dir.join("samples-2"))?);
    latencies.sort_unstable();
    if latencies.is_empty() {
        return Err(format!("{backend}: no handoff was measured"));
    }
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    emit(Handoff {
        backend: backend.clone(),
        wait: how.clone(),
        samples: latencies.len() as u64,
        median_ns: at(0.5),
        p99_ns: at(0.99),
        mean_ns: latencies.iter().sum::<u64>() / latencies.len() as u64,
    })
}

/// How long a handoff peer keeps the lock: 2 ms, long enough for the other to be asleep in its
/// wait. A polling waiter would always wake at the same point of its period, so for it the time
/// also gets a part spread evenly over one period: the clock's nanoseconds, scrambled (rounds
/// are about one period apart, so the bare clock modulo the period would barely move).
fn hold_time(backend: &str) -> Duration {
    let base = Duration::from_millis(2);
    if backend == "poll50" {
        let scrambled = now_ns().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        base + Duration::from_nanos(scrambled % 50_000_000)
    } else {
        base
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct HandoffPeer {
    backend: String,
    how: String,
    dir: PathBuf,
    name: String,
    id: u64,
    rounds: u64,
}

/// One side of [`handoff`].
pub(crate) fn handoff_peer(args: &HandoffPeer) -> Result<(), String> {
    let HandoffPeer {
        backend,
        how,
        dir,
        name,
        id,
        rounds,
    } = args;
    let (id, rounds) = (*id, *rounds);
    if how == "async" {
        return crate::bench_async::handoff_peer(
            backend,
            dir,
            name,
            id,
            rounds,
            hold_time(backend),
        );
    }
    let timed = how == "timed";
    let mut lock = backends::open(backend, dir, name).map_err(|e| e.to_string())?;
    let baton = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("baton"))
        .map_err(|e| format!("opening the baton: {e}"))?;
    let read = |baton: &File| -> Result<(u64, u64), String> {
        let mut bytes = [0u8; 16];
        baton
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| format!("reading the baton: {e}"))?;
        Ok((
            u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            u64::from_le_bytes(bytes[8..].try_into().unwrap()),
        ))
    };
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        wait_for(lock.as_mut(), timed).map_err(|e| e.to_string())?;
        let acquired = now_ns();
        let (released, last) = read(&baton)?;
        if released != 0 && last != id {
            latencies.push(acquired.saturating_sub(released));
        }
        // Claim the baton so the other side knows it may queue up again.
        baton
            .write_all_at(&id.to_le_bytes(), 8)
            .map_err(|e| format!("writing the baton: {e}"))?;
        thread::sleep(hold_time(backend));
        let mut bytes = now_ns().to_le_bytes().to_vec();
        bytes.extend(id.to_le_bytes());
        baton
            .write_all_at(&bytes, 0)
            .map_err(|e| format!("writing the baton: {e}"))?;
        lock.try_unlock().map_err(|e| e.to_string())?;
        // Do not barge back in: wait until the other side has the lock (or is finished).
        let waited = Instant::now();
        while read(&baton)?.1 == id && waited.elapsed() < Duration::from_millis(500) {
            thread::sleep(Duration::from_micros(50));
        }
    }
    write_u64s(&dir.join(format!("samples-{id}")), &latencies)
}

/// `bench-throughput BACKEND PROCS MILLIS`: PROCS processes lock and unlock as fast as they can,
/// with nothing in between, for MILLIS milliseconds.
#[derive(Debug, clap::Args)]
pub(crate) struct ThroughputArgs {
    /// The lock: file, sema, flock or poll50
    backend: String,
    /// Contending processes
    procs: u64,
    /// How long to count, in milliseconds
    millis: u64,
}

/// Runs the measurement and prints its [`Throughput`] result.
pub(crate) fn throughput(args: &ThroughputArgs) -> Result<(), String> {
    let ThroughputArgs {
        backend,
        procs,
        millis,
    } = args;
    let (procs, millis) = (*procs, *millis);
    let scratch = Scratch::new(backend, "throughput")?;
    let dir = scratch.dir.display().to_string();
    let peers = (0..procs)
        .map(|id| {
            let args = [
                "throughput-peer",
                backend,
                &dir,
                &scratch.name,
                &id.to_string(),
            ];
            scratch.spawn(&args.map(String::from))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Count only while every peer runs: the start mark after they are all up, the stop mark
    // before any has been told to stop.
    let ready = || (0..procs).all(|id| scratch.dir.join(format!("up-{id}")).exists());
    let waited = Instant::now();
    while !ready() {
        if waited.elapsed() > Duration::from_secs(30) {
            return Err("throughput peers did not start".into());
        }
        thread::sleep(Duration::from_millis(1));
    }
    fs::write(scratch.dir.join("go"), b"").map_err(|e| format!("writing go: {e}"))?;
    let start = Instant::now();
    thread::sleep(Duration::from_millis(millis));
    fs::write(scratch.dir.join("stop"), b"").map_err(|e| format!("writing stop: {e}"))?;
    let elapsed = start.elapsed();
    for (id, peer) in peers.into_iter().enumerate() {
        wait_ok(peer, &format!("throughput peer {id}"))?;
    }
    let total: u64 = (0..procs)
        .map(|id| read_u64s(&scratch.dir.join(format!("count-{id}"))).map(|v| v[0]))
        .sum::<Result<u64, _>>()?;
    emit(Throughput {
        backend: backend.clone(),
        procs,
        acquisitions: total,
        seconds: elapsed.as_secs_f64(),
        per_second: total as f64 / elapsed.as_secs_f64(),
    })
}

#[derive(Debug, clap::Args)]
pub(crate) struct ThroughputPeer {
    backend: String,
    dir: PathBuf,
    name: String,
    id: u64,
}

/// One of the processes of [`throughput`].
pub(crate) fn throughput_peer(args: &ThroughputPeer) -> Result<(), String> {
    let ThroughputPeer {
        backend,
        dir,
        name,
        id,
    } = args;
    let mut lock = backends::open(backend, dir, name).map_err(|e| e.to_string())?;
    fs::write(dir.join(format!("up-{id}")), b"").map_err(|e| format!("writing up: {e}"))?;
    let (go, stop) = (dir.join("go"), dir.join("stop"));
    while !go.exists() {
        thread::sleep(Duration::from_micros(100));
    }
    let mut count = 0u64;
    loop {
        // Look at the stop mark only now and then: it costs a system call.
        if count.is_multiple_of(256) && stop.exists() {
            break;
        }
        lock.hang_lock().map_err(|e| e.to_string())?;
        lock.try_unlock().map_err(|e| e.to_string())?;
        count += 1;
    }
    write_u64s(&dir.join(format!("count-{id}")), &[count])
}

/// `bench-recovery BACKEND KILLS [--wait hang|async]`: holders SIGKILLed inside the lock (3
/// processes, 2 ms critical sections; 2 for the permits, of which each process keeps one of
/// the 3, leaving one to wait for); the time from each kill to the next holder's entry.
#[derive(Debug, clap::Args)]
pub(crate) struct RecoveryArgs {
    /// The lock: file, sema, file-permits or sema-permits
    backend: String,
    /// Holders to kill
    kills: u64,
    /// How the waiters wait (`async`: `lock_async().await` on tokio; file, sema, sema-permits)
    #[arg(long, value_parser = ["hang", "async"], default_value = "hang")]
    wait: String,
}

/// Runs the measurement and prints its [`Recovery`] result.
pub(crate) fn recovery(args: &RecoveryArgs) -> Result<(), String> {
    let RecoveryArgs {
        backend,
        kills,
        wait,
    } = args;
    let kills = *kills;
    let mode = if wait == "async" {
        Mode::Async
    } else {
        Mode::Hang
    };
    // A permits process keeps one permit besides the one it passes (see `backends.rs`): with
    // 3 permits, 2 processes leave one to wait for.
    let procs = if backend.ends_with("-permits") { 2 } else { 3 };
    let report = crate::run::recovery_storm(backend, procs, kills, Duration::from_millis(2), mode)?;
    let failures = report.failures();
    if !failures.is_empty() {
        return Err(format!("{backend} ({wait}): {}", failures.join(", ")));
    }
    let mut sorted = report.recoveries.clone();
    sorted.sort();
    eprintln!(
        "{backend} ({wait}): recoveries (µs, sorted): {:?}",
        sorted.iter().map(Duration::as_micros).collect::<Vec<_>>()
    );
    let nanos =
        |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    emit(Recovery {
        backend: backend.clone(),
        wait: wait.clone(),
        kills: report.kills,
        inside: report.kills_inside,
        median_ns: nanos(report.median_recovery()),
        worst_ns: nanos(report.worst_recovery()),
    })
}
