//! Exclusion holes found by trying to break FileLock (issue 8): a lock file deleted and
//! re-created under its holders, inotify instances kept forever, a waiter that burns a core
//! while the holder writes, a status that takes the lock to look at it, and symbolic links in
//! folders other users can write.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]

mod common;

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Child, LOCK_PATH, WORK_DIR, command, is_root, role, say, scratch};
use simplelock_core::{ConcreteLock, LockStatus, SimpleLockError};
use simplelock_file::FileLock;

const NOBODY: u32 = 65534;

/// The CPU time this thread has used, from `/proc/thread-self/stat` (in clock ticks of 10 ms:
/// `USER_HZ` is 100 on Linux).
fn thread_cpu() -> Duration {
    let stat = fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_ascii_whitespace()
        .skip(11) // state ... cmajflt: utime is field 14, the 12th after the name
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// The inotify instances this process has open.
fn inotify_instances() -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| target == Path::new("anon_inode:inotify"))
        })
        .count()
}

#[test]
fn a_lock_file_deleted_and_re_created_under_its_holders_never_gives_two_holders() {
    const TEST: &str =
        "a_lock_file_deleted_and_re_created_under_its_holders_never_gives_two_holders";
    const WORKERS: usize = 3;
    const ROUNDS: usize = 300;
    if role().as_deref() == Some("worker") {
        let path = PathBuf::from(std::env::var(LOCK_PATH).unwrap());
        let marker = PathBuf::from(std::env::var(WORK_DIR).unwrap()).join("inside");
        let mut overlaps = 0;
        for round in 0..ROUNDS {
            // A fresh handle each round, as separate runs of a program would have, some waiting
            // in a blocking flock and some in a timed wait, while the file changes under them.
            let mut lock = FileLock::at_path(&path).unwrap();
            if round % 2 == 0 {
                lock.hang_lock().unwrap();
            } else {
                lock.timed_lock(Duration::from_secs(60)).unwrap();
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
            {
                Ok(_) => {
                    thread::sleep(Duration::from_micros(300));
                    fs::remove_file(&marker).unwrap();
                }
                Err(_) => overlaps += 1,
            }
            lock.try_unlock().unwrap();
        }
        say(&overlaps.to_string());
        return;
    }
    // A sticky, world-writable folder (as /tmp). Someone replaces the lock file while holding
    // it (flock(1), then a new file renamed over it, or the file deleted): the waiters blocked
    // on the old file get it when that lock ends, while newcomers lock the new one.
    let dir = scratch("replaced");
    let sticky = dir.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
    let path = sticky.join("job.lock");
    let script = format!(
        "cd {}; : > job.lock; while [ ! -e {stop} ]; do \
           flock job.lock sh -c ': > new.$$; sleep 0.001; mv -f new.$$ job.lock'; \
           flock job.lock sh -c 'sleep 0.001; rm -f job.lock'; done",
        sticky.display(),
        stop = dir.join("stop").display(),
    );
    let mut replacer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    common::eventually("the replacer created the file", || path.exists());
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|_| {
            Child::spawn(
                command(TEST, "worker")
                    .env(LOCK_PATH, &path)
                    .env(WORK_DIR, &dir)
                    .stdin(Stdio::null()),
            )
        })
        .collect();
    let overlaps: usize = workers
        .iter_mut()
        .map(|worker| worker.next().parse::<usize>().unwrap())
        .sum();
    fs::write(dir.join("stop"), "").unwrap();
    replacer.wait().unwrap();
    for mut worker in workers {
        worker.wait_success();
    }
    assert_eq!(overlaps, 0, "two holders of the lock at once");

    // A lock file another user made in a sticky folder is theirs to delete at any moment, even
    // while we hold it: no check can keep a newcomer on a new file out then. It is refused.
    if !is_root() {
        eprintln!("not root: the other user's file case is not checked");
        return;
    }
    let theirs = sticky.join("theirs.lock");
    let made = Command::new("sh")
        .args(["-c", &format!(": > {}", theirs.display())])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(made.success());
    let err = FileLock::at_path(&theirs).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::PermissionDenied { .. }),
        "{err:?}"
    );
    let why = std::error::Error::source(&err).unwrap().to_string();
    assert!(why.contains("uid 65534"), "{why}");
}

#[test]
fn timed_waits_keep_at_most_a_few_inotify_instances() {
    const WAITERS: usize = 200;
    let dir = scratch("inotify");
    let path = dir.join("busy.lock");
    let mut holder = FileLock::at_path(&path).unwrap();
    holder.try_lock().unwrap();
    let before = inotify_instances();
    let ready = Arc::new(Barrier::new(WAITERS + 1));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (path, ready) = (path.clone(), Arc::clone(&ready));
            thread::spawn(move || {
                let mut lock = FileLock::at_path(&path).unwrap();
                ready.wait();
                lock.timed_lock(Duration::from_secs(120)).unwrap();
                lock.try_unlock().unwrap();
            })
        })
        .collect();
    ready.wait();
    // Let them all reach their wait.
    thread::sleep(Duration::from_millis(300));
    holder.try_unlock().unwrap();
    for waiter in waiters {
        waiter.join().unwrap();
    }
    let kept = inotify_instances().saturating_sub(before);
    assert!(
        kept <= 4,
        "{kept} inotify instances are kept after the waits ended (the user has \
         {} in all)",
        fs::read_to_string("/proc/sys/fs/inotify/max_user_instances").unwrap_or_default()
    );
}

#[test]
fn a_timed_waiter_stays_idle_while_the_holder_writes_the_file() {
    const TEST: &str = "a_timed_waiter_stays_idle_while_the_holder_writes_the_file";
    const WAIT: Duration = Duration::from_secs(2);
    if role().as_deref() == Some("writer") {
        let path = PathBuf::from(std::env::var(LOCK_PATH).unwrap());
        let named = std::env::var(WORK_DIR).is_ok();
        let mut lock = if named {
            FileLock::options()
                .with_folder(path.parent().unwrap())
                .named("written")
                .unwrap()
        } else {
            FileLock::at_path(&path).unwrap()
        };
        lock.try_lock().unwrap();
        say("locked");
        // About 10,000 lines a second, through one descriptor and through short-lived ones.
        let start = Instant::now();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let mut line = 0u64;
        while start.elapsed() < WAIT + Duration::from_secs(1) {
            line += 1;
            writeln!(file, "line {line}").unwrap();
            if line.is_multiple_of(100) {
                let mut again = OpenOptions::new().append(true).open(&path).unwrap();
                writeln!(again, "line {line} again").unwrap();
            }
            thread::sleep(Duration::from_micros(100));
        }
        lock.try_unlock().unwrap();
        return;
    }
    for named in [false, true] {
        let dir = scratch(if named {
            "written-named"
        } else {
            "written-file"
        });
        let path = dir.join("written.lock");
        let mut writer = command(TEST, "writer");
        writer.env(LOCK_PATH, &path).stdin(Stdio::null());
        if named {
            writer.env(WORK_DIR, &dir);
        }
        let mut writer = Child::spawn(&mut writer);
        assert_eq!(writer.next(), "locked");
        let mut lock = if named {
            FileLock::options()
                .with_folder(&dir)
                .named("written")
                .unwrap()
        } else {
            FileLock::at_path(&path).unwrap()
        };
        let cpu = thread_cpu();
        let started = Instant::now();
        let result = lock.timed_lock(WAIT);
        let (cpu, waited) = (thread_cpu() - cpu, started.elapsed());
        assert!(
            matches!(result, Err(SimpleLockError::TimedOut { .. })),
            "{result:?}"
        );
        writer.wait_success();
        assert!(
            cpu * 20 < waited,
            "named: {named}: the waiter used {cpu:?} of CPU in a wait of {waited:?} (5 % at most)"
        );
    }
}

#[test]
fn status_with_a_long_lock_list_never_takes_the_lock() {
    const TEST: &str = "status_with_a_long_lock_list_never_takes_the_lock";
    if role().as_deref() == Some("looker") {
        let lock = FileLock::at_path(std::env::var(LOCK_PATH).unwrap()).unwrap();
        say(&format!("{:?}", lock.status().unwrap()));
        say(&format!("{:?}", lock.holder().unwrap()));
        return;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("this test needs strace (apt-get install strace) to see the system calls");
    }
    let dir = scratch("long-list");
    // Enough flocks that /proc/locks is longer than a page.
    let held: Vec<FileLock> = (0..150)
        .map(|i| {
            let mut lock = FileLock::at_path(dir.join(format!("{i}.lock"))).unwrap();
            lock.try_lock().unwrap();
            lock
        })
        .collect();
    let path = dir.join("free.lock");
    drop(FileLock::at_path(&path).unwrap());
    let trace = dir.join("trace");
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("strace")
        .args(["-f", "-e", "trace=flock", "-o"])
        .arg(&trace)
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1", "-q"])
        .env(common::ROLE, "looker")
        .env(LOCK_PATH, &path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    let open = format!("{}{:?}", common::TAG, LockStatus::Open);
    assert!(said.contains(&open), "{said}");
    let calls = fs::read_to_string(&trace).unwrap();
    assert!(
        !calls.contains("flock("),
        "status took the lock to look at it:\n{calls}"
    );
    drop(held);
}

#[test]
fn symbolic_links_in_folders_others_can_write_are_not_followed() {
    let dir = scratch("links-inside");
    let sticky = dir.join("sticky");
    fs::create_dir(&sticky).unwrap();
    fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let link = sticky.join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    if is_root() {
        // As `nobody` would have planted it.
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let err = FileLock::at_path(link.join("x.lock")).unwrap_err();
    assert!(
        matches!(err, SimpleLockError::InvalidName { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!elsewhere.join("x.lock").exists(), "the link was followed");
    // Where no folder on the way is writable by others, links are followed as before.
    let mine = private_base().join(format!("links-{}", std::process::id()));
    let _ = fs::remove_dir_all(&mine);
    fs::create_dir_all(&mine).unwrap();
    fs::set_permissions(&mine, Permissions::from_mode(0o755)).unwrap();
    let private = mine.join("private-link");
    std::os::unix::fs::symlink(&elsewhere, &private).unwrap();
    let mut lock = FileLock::at_path(private.join("y.lock")).unwrap();
    lock.try_lock().unwrap();
    assert!(elsewhere.join("y.lock").exists());
    fs::remove_dir_all(mine).unwrap();
}

/// A folder none of whose ancestors others can write to (the checkout, and so the target
/// folder, may itself live under /tmp): the target folder's tmp, else `$HOME`, else `/run`.
fn private_base() -> PathBuf {
    let private = |path: &Path| {
        path.ancestors()
            .all(|folder| fs::metadata(folder).is_ok_and(|m| m.permissions().mode() & 0o022 == 0))
    };
    let candidates = [
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        std::env::var_os("HOME").map(PathBuf::from),
        Some(PathBuf::from("/run")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| private(path))
        .expect(
            "this test needs a folder that only its owner can write to, with no group- or \
             world-writable folder above it: the target folder, $HOME or /run",
        )
}
