//! The adversary of `SemaphoreLock` (`simplelock-harness stress` runs it for the `sema` backend): during
//! a kill storm it attacks the lock's object in `/dev/shm` the ways the crate docs name:
//!
//! - **zeroes** it as a careless process of the same user would (a hole punched into it: the
//!   memory is zeroed like a truncation followed by a re-grow, without the window in which a
//!   truncated object kills whoever touches it with SIGBUS, which the docs admit), waits until
//!   nobody is inside, and deletes it so the workers move to a new object;
//! - as **another user** (`nobody`, through `setpriv`, when run as root) tries to truncate,
//!   rewrite and delete it, and
//! - **re-creates** (squats) the name as that user right after a removal.
//!
//! Workers here take every error as an error (they count it and open the lock again); the run
//! fails on an overlap, a lost update, a worker that ended by a signal or with an error of its
//! own, or an attack of the other user that succeeded.

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_sema::SemaphoreLock;

use crate::state::{StateFile, alive};
use crate::worker::{critical_section, state_path, stop_path};

/// The user the other-user attacks run as.
const NOBODY: &str = "65534";

/// What the adversary run saw.
#[derive(Debug, Default)]
pub(crate) struct AdversaryReport {
    pub(crate) kills: u64,
    pub(crate) zeroings: u64,
    pub(crate) foreign_attacks_refused: u64,
    pub(crate) squats: u64,
    pub(crate) squats_lost: u64,
    pub(crate) other_user: bool,
    pub(crate) entries: u64,
    pub(crate) completed: u64,
    pub(crate) worker_errors: u64,
    pub(crate) overlaps: u64,
    pub(crate) lost_updates: u64,
    pub(crate) failures: Vec<String>,
}

/// Workers, their folder and the lock's name.
struct Arena {
    dir: PathBuf,
    name: String,
    hold: Duration,
    workers: Vec<Child>,
    next: usize,
    report: AdversaryReport,
}

impl Arena {
    fn spawn(&mut self) -> Result<(), String> {
        let exe = env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
        let child = Command::new(exe)
            .args([
                "sema-adversary-worker",
                &self.dir.to_string_lossy(),
                &self.name,
            ])
            .arg(self.next.to_string())
            .arg(self.hold.as_micros().to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a worker: {e}"))?;
        self.next += 1;
        self.workers.push(child);
        Ok(())
    }

    fn object(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/sl.{}", self.name))
    }

    fn state(&self) -> Result<crate::state::State, String> {
        StateFile::open(&state_path(&self.dir))
            .and_then(|f| f.read())
            .map_err(|e| format!("reading the state file: {e}"))
    }

    /// Kills the worker inside the critical section (waiting for one to get in).
    fn kill_holder(&mut self) -> Result<(), String> {
        let waited = Instant::now();
        loop {
            let occupant = self.state()?.occupant;
            if let Some(slot) = self.workers.iter().position(|c| c.id() == occupant) {
                let mut child = self.workers.swap_remove(slot);
                let _ = child.kill();
                self.report.kills += 1;
                // Reaped once someone else got in (see kill_storm: until then its pid must not
                // be reused).
                let waited = self.spawn().and_then(|()| self.wait_for_entry());
                let _ = child.wait();
                return waited;
            }
            if waited.elapsed() > Duration::from_secs(10) {
                return Err("no worker entered the lock within 10 s".into());
            }
            thread::sleep(Duration::from_micros(100));
        }
    }

    /// Waits (at most 5 s) until someone enters the critical section.
    fn wait_for_entry(&self) -> Result<(), String> {
        let entries = self.state()?.entries;
        let waited = Instant::now();
        while self.state()?.entries == entries && waited.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Zeroes the object (same user), waits until nobody is inside, deletes it.
    fn zero(&mut self) -> Result<(), String> {
        if !self.object().exists() {
            return Ok(()); // between a removal and the next creation
        }
        // util-linux's fallocate: the example forbids `unsafe`, and this is one system call.
        let punched = Command::new("fallocate")
            .args(["--punch-hole", "--offset", "0", "--length", "64"])
            .arg(self.object())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("running fallocate (util-linux): {e}"))?;
        if !punched.success() {
            // Removed meanwhile (the file is gone): nothing zeroed this round.
            return Ok(());
        }
        self.report.zeroings += 1;
        // Nobody gets in on a zeroed object; whoever was inside leaves (its release fails).
        // Deleting it by hand is safe only once the section is empty; a few quiet
        // milliseconds cover a worker between its acquisition and its entry.
        let mut quiet = Instant::now();
        let waited = Instant::now();
        while quiet.elapsed() < Duration::from_millis(20) {
            if self.state()?.occupant != 0 {
                quiet = Instant::now();
            }
            if waited.elapsed() > Duration::from_secs(2) {
                self.report.failures.push(
                    "the section did not stay empty for 20 ms within 2 s after a zeroing: the \
                     zeroed lock kept admitting holders"
                        .into(),
                );
                break;
            }
            thread::sleep(Duration::from_micros(200));
        }
        let _ = fs::remove_file(self.object());
        Ok(())
    }

    /// As `nobody`: try to truncate, rewrite and delete the object.
    fn foreign_attack(&mut self) -> Result<(), String> {
        let line = as_nobody(&["attack", &self.object().to_string_lossy()])?;
        match line.as_str() {
            "refused" | "absent" => self.report.foreign_attacks_refused += 1,
            other => self
                .report
                .failures
                .push(format!("another user attacked the object: {other}")),
        }
        Ok(())
    }

    /// Remove the lock and, as `nobody`, race the workers to create the name again.
    fn squat(&mut self) -> Result<(), String> {
        // The squatter starts first and waits, so that it is poised when the name goes.
        let mut squatter = nobody_command(&["squat", &self.object().to_string_lossy()])?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running setpriv (util-linux): {e}"))?;
        let mut out = BufReader::new(squatter.stdout.take().ok_or("no stdout")?);
        let mut ready = String::new();
        let _ = out.read_line(&mut ready);
        let removed = SemaphoreLock::remove_within(&self.name, Duration::from_secs(5));
        let _ = squatter
            .stdin
            .take()
            .map(|mut stdin| stdin.write_all(b"go\n"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let status = squatter.wait().map_err(|e| e.to_string())?;
        if ready.trim() != "ready" || !status.success() {
            return Err(format!("the squatter failed ({status}): {ready} {line}"));
        }
        if removed.is_err() {
            // A zeroed object is not ours to lock any more; it goes by hand (see `zero`).
            return Ok(());
        }
        match line.trim() {
            "squatted" => {
                self.report.squats += 1;
                // The workers met the squatted object while its owner kept freeing its word
                // (they must have refused it: PermissionDenied); now it goes, and they make
                // their own.
                let _ = fs::remove_file(self.object());
            }
            "refused" | "absent" => self.report.squats_lost += 1,
            other => self
                .report
                .failures
                .push(format!("another user attacked the object: {other}")),
        }
        Ok(())
    }
}

/// This program as `nobody` (through `setpriv`), in its `sema-adversary-user` mode.
fn nobody_command(args: &[&str]) -> Result<Command, String> {
    let exe = env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(exe)
        .arg("sema-adversary-user")
        .args(args);
    Ok(command)
}

/// Runs this program as `nobody` with `args`; its one line.
fn as_nobody(args: &[&str]) -> Result<String, String> {
    let output = nobody_command(args)?
        .output()
        .map_err(|e| format!("running setpriv (util-linux): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        return Err(format!(
            "the other user's process failed ({}): {text} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(text)
}

/// `sema-adversary-user attack|squat PATH`.
#[derive(Debug, clap::Args)]
pub(crate) struct UserArgs {
    #[arg(value_parser = ["attack", "squat"])]
    what: String,
    path: PathBuf,
}

/// Attacks or squats the object at PATH, run as another user; says what happened in one line.
pub(crate) fn user(args: &UserArgs) -> Result<(), String> {
    let UserArgs { what, path } = args;
    let path = path.as_path();
    let attack = |path: &Path| -> String {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => {
                let _ = file.set_len(0);
                let _ = file.write_all_at(&[0xff; 64], 0);
                "truncated and rewrote it".into()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "absent".into(),
            Err(_) => match fs::remove_file(path) {
                Ok(()) => "deleted it".into(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "absent".into(),
                Err(_) => "refused".into(),
            },
        }
    };
    let line = match what.as_str() {
        "attack" => attack(path),
        "squat" => {
            println!("ready");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            let start = Instant::now();
            loop {
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(path)
                {
                    Ok(file) => {
                        let _ = file.set_permissions(fs::Permissions::from_mode(0o666));
                        let _ = file.set_len(64);
                        // Whoever uses our object now: free its lock under it, again and again.
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_millis(30) {
                            let _ = file.write_all_at(&[0; 8], 0);
                            thread::sleep(Duration::from_micros(100));
                        }
                        break "squatted".to_owned();
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AlreadyExists
                            && start.elapsed() > Duration::from_millis(100) =>
                    {
                        // The workers made theirs first: attack that one instead.
                        break attack(path);
                    }
                    Err(_) if start.elapsed() < Duration::from_millis(200) => thread::yield_now(),
                    Err(e) => break format!("could not create: {e}"),
                }
            }
        }
        other => return Err(format!("unknown attack {other:?}")),
    };
    println!("{line}");
    Ok(())
}

/// `sema-adversary-worker DIR NAME INDEX HOLD_US`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    dir: PathBuf,
    name: String,
    index: usize,
    #[arg(value_parser = crate::cli::micros)]
    hold: Duration,
}

/// Locks until the stop file appears; every error is counted and answered by opening the lock
/// again.
pub(crate) fn worker(args: &WorkerArgs) -> Result<(), String> {
    let WorkerArgs {
        dir,
        name,
        index,
        hold,
    } = args;
    let hold = *hold;
    let state = StateFile::open(&state_path(dir)).map_err(|e| format!("state file: {e}"))?;
    let tally = File::create(dir.join(format!("adversary-tally-{index}")))
        .map_err(|e| format!("tally: {e}"))?;
    let (mut completed, mut errors) = (0u64, 0u64);
    let me = std::process::id();
    let stop = stop_path(dir);
    let mut lock: Option<SemaphoreLock> = None;
    while !stop.exists() {
        let handle = match lock.as_mut() {
            Some(handle) => handle,
            None => match SemaphoreLock::named(name.as_str()) {
                Ok(handle) => lock.insert(handle),
                Err(_) => {
                    errors += 1;
                    write_tally(&tally, completed, errors)?;
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
            },
        };
        match handle.timed_lock(Duration::from_millis(200)) {
            Ok(()) => {
                let died = handle.previous_holder().died();
                critical_section(&state, me, died, hold).map_err(|e| format!("state: {e}"))?;
                completed += 1;
                if handle.try_unlock().is_err() {
                    errors += 1;
                    lock = None;
                }
            }
            Err(SimpleLockError::TimedOut { .. }) => {}
            Err(_) => {
                errors += 1;
                lock = None;
                thread::sleep(Duration::from_millis(1));
            }
        }
        write_tally(&tally, completed, errors)?;
    }
    Ok(())
}

fn write_tally(file: &File, completed: u64, errors: u64) -> Result<(), String> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&completed.to_le_bytes());
    bytes[8..].copy_from_slice(&errors.to_le_bytes());
    file.write_all_at(&bytes, 0)
        .map_err(|e| format!("tally: {e}"))
}

/// `rounds` rounds (or until `deadline`), each a SIGKILL of the holder and one attack in turn.
pub(crate) fn storm(
    procs: usize,
    rounds: u64,
    deadline: Option<Instant>,
    hold: Duration,
) -> Result<AdversaryReport, String> {
    let pid = std::process::id();
    let dir = env::temp_dir().join(format!("simplelock-contention-{pid}-sema-adversary"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    StateFile::create(&state_path(&dir)).map_err(|e| format!("creating the state file: {e}"))?;
    let mut arena = Arena {
        dir,
        name: format!("contention-{pid}-sema-adversary"),
        hold,
        workers: Vec::new(),
        next: 0,
        report: AdversaryReport {
            other_user: is_root() && setpriv_works(),
            ..AdversaryReport::default()
        },
    };
    let result = arena_run(&mut arena, procs, rounds, deadline);
    for child in &mut arena.workers {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = SemaphoreLock::remove_within(&arena.name, Duration::from_secs(1));
    let _ = fs::remove_file(arena.object());
    let _ = fs::remove_dir_all(&arena.dir);
    result.map(|()| arena.report)
}

fn arena_run(
    arena: &mut Arena,
    procs: usize,
    rounds: u64,
    deadline: Option<Instant>,
) -> Result<(), String> {
    for _ in 0..procs {
        arena.spawn()?;
    }
    for round in 0..rounds {
        if deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        arena.kill_holder()?;
        match (round % 3, arena.report.other_user) {
            (0, _) => arena.zero()?,
            (1, true) => arena.foreign_attack()?,
            (2, true) => arena.squat()?,
            _ => {}
        }
    }
    fs::write(stop_path(&arena.dir), b"").map_err(|e| format!("writing the stop file: {e}"))?;
    let waited = Instant::now();
    for child in &mut arena.workers {
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if waited.elapsed() > Duration::from_secs(60) {
                return Err("a worker did not stop within 60 s".into());
            }
            thread::sleep(Duration::from_millis(5));
        };
        if let Some(signal) = status.signal() {
            arena
                .report
                .failures
                .push(format!("worker {} ended by signal {signal}", child.id()));
        } else if !status.success() {
            arena
                .report
                .failures
                .push(format!("worker {} failed: {status}", child.id()));
        }
    }
    let state = arena.state()?;
    for index in 0..arena.next {
        let bytes =
            fs::read(arena.dir.join(format!("adversary-tally-{index}"))).unwrap_or_default();
        let field = |at: usize| {
            bytes
                .get(at..at + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        arena.report.completed += field(0);
        arena.report.worker_errors += field(8);
    }
    let report = &mut arena.report;
    report.entries = state.entries;
    report.overlaps = state.overlaps;
    // As in the kill storm: a kill between the counter write and the tally write leaves the
    // counter ahead by at most one per kill; behind it is an update a second holder overwrote.
    report.lost_updates = report.completed.saturating_sub(state.counter);
    if state.counter > report.completed + report.kills {
        report.failures.push(format!(
            "counter {} is ahead of the {} completed rounds by more than the {} kills",
            state.counter, report.completed, report.kills
        ));
    }
    if report.overlaps > 0 {
        report
            .failures
            .push(format!("{} overlapping critical sections", report.overlaps));
    }
    if report.lost_updates > 0 {
        report
            .failures
            .push(format!("{} lost updates", report.lost_updates));
    }
    if state.occupant != 0 && alive(state.occupant) {
        report.failures.push(format!(
            "pid {} still inside after the stop",
            state.occupant
        ));
    }
    Ok(())
}

/// Whether this process runs as root (the other-user attacks need it to become `nobody`).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether `setpriv` can run this program as `nobody`.
fn setpriv_works() -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
