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

use crate::run::kill_storm;
use crate::worker::Mode;

/// The fewest kills of the storm with the replacer at work.
const MIN_KILLS: u64 = 100;

/// `contention replacer LOCK_FILE COUNT_FILE`: replaces LOCK_FILE until killed, writing how
/// many times it did into COUNT_FILE.
pub(crate) fn replacer(args: &[String]) -> Result<(), String> {
    let [path, count_path] = args else {
        return Err("usage: contention replacer LOCK_FILE COUNT_FILE".to_owned());
    };
    let (path, count_path) = (PathBuf::from(path), PathBuf::from(count_path));
    let copy = path.with_extension("lock.new");
    let mut count = 0u64;
    loop {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            // Not there yet, or deleted and not yet re-created by a worker.
            thread::sleep(Duration::from_micros(200));
            continue;
        };
        file.lock()
            .map_err(|e| format!("locking {}: {e}", path.display()))?;
        // Only the file we hold is ours to replace: the path may name another one by now.
        if same_file(&file, &path) {
            let mut content = Vec::new();
            (&file)
                .read_to_end(&mut content)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            if count.is_multiple_of(2) || !content.starts_with(b"simplelock 1 free") {
                fs::write(&copy, &content)
                    .and_then(|()| fs::rename(&copy, &path))
                    .map_err(|e| format!("replacing {}: {e}", path.display()))?;
            } else {
                fs::remove_file(&path).map_err(|e| format!("deleting {}: {e}", path.display()))?;
            }
            count += 1;
            fs::write(&count_path, count.to_string())
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
    // Long enough for the replacer to start and to get the lock a few times among the workers.
    let storm = kill_storm("file", procs, kills.max(MIN_KILLS), deadline, hold, mode);
    let ended = replacer.try_wait();
    let _ = replacer.kill();
    let _ = replacer.wait();
    let replaced: u64 = fs::read_to_string(&count_path)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let _ = fs::remove_file(&count_path);
    let storm = storm?;
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
    if replaced == 0 {
        failures.push("the replacer never replaced the lock file".to_owned());
    }
    Ok(failures)
}
