//! Uncontended lock + unlock pairs: the bare `flock(2)` pair, std's `File::lock`, fd-lock's
//! write guard, and `FileLock` directly and through `Box<dyn Lock>` from the builder — on a
//! lock folder's file (with the holder record: two `pread`s and two `pwrite`s more per pair) and
//! on a file given by path (never written: the raw cost of the rest, the `lstat` of the path
//! check included).
//!
//! `cargo bench -p simplelock-file --bench uncontended` (add `-- --quick` for a short run).
//! The files go in the temporary folder, or in `$SIMPLELOCK_BENCH_DIR`: the record's writes
//! cost more on a journaling file system (ext4 updates the file's times in its journal) than
//! on tmpfs, where `/run/lock` — the default lock folder — is.
#![allow(
    unsafe_code,
    reason = "the bare flock(2) pair, the baseline of the comparison"
)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use simplelock_core::{ConcreteLock, Lock, LockBuilder};
use simplelock_file::FileLock;

fn bench_dir() -> PathBuf {
    let base =
        std::env::var_os("SIMPLELOCK_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("simplelock-file-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let dir = bench_dir();
    let managed = dir.join("managed.lock");
    let foreign = dir.join("foreign.lock");
    std::fs::write(&foreign, "someone's data, never written by FileLock\n").unwrap();

    let mut group = c.benchmark_group("FileLock, uncontended lock+unlock");

    let file = open(&dir.join("raw.lock"));
    let fd = file.as_raw_fd();
    group.bench_function("raw flock(2) pair", |b| {
        b.iter(|| {
            // SAFETY: `fd` belongs to `file`, open for the whole benchmark.
            unsafe {
                assert_eq!(libc::flock(fd, libc::LOCK_EX), 0);
                assert_eq!(libc::flock(fd, libc::LOCK_UN), 0);
            }
        });
    });

    let file = open(&dir.join("std.lock"));
    group.bench_function("std File::lock + unlock", |b| {
        b.iter(|| {
            file.lock().unwrap();
            file.unlock().unwrap();
        });
    });

    let mut fd_lock = fd_lock::RwLock::new(open(&dir.join("fd-lock.lock")));
    group.bench_function("fd-lock write guard", |b| {
        b.iter(|| drop(fd_lock.write().unwrap()));
    });

    // A lock folder's file keeps the holder record; any other file is never written.
    let open_lock = |path: &Path| {
        if path == managed {
            FileLock::options()
                .with_folder(&dir)
                .named("managed")
                .unwrap()
        } else {
            FileLock::at_path(path).unwrap()
        }
    };
    for (label, path) in [
        ("with holder record", &managed),
        ("file without record", &foreign),
    ] {
        let mut lock = open_lock(path);
        group.bench_function(format!("FileLock via ConcreteLock ({label})"), |b| {
            b.iter(|| {
                lock.try_lock().unwrap();
                lock.try_unlock().unwrap();
            });
        });

        let concrete: Box<dyn ConcreteLock> = Box::new(open_lock(path));
        let mut boxed: Box<dyn Lock> = Box::new(LockBuilder::default().apply(concrete));
        group.bench_function(format!("FileLock via Box<dyn Lock> ({label})"), |b| {
            b.iter(|| {
                boxed.lock().unwrap();
                boxed.unlock().unwrap();
            });
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
