//! What each part of the holder record costs next to a bare `flock(2)` pair, on tmpfs and on a
//! disk file system: the floor any record design pays, measured rather than guessed.
//!
//! Per lock+unlock pair, on one file: the bare pair; the pair with one 64-byte `pread`; with
//! one 64-byte `pwrite`; with one 1-byte `pwrite` (a release that only flips the state byte);
//! with the `lstat` of the path check; and the pair with what the record costs today at the
//! least (one `pread` and one `pwrite` to acquire, one `pwrite` to release).
//!
//! `cargo bench -p simplelock-file --bench record_parts -- --quick` runs it (criterion's
//! filters select a part: `-- 'tmpfs'`). tmpfs is `/dev/shm`; the disk folder is
//! `$SIMPLELOCK_BENCH_DISK_DIR`, else the target folder (ext4 on the project's machines).
#![allow(
    unsafe_code,
    reason = "the bare flock(2) and lstat calls the parts are measured against"
)]

#[cfg(unix)]
mod parts {
    use std::ffi::CString;
    use std::fs::{File, OpenOptions};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};

    use criterion::Criterion;

    /// The record's length (simplelock-file's `RECORD_LEN`).
    const RECORD: usize = 64;

    fn open(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    /// The folders measured, by file system.
    fn folders() -> Vec<(&'static str, PathBuf)> {
        let disk = std::env::var_os("SIMPLELOCK_BENCH_DISK_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
        let mut folders = vec![("disk", disk)];
        if Path::new("/dev/shm").is_dir() {
            folders.insert(0, ("tmpfs", PathBuf::from("/dev/shm")));
        }
        folders
    }

    fn flock(fd: i32, operation: i32) {
        // SAFETY: `fd` belongs to a `File` that is open for the whole benchmark.
        assert_eq!(unsafe { libc::flock(fd, operation) }, 0);
    }

    pub(crate) fn record_parts(c: &mut Criterion) {
        for (fs_name, folder) in folders() {
            let dir = folder.join(format!("simplelock-record-parts-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("parts.lock");
            let file = open(&path);
            file.write_all_at(&[b'x'; RECORD], 0).unwrap();
            let fd = file.as_raw_fd();
            let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
            let mut buf = [0u8; RECORD];
            let record = [b'y'; RECORD];
            let mut group = c.benchmark_group(format!("record parts, {fs_name}"));
            group.bench_function("flock pair", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.bench_function("flock pair + pread 64", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    file.read_exact_at(&mut buf, 0).unwrap();
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.bench_function("flock pair + pwrite 64", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    file.write_all_at(&record, 0).unwrap();
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.bench_function("flock pair + pwrite 1", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    file.write_all_at(&record[..1], 0).unwrap();
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.bench_function("flock pair + lstat", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    // SAFETY: stat is plain data, for which all zeroes is a valid value.
                    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
                    // SAFETY: a NUL-terminated path and a live stat buffer.
                    assert_eq!(unsafe { libc::lstat(c_path.as_ptr(), &mut stat) }, 0);
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.bench_function("flock pair + pread + 2 pwrite (the record today)", |b| {
                b.iter(|| {
                    flock(fd, libc::LOCK_EX);
                    file.read_exact_at(&mut buf, 0).unwrap();
                    file.write_all_at(&record, 0).unwrap();
                    file.write_all_at(&record, 0).unwrap();
                    flock(fd, libc::LOCK_UN);
                });
            });
            group.finish();
            drop(file);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(unix)]
criterion::criterion_group!(benches, parts::record_parts);
#[cfg(unix)]
criterion::criterion_main!(benches);

/// The parts are Unix system calls; elsewhere there is nothing to measure.
#[cfg(not(unix))]
fn main() {
    eprintln!("record_parts measures flock(2), pread and pwrite: a Unix benchmark");
}
