//! One worker process: takes the lock again and again and, inside it, checks that nobody else is
//! inside, notices holders that died in there, and bumps a counter with a racy read-modify-write.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use simplelock_core::{ConcreteLock, SimpleLockError, SimpleLockResult};

use crate::backends;
use crate::state::{State, StateFile, Tally, alive, now_ns};

/// How a worker asks for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `hang_lock`: wait as long as it takes.
    Hang,
    /// `try_lock`, again until it succeeds.
    Try,
    /// `timed_lock` with a 5 s timeout, again until it succeeds.
    Timed,
    /// Each in turn.
    Mix,
    /// `lock_async().await`'s wait on a current-thread tokio runtime (the backends that have
    /// one: file, sema, sema-permits).
    Async,
}

impl Mode {
    /// The mode's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hang => "hang",
            Mode::Try => "try",
            Mode::Timed => "timed",
            Mode::Mix => "mix",
            Mode::Async => "async",
        }
    }
}

/// What a worker is told to do (`worker BACKEND DIR NAME INDEX ITERATIONS HOLD_US MODE`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Job {
    pub(crate) backend: String,
    /// The run's folder: state file, tallies, lock files, the stop file.
    pub(crate) dir: PathBuf,
    /// The semaphore name of the run.
    pub(crate) name: String,
    pub(crate) index: usize,
    /// Stop after this many critical sections (0: only when the stop file appears).
    pub(crate) iterations: u64,
    /// Time spent inside each critical section, besides the counter update, in microseconds.
    #[arg(value_parser = crate::cli::micros)]
    pub(crate) hold: Duration,
    #[arg(value_enum)]
    pub(crate) mode: Mode,
}

impl Job {
    /// The arguments that make a worker process run this job.
    pub(crate) fn to_args(&self) -> Vec<String> {
        vec![
            "worker".into(),
            self.backend.clone(),
            self.dir.display().to_string(),
            self.name.clone(),
            self.index.to_string(),
            self.iterations.to_string(),
            self.hold.as_micros().to_string(),
            self.mode.as_str().into(),
        ]
    }
}

pub(crate) fn state_path(dir: &Path) -> PathBuf {
    dir.join("state")
}

pub(crate) fn tally_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("tally-{index}"))
}

pub(crate) fn stop_path(dir: &Path) -> PathBuf {
    dir.join("stop")
}

/// Runs a worker until its iterations are done or the stop file appears.
pub(crate) fn run(job: &Job) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("worker {}: {what}: {e}", job.index);
    let opened = if job.mode == Mode::Async {
        backends::open_async(&job.backend, &job.dir, &job.name)
    } else {
        backends::open(&job.backend, &job.dir, &job.name)
    };
    let mut lock = opened.map_err(|e| fail("open", &e))?;
    let state = StateFile::open(&state_path(&job.dir)).map_err(|e| fail("state file", &e))?;
    let tally_file =
        File::create(tally_path(&job.dir, job.index)).map_err(|e| fail("tally", &e))?;
    let stop = stop_path(&job.dir);
    let me = std::process::id();
    let mut tally = Tally::default();
    let mut round = 0u64;
    while (job.iterations == 0 || round < job.iterations) && !stop.exists() {
        acquire(lock.as_mut(), job.mode, round).map_err(|e| fail("lock", &e))?;
        let died = lock.previous_holder().died();
        critical_section(&state, me, died, job.hold).map_err(|e| fail("state file", &e))?;
        lock.try_unlock().map_err(|e| fail("unlock", &e))?;
        tally.completed += 1;
        tally.write(&tally_file).map_err(|e| fail("tally", &e))?;
        round += 1;
    }
    Ok(())
}

fn acquire(lock: &mut dyn ConcreteLock, mode: Mode, round: u64) -> SimpleLockResult<()> {
    let mode = match mode {
        Mode::Mix => [Mode::Hang, Mode::Timed, Mode::Try][(round % 3) as usize],
        other => other,
    };
    loop {
        let result = match mode {
            // An async lock's `hang_lock` is its async wait (see `backends::open_async`).
            Mode::Hang | Mode::Mix | Mode::Async => lock.hang_lock(),
            Mode::Timed => lock.timed_lock(Duration::from_secs(5)),
            Mode::Try => lock.try_lock(),
        };
        match result {
            Err(SimpleLockError::AlreadyLocked { .. } | SimpleLockError::TimedOut { .. }) => {
                thread::yield_now()
            }
            other => return other,
        }
    }
}

/// The work done while holding the lock. Between the entry write and the exit write the counter
/// is only in this process's memory: a second holder would make one of the two updates vanish.
pub(crate) fn critical_section(
    file: &StateFile,
    me: u32,
    died: bool,
    hold: Duration,
) -> std::io::Result<()> {
    let now = now_ns();
    let mut state = file.read()?;
    if state.occupant != 0 && state.occupant != me {
        if alive(state.occupant) {
            state.overlaps += 1;
        } else {
            state.recoveries += 1;
            state.last_recovered_from = state.occupant;
            state.last_recovery_ns = now;
            if died {
                state.died_reported += 1;
            } else {
                state.deaths_missed += 1;
            }
        }
    } else if died {
        state.died_outside_marker += 1;
    }
    state.occupant = me;
    state.entries += 1;
    state.last_entry_ns = now;
    let seen = state.counter;
    file.write(&state)?;
    if !hold.is_zero() {
        thread::sleep(hold);
    }
    let mut state: State = file.read()?;
    if state.occupant != me {
        state.overlaps += 1;
    }
    state.counter = seen + 1;
    state.occupant = 0;
    file.write(&state)
}
