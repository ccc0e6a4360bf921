//! The adversary of the file backend's stress run: a process that deletes and re-creates the
//! lock file while the kill storm runs.
//!
//! It plays by the lock's rules, as the tools that clean lock files up do (`flock f rm f`, a
//! program that deletes its lock file when it releases it): it takes the lock on the file the
//! path names, then either renames a copy of the file over it (the record inside kept, so a
//! death stays reported) or deletes it (only when the record says `free`, so that no death goes
//! unreported because its evidence was deleted), and releases the old file. Waiters blocked on
//! the old file then get a lock nobody else respects any more, while newcomers lock the new file:
//! `FileLock` must notice, after every acquisition, that the path names another file, and wait
//! on that one. The storm must stay at 0 overlaps and lost updates.
//!
//! (Replacing the file while someone else holds the lock cannot be detected by anybody: the
//! holder of the old file and the newcomer on the new one would both hold it. `FileLock` refuses
//! lock files that another user could replace that way; the owner can, and must not.)

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::run::{StormReport, kill_storm};
use crate::worker::Mode;

/// How many replacements make the run count.
const MIN_REPLACEMENTS: u64 = 10;
/// How many storms in a row at most, waiting for them.
const MAX_STORMS: usize = 20;

/// `replacer LOCK_FILE COUNT_FILE`.
#[derive(Debug, clap::Args)]
pub(crate) struct Replacer {
    path: PathBuf,
    count_path: PathBuf,
}

/// Replaces LOCK_FILE until killed, writing how many times it did into COUNT_FILE.
pub(crate) fn replacer(args: &Replacer) -> Result<(), String> {
    let Replacer { path, count_path } = args;
    let copy = path.with_extension("lock.new");
    let mut count = 0u64;
    loop {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
            // Not there yet, or deleted and not yet re-created by a worker.
            thread::sleep(Duration::from_micros(200));
            continue;
        };
        file.lock()
            .map_err(|e| format!("locking {}: {e}", path.display()))?;
        // Only the file we hold is ours to replace: the path may name another one by now.
        if same_file(&file, path) {
            let mut content = Vec::new();
            (&file)
                .read_to_end(&mut content)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            if count.is_multiple_of(2) || !content.starts_with(b"simplelock 1 free") {
                fs::write(&copy, &content)
                    .and_then(|()| fs::rename(&copy, path))
                    .map_err(|e| format!("replacing {}: {e}", path.display()))?;
            } else {
                fs::remove_file(path).map_err(|e| format!("deleting {}: {e}", path.display()))?;
            }
            count += 1;
            fs::write(count_path, count.to_string())
                .map_err(|e| format!("writing {}: {e}", count_path.display()))?;
        }
        drop(file); // releases the old file
        thread::sleep(Duration::from_millis(1));
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// The kill storm of the file backend with the replacer at work on its lock file; what failed,
/// if anything.
pub(crate) fn replaced_kill_storm(
    procs: usize,
    kills: u64,
    deadline: Option<Instant>,
    hold: Duration,
    mode: Mode,
) -> Result<Vec<String>, String> {
    // Where `kill_storm` keeps the lock file of this process's file storm (see `Run::new`).
    let pid = std::process::id();
    let lock = env::temp_dir()
        .join(format!("simplelock-contention-{pid}-file-storm"))
        .join("file.lock");
    let count_path = env::temp_dir().join(format!("simplelock-contention-{pid}-replacements"));
    let _ = fs::remove_file(&count_path);
    let exe = env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let mut replacer: Child = Command::new(exe)
        .arg("replacer")
        .args([&lock, &count_path])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the replacer: {e}"))?;
    // flock is not fair: the replacer, one waiter among the workers, may not get the lock in a
    // short storm. Storms follow one another (on the same path) until it did a few times.
    let mut storms = Vec::new();
    let mut replaced = 0;
    for _ in 0..MAX_STORMS {
        storms.push(kill_storm("file", procs, kills, deadline, hold, mode));
        replaced = fs::read_to_string(&count_path)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(0u64);
        if replaced >= MIN_REPLACEMENTS || storms.last().is_some_and(Result::is_err) {
            break;
        }
    }
    let ended = replacer.try_wait();
    let _ = replacer.kill();
    let _ = replacer.wait();
    let _ = fs::remove_file(&count_path);
    let mut storm = StormReport::default();
    for one in storms {
        let one = one?;
        storm.backend = one.backend;
        storm.kills += one.kills;
        storm.kills_inside += one.kills_inside;
        storm.died_reported += one.died_reported;
        storm.deaths_missed += one.deaths_missed;
        storm.overlaps += one.overlaps;
        storm.lost_updates += one.lost_updates;
        storm.entries += one.entries;
        storm.recoveries.extend(one.recoveries);
    }
    println!(
        "  acquisitions {}, kills {} ({} inside the lock), deaths reported {} (missed {}), \
         overlaps {}, lost updates {}, lock file replaced or deleted {replaced} times",
        storm.entries,
        storm.kills,
        storm.kills_inside,
        storm.died_reported,
        storm.deaths_missed,
        storm.overlaps,
        storm.lost_updates,
    );
    let mut failures = storm.failures();
    if let Ok(Some(status)) = ended {
        failures.push(format!("the replacer ended early: {status}"));
    }
    if replaced < MIN_REPLACEMENTS {
        failures.push(format!(
            "the replacer replaced the lock file only {replaced} times in {MAX_STORMS} storms"
        ));
    }
    Ok(failures)
}
