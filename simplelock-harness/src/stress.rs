//! `simplelock-harness stress` (what `cargo xtask stress` runs): for each backend the counter
//! run and the kill storm, then its adversary — for the file backend a kill storm while another
//! process replaces the lock file (`adversary.rs`), for the sema backend a kill storm with its
//! object zeroed, attacked by another user and squatted (`sema_adversary.rs`) — each judged.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::results::{StressSummary, Verdict};
use crate::run::{counter_run, kill_storm, reports_deaths};
use crate::worker::Mode;
use crate::{adversary, millis, sema_adversary};

/// The options of `stress`.
#[derive(Debug, clap::Args)]
pub(crate) struct Stress {
    /// file, sema, flock, none, or all (= file and sema)
    #[arg(long, default_value = "all")]
    backend: String,
    /// Worker processes
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    procs: u64,
    /// Critical sections per worker in the counter run
    #[arg(long, default_value_t = 2000)]
    iterations: u64,
    /// Holders to SIGKILL in the kill storm
    #[arg(long, default_value_t = 100)]
    kills: u64,
    /// Stop the kill storms after this many seconds, kills or not
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<Duration>,
    /// Time inside each critical section of the storm, in microseconds
    #[arg(long = "hold-us", value_name = "N", default_value = "300", value_parser = crate::cli::micros)]
    hold: Duration,
    /// How workers ask for the lock (mix: each in turn)
    #[arg(long, value_enum, default_value = "mix")]
    mode: Mode,
    /// Also write the verdicts into FILE as JSON (a `StressSummary`; xtask reads it)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_secs)
        .map_err(|e| format!("{text:?}: {e}"))
}

impl Stress {
    fn backends(&self) -> Vec<String> {
        if self.backend == "all" {
            vec!["file".into(), "sema".into()]
        } else {
            vec![self.backend.clone()]
        }
    }

    fn procs(&self) -> usize {
        usize::try_from(self.procs).unwrap_or(usize::MAX)
    }

    pub(crate) fn run(&self) -> Result<(), String> {
        let mut summary = StressSummary::default();
        let deadline = self.duration.map(|d| Instant::now() + d);
        for backend in &self.backends() {
            self.counter(backend, &mut summary)?;
            self.storm(backend, deadline, &mut summary)?;
            if backend == "sema" {
                self.sema_adversary(deadline, &mut summary)?;
            }
            if backend == "file" {
                println!(
                    "kill storm, file, with the lock file deleted and re-created meanwhile by \
                     another process (see adversary.rs)"
                );
                let failures = adversary::replaced_kill_storm(
                    self.procs(),
                    self.kills,
                    deadline,
                    self.hold,
                    self.mode,
                )?;
                verdict(
                    backend,
                    "kill storm with the file replaced",
                    failures,
                    &mut summary,
                );
            }
        }
        if let Some(path) = &self.json {
            let json =
                serde_json::to_string_pretty(&summary).map_err(|e| format!("writing JSON: {e}"))?;
            std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        let failed = summary.failures();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("FAILED: {}", failed.join("; ")))
        }
    }

    fn counter(&self, backend: &str, summary: &mut StressSummary) -> Result<(), String> {
        println!(
            "counter run, {backend}: {} processes x {} rounds, mode {}",
            self.procs,
            self.iterations,
            self.mode.as_str()
        );
        let counter = counter_run(
            backend,
            self.procs(),
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
        verdict(backend, "counter run", counter.failures(), summary);
        Ok(())
    }

    fn storm(
        &self,
        backend: &str,
        deadline: Option<Instant>,
        summary: &mut StressSummary,
    ) -> Result<(), String> {
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
            backend,
            self.procs(),
            self.kills,
            deadline,
            self.hold,
            self.mode,
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
        verdict(backend, "kill storm", storm.failures(), summary);
        Ok(())
    }

    /// The kill storm again, with an adversary attacking the object (see `sema_adversary.rs`).
    fn sema_adversary(
        &self,
        deadline: Option<Instant>,
        summary: &mut StressSummary,
    ) -> Result<(), String> {
        println!(
            "adversary, sema: {} processes, {} kills, each followed by a zeroing, an attack by \
             another user or a squat of the name, in turn",
            self.procs, self.kills
        );
        let report = sema_adversary::storm(self.procs(), self.kills, deadline, self.hold)?;
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
        verdict("sema", "adversary", report.failures, summary);
        Ok(())
    }
}

/// Prints the verdict of one run and records it.
fn verdict(backend: &str, run: &str, failures: Vec<String>, summary: &mut StressSummary) {
    if failures.is_empty() {
        println!("  ok");
    } else {
        println!("  FAILED: {}", failures.join(", "));
    }
    summary.runs.push(Verdict {
        backend: backend.to_owned(),
        run: run.to_owned(),
        failures,
    });
}
