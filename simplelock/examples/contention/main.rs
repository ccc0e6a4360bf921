//! Why simplelock exists, in a few seconds: worker processes increment one shared counter with a
//! racy read-modify-write — without a lock, with `FileLock`, with `SemaphoreLock` — and then
//! holders are killed with SIGKILL inside their critical section.
//!
//! ```text
//! cargo run --release -p simplelock --example contention --features file,sema
//! ```
//!
//! The same program is the stress harness (`cargo xtask stress` runs its `stress` mode):
//!
//! ```text
//! contention stress [--backend B|all] [--procs N] [--iterations N] [--kills N]
//!                   [--duration SECS] [--hold-us N] [--mode hang|try|timed|mix]
//! ```
//!
//! and it is its own worker process (`contention worker ...`, started by the two above), and the
//! file backend's adversary (`contention replacer ...`, which deletes and re-creates the lock
//! file during a second kill storm; see `adversary.rs`).

mod adversary;
mod backends;
mod bench;
mod run;
mod sema_adversary;
mod state;
mod worker;

use std::env;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use run::{CounterReport, StormReport, counter_run, kill_storm, reports_deaths};
use worker::{Job, Mode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => demo(),
        Some("worker") => Job::from_args(&args[1..]).and_then(|job| worker::run(&job)),
        Some("stress") => Stress::parse(&args[1..]).and_then(|stress| stress.run()),
        Some("bench-handoff") => bench::handoff(&args[1..]),
        Some("handoff-peer") => bench::handoff_peer(&args[1..]),
        Some("bench-throughput") => bench::throughput(&args[1..]),
        Some("throughput-peer") => bench::throughput_peer(&args[1..]),
        Some("bench-recovery") => bench::recovery(&args[1..]),
        Some("sema-adversary-worker") => sema_adversary::worker(&args[1..]),
        Some("sema-adversary-user") => sema_adversary::user(&args[1..]),
        Some("replacer") => adversary::replacer(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown mode {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("contention: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: contention                      the demo
       contention stress [OPTIONS]     the stress harness (cargo xtask stress)
       contention bench-handoff BACKEND hang|timed SAMPLES
       contention bench-throughput BACKEND PROCS MILLIS
       contention bench-recovery BACKEND KILLS
                                       measurements for cargo xtask bench

stress options:
  --backend B      file, sema, flock, none, or all (= file and sema)   [all]
  --procs N        worker processes                                     [4]
  --iterations N   critical sections per worker in the counter run      [2000]
  --kills N        holders to SIGKILL in the kill storm                 [100]
  --duration SECS  stop the kill storm after this long, kills or not
  --hold-us N      time inside each critical section of the storm       [300]
  --mode M         hang, try, timed or mix (each in turn)               [mix]";

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

fn millis(duration: Option<Duration>) -> String {
    duration.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
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

/// `contention stress`: the counter run and the kill storm for each backend, judged.
struct Stress {
    backends: Vec<String>,
    procs: usize,
    iterations: u64,
    kills: u64,
    duration: Option<Duration>,
    hold: Duration,
    mode: Mode,
}

impl Stress {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut stress = Stress {
            backends: vec!["file".into(), "sema".into()],
            procs: 4,
            iterations: 2000,
            kills: 100,
            duration: None,
            hold: Duration::from_micros(300),
            mode: Mode::Mix,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|e| format!("{flag} {value:?}: {e}"))
            };
            match flag.as_str() {
                "--backend" if value == "all" => {}
                "--backend" => stress.backends = vec![value.clone()],
                "--procs" => stress.procs = number()?.max(1) as usize,
                "--iterations" => stress.iterations = number()?,
                "--kills" => stress.kills = number()?,
                "--duration" => stress.duration = Some(Duration::from_secs(number()?)),
                "--hold-us" => stress.hold = Duration::from_micros(number()?),
                "--mode" => stress.mode = Mode::parse(value)?,
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        Ok(stress)
    }

    fn run(&self) -> Result<(), String> {
        let mut failed = Vec::new();
        let deadline = self.duration.map(|d| Instant::now() + d);
        for backend in &self.backends {
            println!(
                "counter run, {backend}: {} processes x {} rounds, mode {}",
                self.procs,
                self.iterations,
                self.mode.as_str()
            );
            let counter = counter_run(
                backend,
                self.procs,
                self.iterations,
                Duration::ZERO,
                self.mode,
            )?;
            println!(
                "  acquisitions {}, counter {} of {}, lost updates {}, overlaps {}, false death \
                 reports {}, {:.2}s",
                counter.entries,
                counter.counter,
                counter.expected,
                counter.lost(),
                counter.overlaps,
                counter.false_deaths,
                counter.elapsed.as_secs_f64()
            );
            verdict(backend, "counter run", counter.failures(), &mut failed);

            println!(
                "kill storm, {backend}: {} processes, {} kills{}, hold {:?}, mode {}",
                self.procs,
                self.kills,
                self.duration
                    .map_or(String::new(), |d| format!(" or {d:?}")),
                self.hold,
                self.mode.as_str()
            );
            let storm = kill_storm(
                backend, self.procs, self.kills, deadline, self.hold, self.mode,
            )?;
            println!(
                "  acquisitions {}, kills {} ({} inside the lock), deaths reported {} (missed {}{}), \
                 overlaps {}, lost updates {}, recovery median {} worst {}",
                storm.entries,
                storm.kills,
                storm.kills_inside,
                storm.died_reported,
                storm.deaths_missed,
                if reports_deaths(backend) {
                    ""
                } else {
                    ", not claimed by this backend"
                },
                storm.overlaps,
                storm.lost_updates,
                millis(storm.median_recovery()),
                millis(storm.worst_recovery()),
            );
            verdict(backend, "kill storm", storm.failures(), &mut failed);
            if backend == "sema" {
                self.sema_adversary(deadline, &mut failed)?;
            }
            if backend == "file" {
                println!(
                    "kill storm, file, with the lock file deleted and re-created meanwhile by \
                     another process (see adversary.rs)"
                );
                let failures = adversary::replaced_kill_storm(
                    self.procs, self.kills, deadline, self.hold, self.mode,
                )?;
                verdict(
                    backend,
                    "kill storm with the file replaced",
                    failures,
                    &mut failed,
                );
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("FAILED: {}", failed.join("; ")))
        }
    }
}

impl Stress {
    /// The kill storm again, with an adversary attacking the object (see `sema_adversary.rs`).
    fn sema_adversary(
        &self,
        deadline: Option<Instant>,
        failed: &mut Vec<String>,
    ) -> Result<(), String> {
        println!(
            "adversary, sema: {} processes, {} kills, each followed by a zeroing, an attack by \
             another user or a squat of the name, in turn",
            self.procs, self.kills
        );
        let report = sema_adversary::storm(self.procs, self.kills, deadline, self.hold)?;
        println!(
            "  acquisitions {}, kills {}, zeroings {}, other-user attacks refused {}, squats won \
             {} / lost {}{}, errors seen by workers {}, overlaps {}, lost updates {}",
            report.entries,
            report.kills,
            report.zeroings,
            report.foreign_attacks_refused,
            report.squats,
            report.squats_lost,
            if report.other_user {
                ""
            } else {
                " (other-user attacks not run: they need root and setpriv)"
            },
            report.worker_errors,
            report.overlaps,
            report.lost_updates,
        );
        verdict("sema", "adversary", report.failures, failed);
        Ok(())
    }
}

fn verdict(backend: &str, what: &str, failures: Vec<String>, failed: &mut Vec<String>) {
    if failures.is_empty() {
        println!("  ok");
    } else {
        println!("  FAILED: {}", failures.join(", "));
        failed.extend(
            failures
                .into_iter()
                .map(|f| format!("{backend} {what}: {f}")),
        );
    }
}
