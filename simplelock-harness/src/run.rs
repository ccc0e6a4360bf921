//! Runs of worker processes against one lock: the counter run (every worker completes its
//! rounds; the total must be exact) and the kill storm (holders SIGKILLed inside their critical
//! section; the others must carry on, be told, and never overlap).

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::backends;
use crate::state::{State, StateFile, Tally, now_ns};
use crate::worker::{Job, Mode, stop_path, tally_path};

/// Backends that say when the previous holder died; a missed death is a failure for them.
pub fn reports_deaths(backend: &str) -> bool {
    matches!(backend, "file" | "sema")
}

/// Worker processes sharing one lock, in a folder of their own.
struct Run {
    backend: String,
    dir: PathBuf,
    name: String,
    workers: Vec<(usize, Child)>,
    next_index: usize,
}

impl Run {
    fn new(backend: &str, tag: &str) -> Result<Self, String> {
        let pid = std::process::id();
        let dir = env::temp_dir().join(format!("simplelock-contention-{pid}-{backend}-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        StateFile::create(&crate::worker::state_path(&dir))
            .map_err(|e| format!("creating the state file: {e}"))?;
        let name = format!("contention-{pid}-{backend}-{tag}");
        // Opening once here turns a bad backend name into one clear error instead of N.
        drop(backends::open(backend, &dir, &name).map_err(|e| e.to_string())?);
        Ok(Run {
            backend: backend.to_owned(),
            dir,
            name,
            workers: Vec::new(),
            next_index: 0,
        })
    }

    fn spawn(&mut self, iterations: u64, hold: Duration, mode: Mode) -> Result<u32, String> {
        let job = Job {
            backend: self.backend.clone(),
            dir: self.dir.clone(),
            name: self.name.clone(),
            index: self.next_index,
            iterations,
            hold,
            mode,
        };
        let exe = env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
        let child = Command::new(exe)
            .args(job.to_args())
            .stdin(Stdio::null())
            .stdout(crate::cli::to_stderr()?)
            .spawn()
            .map_err(|e| format!("starting a worker: {e}"))?;
        let pid = child.id();
        self.workers.push((self.next_index, child));
        self.next_index += 1;
        Ok(pid)
    }

    fn state(&self) -> Result<State, String> {
        StateFile::open(&crate::worker::state_path(&self.dir))
            .and_then(|file| file.read())
            .map_err(|e| format!("reading the state file: {e}"))
    }

    /// Waits for every worker; a worker that fails or hangs fails the run.
    fn wait_all(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let mut failures = Vec::new();
        for (index, child) in &mut self.workers {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        failures.push(format!("worker {index} ended with {status}"));
                        break;
                    }
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        failures.push(format!("worker {index} did not finish in {patience:?}"));
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(2)),
                    Err(e) => {
                        failures.push(format!("waiting for worker {index}: {e}"));
                        break;
                    }
                }
            }
        }
        self.workers.clear();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Critical sections completed, as the workers' own tallies say.
    fn completed(&self) -> Result<u64, String> {
        (0..self.next_index)
            .map(|index| Tally::read(&tally_path(&self.dir, index)).map(|t| t.completed))
            .sum::<std::io::Result<u64>>()
            .map_err(|e| format!("reading tallies: {e}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            let _ = child.kill();
            let _ = child.wait();
        }
        backends::cleanup(&self.backend, &self.name);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What a counter run saw.
#[derive(Debug, Clone)]
pub struct CounterReport {
    /// Critical sections the workers were told to complete.
    pub expected: u64,
    /// The counter they incremented, at the end.
    pub counter: u64,
    /// Critical sections entered.
    pub entries: u64,
    /// Critical sections entered while another process was inside.
    pub overlaps: u64,
    /// Deaths reported although nobody died.
    pub false_deaths: u64,
    /// How long the run took.
    pub elapsed: Duration,
}

impl CounterReport {
    /// Increments overwritten by another process.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.counter)
    }

    /// Whether the lock did its job.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.overlaps > 0 {
            failures.push(format!("{} overlapping critical sections", self.overlaps));
        }
        if self.counter != self.expected {
            failures.push(format!(
                "counter {} != expected {}",
                self.counter, self.expected
            ));
        }
        if self.false_deaths > 0 {
            failures.push(format!(
                "{} deaths reported though nobody died",
                self.false_deaths
            ));
        }
        failures
    }
}

/// `procs` workers each complete `iterations` critical sections.
///
/// The workers are this program re-run as `worker ...`: its `main` must start with
/// [`play_role_if_child`](crate::play_role_if_child).
pub fn counter_run(
    backend: &str,
    procs: usize,
    iterations: u64,
    hold: Duration,
    mode: Mode,
) -> Result<CounterReport, String> {
    let mut run = Run::new(backend, "counter")?;
    let start = Instant::now();
    for _ in 0..procs {
        run.spawn(iterations, hold, mode)?;
    }
    run.wait_all(Duration::from_secs(600))?;
    let elapsed = start.elapsed();
    let state = run.state()?;
    let completed = run.completed()?;
    let expected = procs as u64 * iterations;
    if completed != expected {
        return Err(format!(
            "workers completed {completed} rounds, not {expected}"
        ));
    }
    Ok(CounterReport {
        expected,
        counter: state.counter,
        entries: state.entries,
        overlaps: state.overlaps,
        false_deaths: state.died_outside_marker + state.died_reported + state.recoveries,
        elapsed,
    })
}

/// What a kill storm saw.
#[derive(Debug, Clone, Default)]
pub struct StormReport {
    /// The backend's name (see `backends.rs`).
    pub backend: String,
    /// Holders killed.
    pub kills: u64,
    /// Kills that landed inside the critical section (the next holder found the dead occupant).
    pub kills_inside: u64,
    /// Of those, how many the next holder was told about (`PreviousHolder::Died`).
    pub died_reported: u64,
    /// Deaths inside the lock that the next holder was not told about.
    pub deaths_missed: u64,
    /// Critical sections entered while another process was inside.
    pub overlaps: u64,
    /// Increments overwritten by another process.
    pub lost_updates: u64,
    /// Critical sections entered.
    pub entries: u64,
    /// From SIGKILL to the next holder's entry, for kills inside the critical section.
    pub recoveries: Vec<Duration>,
}

impl StormReport {
    /// The longest recovery.
    pub fn worst_recovery(&self) -> Option<Duration> {
        self.recoveries.iter().max().copied()
    }

    /// The median recovery.
    pub fn median_recovery(&self) -> Option<Duration> {
        let mut sorted = self.recoveries.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied()
    }

    /// What went wrong, if anything: the verdict of the storm.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.overlaps > 0 {
            failures.push(format!("{} overlapping critical sections", self.overlaps));
        }
        if self.lost_updates > 0 {
            failures.push(format!("{} lost updates", self.lost_updates));
        }
        if reports_deaths(&self.backend) && self.deaths_missed > 0 {
            failures.push(format!(
                "{} of {} deaths inside the lock were not reported to the next holder",
                self.deaths_missed, self.kills_inside
            ));
        }
        if self.kills > 0 && self.kills_inside == 0 {
            failures.push("no kill landed inside a critical section".to_owned());
        }
        failures
    }
}

/// `procs` workers hold the lock for `hold` at a time; `kills` times (or until `deadline`), the
/// holder is SIGKILLed and replaced by a fresh worker (re-runs of this program, as for
/// [`counter_run`]).
pub fn kill_storm(
    backend: &str,
    procs: usize,
    kills: u64,
    deadline: Option<Instant>,
    hold: Duration,
    mode: Mode,
) -> Result<StormReport, String> {
    storm(&Storm {
        backend,
        procs,
        kills,
        deadline,
        hold,
        mode,
        settle: false,
    })
}

/// A [`kill_storm`] for measuring recovery: each holder is killed only once every other worker
/// has been through the lock at least once, so that they all wait for it (asleep in their lock
/// call, waiting as `mode` says), and the time measured is the lock's recovery, not a fresh
/// worker's start-up.
///
/// For the same reason the killed holder's replacement is started only once the lock was seen
/// recovered, not at the kill. Started at the kill, its `exec` and start-up ran during the
/// recovery: on a machine of two cores the waiter that the death woke was often queued behind
/// it (woken on the core the new process ran on, while the other idled) and took the lock over
/// 1-2 ms after the kill instead of 0.3 (ftrace: `futex_waitv` returned about a millisecond
/// after the death watcher's `FUTEX_WAKE` had woken it); `sema-permits`, whose run has one
/// waiter, lost most, `sema` (two) less. A replacement could also take the lock over itself,
/// hiding a waiter that the death did not wake; and a permits worker, which takes its kept
/// permit with a `try_lock` as it opens, could find all permits held while the victim was
/// still exiting, and fail the run (`open: ... is already locked`).
pub(crate) fn recovery_storm(
    backend: &str,
    procs: usize,
    kills: u64,
    hold: Duration,
    mode: Mode,
) -> Result<StormReport, String> {
    storm(&Storm {
        backend,
        procs,
        kills,
        deadline: None,
        hold,
        mode,
        settle: true,
    })
}

/// Whether every worker but the one in `slot` has completed a round.
fn others_settled(run: &Run, slot: usize) -> Result<bool, String> {
    for (at, (index, _)) in run.workers.iter().enumerate() {
        if at == slot {
            continue;
        }
        let tally = Tally::read(&tally_path(&run.dir, *index))
            .map_err(|e| format!("reading a tally: {e}"))?;
        if tally.completed == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What [`storm`] does: the arguments of [`kill_storm`], and `settle` (see [`recovery_storm`]).
struct Storm<'a> {
    backend: &'a str,
    procs: usize,
    kills: u64,
    deadline: Option<Instant>,
    hold: Duration,
    mode: Mode,
    settle: bool,
}

/// [`kill_storm`] and [`recovery_storm`].
fn storm(plan: &Storm<'_>) -> Result<StormReport, String> {
    let (backend, hold, mode) = (plan.backend, plan.hold, plan.mode);
    let mut run = Run::new(backend, "storm")?;
    for _ in 0..plan.procs {
        run.spawn(0, hold, mode)?;
    }
    let mut report = StormReport {
        backend: backend.to_owned(),
        ..StormReport::default()
    };
    let patience = Duration::from_secs(10);
    for _ in 0..plan.kills {
        if plan
            .deadline
            .is_some_and(|deadline| Instant::now() > deadline)
        {
            break;
        }
        // Wait for one of our workers to be inside its critical section, then kill it there.
        let waited = Instant::now();
        let (slot, victim) = loop {
            let occupant = run.state()?.occupant;
            if let Some(slot) = run.workers.iter().position(|(_, c)| c.id() == occupant)
                && (!plan.settle || others_settled(&run, slot)?)
            {
                break (slot, occupant);
            }
            if waited.elapsed() > patience {
                return Err(format!("no worker entered the lock within {patience:?}"));
            }
            thread::sleep(Duration::from_micros(100));
        };
        let (_, mut child) = run.workers.swap_remove(slot);
        let killed_at = now_ns();
        child
            .kill()
            .map_err(|e| format!("killing pid {victim}: {e}"))?;
        report.kills += 1;
        let entries_at_kill = run.state()?.entries;
        if !plan.settle {
            run.spawn(0, hold, mode)?;
        }
        // Wait for the next holder to get in.
        let waited = Instant::now();
        let state = loop {
            let state = run.state()?;
            if state.entries > entries_at_kill || state.last_recovered_from == victim {
                break state;
            }
            if waited.elapsed() > patience {
                return Err(format!(
                    "nobody acquired the lock within {patience:?} after pid {victim} was killed"
                ));
            }
            thread::sleep(Duration::from_micros(100));
        };
        if plan.settle {
            // Only now (see `recovery_storm`): the recovery measured is the waiters'.
            run.spawn(0, hold, mode)?;
        }
        if state.last_recovered_from == victim {
            let ns = state.last_recovery_ns.saturating_sub(killed_at);
            report.recoveries.push(Duration::from_nanos(ns));
        }
        // Reaped only now: until the next holder has looked at the victim's marker, the victim
        // stays a zombie (dead to `alive`), so its pid cannot be reused by a process that would
        // pass for a live occupant.
        let _ = child.wait();
    }
    fs::write(stop_path(&run.dir), b"").map_err(|e| format!("writing the stop file: {e}"))?;
    run.wait_all(Duration::from_secs(60))?;
    let state = run.state()?;
    let completed = run.completed()?;
    report.kills_inside = state.recoveries;
    report.died_reported = state.died_reported;
    report.deaths_missed = state.deaths_missed;
    report.overlaps = state.overlaps;
    report.entries = state.entries;
    // A kill between the counter write and the tally write leaves the counter one ahead of the
    // tallies; anything below them is an update a second holder overwrote.
    report.lost_updates = completed.saturating_sub(state.counter);
    if state.counter > completed + report.kills {
        return Err(format!(
            "counter {} is ahead of the {completed} completed rounds by more than the {} kills",
            state.counter, report.kills
        ));
    }
    Ok(report)
}
