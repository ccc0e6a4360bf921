//! Uncontended lock + unlock pairs: the bare `flock(2)` pair, std's `File::lock`, fd-lock's
//! write guard, and `FileLock` directly and through `Box<dyn Lock>` from the builder — on a
//! lock folder's file with the holder record (two `pread`s and two `pwrite`s more per pair),
//! on a file given by path (never written: the rest, the `lstat` of the path check included),
//! on a lock folder's file without the record (`with_holder_record(false)`), and without the
//! record nor the path check (`with_path_check(false)`: the bare pair plus the bookkeeping).
//!
//! `cargo bench -p simplelock-file --bench uncontended` (add `-- --quick` for a short run).
//! Each is measured twice, on tmpfs (`/dev/shm`, or `$SIMPLELOCK_BENCH_DIR`), where `/run/lock`
//! — the default lock folder — is, and on a disk file system (the target folder, or
//! `$SIMPLELOCK_BENCH_DISK_DIR`), where the record's writes cost more (ext4 updates the file's
//! times in its journal).
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

/// The folders measured, by file system: tmpfs (`$SIMPLELOCK_BENCH_DIR`, else `/dev/shm`, else
/// the temp folder) and a disk file system (`$SIMPLELOCK_BENCH_DISK_DIR`, else the target
/// folder: ext4 on the project's machines).
fn bench_dirs() -> Vec<(&'static str, PathBuf)> {
    let tmpfs = std::env::var_os("SIMPLELOCK_BENCH_DIR").map_or_else(
        || {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        },
        PathBuf::from,
    );
    let disk = std::env::var_os("SIMPLELOCK_BENCH_DISK_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    [("tmpfs", tmpfs), ("disk", disk)]
        .into_iter()
        .map(|(fs, base)| {
            let dir = base.join(format!("simplelock-file-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            (fs, dir)
        })
        .collect()
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
    for (fs, dir) in bench_dirs() {
        uncontended_in(c, fs, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The pairs of one file system's folder `dir`.
fn uncontended_in(c: &mut Criterion, fs: &str, dir: &Path) {
    let foreign = dir.join("foreign.lock");
    std::fs::write(&foreign, "someone's data, never written by FileLock\n").unwrap();

    let mut group = c.benchmark_group(format!("FileLock, uncontended lock+unlock, {fs}"));

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

    // A lock folder's file keeps the holder record unless told not to; any other file is
    // never written.
    let named = |name: &str, record: bool, check: bool| {
        FileLock::options()
            .with_folder(dir)
            .with_holder_record(record)
            .with_path_check(check)
            .named(name)
            .unwrap()
    };
    let kinds: [(&str, &dyn Fn() -> FileLock); 4] = [
        ("with holder record", &|| named("managed", true, true)),
        ("file without record", &|| {
            FileLock::at_path(&foreign).unwrap()
        }),
        ("no record", &|| named("bare", false, true)),
        ("no record, no path check", &|| named("raw", false, false)),
    ];
    for (label, open_lock) in kinds {
        let mut lock = open_lock();
        group.bench_function(format!("FileLock via ConcreteLock ({label})"), |b| {
            b.iter(|| {
                lock.try_lock().unwrap();
                lock.try_unlock().unwrap();
            });
        });

        let concrete: Box<dyn ConcreteLock> = Box::new(open_lock());
        let mut boxed: Box<dyn Lock> = Box::new(LockBuilder::default().apply(concrete));
        group.bench_function(format!("FileLock via Box<dyn Lock> ({label})"), |b| {
            b.iter(|| {
                boxed.lock().unwrap();
                boxed.unlock().unwrap();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
