//! An async service that takes a lock shared with other processes, without blocking its
//! runtime: while it waits, its other tasks (here a heartbeat) keep running.
//!
//! Run two or more at once, in different terminals:
//!
//! ```text
//! cargo run -p simplelock --features file,sema,tokio --example async_service -- file
//! cargo run -p simplelock --features file,sema,tokio --example async_service -- sema
//! ```
//!
//! Each one tries for 100 ms, says who holds the lock if it is busy, then waits as long as it
//! takes, holds the lock for two seconds and releases it. Kill one with Ctrl-C while it holds
//! the lock: the next one takes over and is told that its predecessor died.

use std::time::{Duration, Instant};

use simplelock::{
    AsyncConcreteLock, AsyncLockExt, AsyncLockGuard, FileLock, SemaphoreLock, SimpleLockError,
    SimpleLockResult, TokioLockExt,
};

/// Takes the lock: a short try first, to tell the user who is in the way, then a wait.
async fn deploy<L: AsyncConcreteLock>(lock: &mut L) -> SimpleLockResult<()> {
    let holder = match lock.lock_timeout(Duration::from_millis(100)).await {
        Ok(guard) => return critical_section(guard).await,
        Err(SimpleLockError::TimedOut { holder, .. }) => holder,
        Err(other) => return Err(other),
    };
    let who = holder.map_or("someone".to_owned(), |h| format!("process {}", h.pid));
    println!("busy: {who} holds the lock; waiting without blocking the runtime");
    critical_section(lock.lock_async().await?).await
}

/// The work done under the lock.
async fn critical_section<L: AsyncConcreteLock>(
    guard: AsyncLockGuard<'_, L>,
) -> SimpleLockResult<()> {
    if guard.previous_holder_died() {
        println!("the previous holder died inside its critical section: checking its work");
    }
    println!("holding the lock (process {})", std::process::id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Dropping the guard would release too; `unlock` reports a failed release.
    guard.unlock().await?;
    println!("released");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "file".to_owned());
    let started = Instant::now();
    // The heartbeat: on this single-threaded runtime it would stop if the wait blocked.
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            println!("heartbeat at {:.1} s", started.elapsed().as_secs_f64());
        }
    });
    match backend.as_str() {
        "file" => deploy(&mut FileLock::named("async-service-example")?).await?,
        "sema" => deploy(&mut SemaphoreLock::named("async-service-example")?).await?,
        other => return Err(format!("unknown backend {other:?}: use file or sema").into()),
    }
    heartbeat.abort();
    Ok(())
}
