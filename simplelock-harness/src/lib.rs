//! The multi-process harness of the simplelock workspace: one home for everything that tests or
//! measures the locks with real processes (parking_lot keeps its `benchmark/` crate the same
//! way). Dev-only: `publish = false`, and only ever a dev-dependency (of the backends' tests and
//! the facade's demo).
//!
//! - **stress** (`simplelock-harness stress`, run by `cargo xtask stress` and `cargo xtask ci`):
//!   worker processes increment one shared counter with a racy read-modify-write inside the lock
//!   (the counter run), holders are SIGKILLed inside their critical section (the kill storm),
//!   and each backend meets its adversary: for the file backend another process deletes and
//!   re-creates the lock file during a storm (`adversary.rs`), for the sema backend its object is
//!   zeroed, attacked by another user and squatted (`sema_adversary.rs`). Each run is judged:
//!   no overlap, no lost update, every death inside the lock reported to the next holder.
//! - **measurements** (`bench-handoff`, `bench-throughput`, `bench-recovery`, run by
//!   `cargo xtask bench`): each prints one [`results::BenchResult`] as JSON.
//! - **child processes of the backends' tests** ([`child`]): the test binary re-run for one test
//!   in a role, talking to its parent in tagged lines, with scratch folders and hang guards.
//!
//! The workers and peers are the running program re-run with a hidden role as first argument
//! (`worker ...`, `handoff-peer ...`): the `simplelock-harness` binary, or the facade's
//! `contention` demo, which uses [`counter_run`] and [`kill_storm`] and so starts with
//! [`play_role_if_child`]. The command line is parsed by clap (`cli.rs`).
//!
//! ```text
//! cargo run --release -p simplelock-harness -- stress --backend sema --kills 50
//! cargo run --release -p simplelock-harness -- bench-handoff sema hang 100
//! ```
#![forbid(unsafe_code)]

mod adversary;
mod backends;
mod bench;
mod bench_async;
pub use bench_async::{TICK, tick_while_held};
pub mod child;
mod cli;
pub mod results;
mod run;
mod sema_adversary;
mod state;
mod stress;
mod worker;

use std::time::Duration;

pub use cli::{main, play_role_if_child};
pub use run::{CounterReport, StormReport, counter_run, kill_storm, reports_deaths};
pub use worker::Mode;

/// A duration in milliseconds with two decimals, or `-` for none.
pub fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}
