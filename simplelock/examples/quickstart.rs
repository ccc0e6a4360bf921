//! A first look at the facade: four threads share one named lock, a try-lock sees it taken,
//! a timed lock gives up, and a guard releases on every path.
//!
//! Run it with `cargo run -p simplelock --example quickstart --features fake`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use simplelock::{
    Lock, LockBuilder, LockBuilderExt, SimpleLockError, SimpleLockResult, lock_until_finished,
};

const NAME: &str = "quickstart";

fn main() -> SimpleLockResult<()> {
    let counter = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || -> SimpleLockResult<()> {
                let mut lock = simplelock::default_lock(NAME)?;
                for _ in 0..1000 {
                    lock_until_finished(&mut lock, || {
                        // A racy read-modify-write: only the lock keeps the total exact.
                        let seen = counter.load(Ordering::Relaxed);
                        thread::yield_now();
                        counter.store(seen + 1, Ordering::Relaxed);
                    })?;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked")?;
    }
    println!(
        "4 threads x 1000 locked increments: counter = {} (expected 4000)",
        counter.load(Ordering::Relaxed)
    );

    let mut holder = simplelock::default_lock(NAME)?;
    let guard = holder.guard()?;
    let mut impatient = LockBuilder::default().with_try_lock().build(NAME)?;
    match impatient.lock() {
        Err(e @ SimpleLockError::AlreadyLocked { .. }) => println!("try-lock while held: {e}"),
        other => println!("try-lock while held: unexpected {other:?}"),
    }
    let mut patient = LockBuilder::default()
        .with_timeout(Duration::from_millis(100))
        .build(NAME)?;
    match patient.lock() {
        Err(e @ SimpleLockError::TimedOut { .. }) => println!("timed lock while held: {e}"),
        other => println!("timed lock while held: unexpected {other:?}"),
    }
    drop(guard);
    impatient.lock()?;
    println!("after the guard dropped, try-lock: {}", impatient.status()?);
    impatient.unlock()?;
    Ok(())
}
