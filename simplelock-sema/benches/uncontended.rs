//! Uncontended lock + unlock pairs, measured in one run: a raw POSIX named semaphore
//! (`sem_wait` + `sem_post`), `SemaphoreLock` through `ConcreteLock`, and `SemaphoreLock` behind
//! `Box<dyn Lock>` as `LockBuilder::wrap` makes it. The goal: the last within 1.3× of the first.
//!
//! `cargo bench -p simplelock-sema -- --quick` for a short run.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use std::ffi::CString;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use simplelock_core::{ConcreteLock, Lock, LockBuilder};
use simplelock_sema::SemaphoreLock;

/// A POSIX named semaphore, closed and unlinked on drop.
struct RawSem {
    sem: *mut libc::sem_t,
    name: CString,
}

impl RawSem {
    fn new(name: &str) -> RawSem {
        let name = CString::new(name).unwrap();
        // SAFETY: a valid C string; O_CREAT takes a mode and an initial value (1: free).
        let sem = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600 as libc::c_uint, 1) };
        assert_ne!(sem, libc::SEM_FAILED, "sem_open failed");
        RawSem { sem, name }
    }

    fn wait_post(&self) {
        // SAFETY: `sem` is an open semaphore until drop.
        unsafe {
            assert_eq!(libc::sem_wait(self.sem), 0);
            assert_eq!(libc::sem_post(self.sem), 0);
        }
    }
}

impl Drop for RawSem {
    fn drop(&mut self) {
        // SAFETY: `sem` is open and closed only here; `name` is a valid C string.
        unsafe {
            libc::sem_close(self.sem);
            libc::sem_unlink(self.name.as_ptr());
        }
    }
}

fn uncontended(c: &mut Criterion) {
    let pid = std::process::id();
    let mut group = c.benchmark_group("SemaphoreLock, uncontended lock+unlock");

    let raw = RawSem::new(&format!("/sl-bench-raw-{pid}"));
    group.bench_function("raw sem_wait+sem_post", |b| b.iter(|| raw.wait_post()));

    let name = format!("/sl-bench-{pid}");
    let mut concrete = SemaphoreLock::named(&name).unwrap();
    group.bench_function("SemaphoreLock via ConcreteLock", |b| {
        b.iter(|| {
            black_box(&mut concrete).hang_lock().unwrap();
            black_box(&mut concrete).try_unlock().unwrap();
        })
    });
    drop(concrete);

    let concrete: Box<dyn ConcreteLock> = Box::new(SemaphoreLock::named(&name).unwrap());
    let mut boxed: Box<dyn Lock> = Box::new(LockBuilder::default().apply(concrete));
    group.bench_function("SemaphoreLock via Box<dyn Lock>", |b| {
        b.iter(|| {
            black_box(&mut boxed).lock().unwrap();
            black_box(&mut boxed).unlock().unwrap();
        })
    });
    drop(boxed);

    let concrete: Box<dyn ConcreteLock> = Box::new(SemaphoreLock::named(&name).unwrap());
    let mut trying: Box<dyn Lock> =
        Box::new(LockBuilder::default().with_try_lock().apply(concrete));
    group.bench_function("SemaphoreLock via Box<dyn Lock>, try mode", |b| {
        b.iter(|| {
            black_box(&mut trying).lock().unwrap();
            black_box(&mut trying).unlock().unwrap();
        })
    });
    drop(trying);

    group.finish();
    drop(raw);
    SemaphoreLock::remove(&name).unwrap();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
