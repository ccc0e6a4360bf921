//! Why simplelock exists, in a few seconds: worker processes increment one shared counter with a
//! racy read-modify-write — without a lock, with `FileLock`, with `SemaphoreLock` — and then
//! holders are killed with SIGKILL inside their critical section.
//!
//! ```text
//! cargo run --release -p simplelock --example contention --features file,sema
//! ```
//!
//! The runs are the multi-process harness's (the dev-only crate `simplelock-harness`, whose
//! `stress` mode is `cargo xtask stress`); the workers are this program, re-run in the harness's
//! `worker` role.

use std::process::ExitCode;
use std::time::Duration;

use simplelock_harness::{CounterReport, Mode, StormReport, counter_run, kill_storm, millis};

fn main() -> ExitCode {
    if let Some(code) = simplelock_harness::play_role_if_child() {
        return code;
    }
    if std::env::args().len() > 1 {
        eprintln!(
            "contention: the demo takes no arguments; the stress runs and measurements are \
             `cargo xtask stress` and `cargo xtask bench` (or `cargo run -p simplelock-harness \
             -- --help`)"
        );
        return ExitCode::FAILURE;
    }
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("contention: {message}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<(), String> {
    const PROCS: usize = 4;
    const ROUNDS: u64 = 20_000;
    println!(
        "{PROCS} worker processes each add 1 to a shared counter {ROUNDS} times: read it, \
         then write it back plus one."
    );
    println!("Without a lock, updates made at the same moment overwrite each other.\n");
    println!(
        "{:<15} {:>17} {:>7} {:>9} {:>8} {:>14}",
        "lock", "kept / expected", "lost", "overlaps", "time", "per increment"
    );
    for (backend, label) in [
        ("none", "no lock"),
        ("file", "FileLock"),
        ("sema", "SemaphoreLock"),
    ] {
        let report = counter_run(backend, PROCS, ROUNDS, Duration::ZERO, Mode::Hang)?;
        print_counter_row(label, &report);
    }

    println!(
        "\nNow a worker is killed with SIGKILL while it holds the lock, 5 times in a row.\n\
         The others must get the lock at once, and the next holder is told its predecessor died\n\
         (so it can repair half-done work):\n"
    );
    for (backend, label) in [("file", "FileLock"), ("sema", "SemaphoreLock")] {
        let report = kill_storm(backend, 3, 5, None, Duration::from_millis(2), Mode::Hang)?;
        print_storm_line(label, &report);
    }
    Ok(())
}

fn print_counter_row(label: &str, report: &CounterReport) {
    let per = report.elapsed.as_secs_f64() / report.expected.max(1) as f64;
    println!(
        "{:<15} {:>17} {:>7} {:>9} {:>7.2}s {:>11.2} µs",
        label,
        format!("{} / {}", report.counter, report.expected),
        report.lost(),
        report.overlaps,
        report.elapsed.as_secs_f64(),
        per * 1e6,
    );
}

fn print_storm_line(label: &str, report: &StormReport) {
    println!(
        "  {label:<14} {} kills, {} inside the lock; next holder told \"previous holder died\": \
         {}/{}; overlaps {}; lost updates {}; recovery median {}, worst {}",
        report.kills,
        report.kills_inside,
        report.died_reported,
        report.kills_inside,
        report.overlaps,
        report.lost_updates,
        millis(report.median_recovery()),
        millis(report.worst_recovery()),
    );
}
