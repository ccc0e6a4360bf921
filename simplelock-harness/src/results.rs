//! What the harness hands to `cargo xtask`: typed results, written as JSON with `serde_json`.
//!
//! A measurement (`bench-handoff`, `bench-throughput`, `bench-recovery`) prints exactly one
//! [`BenchResult`] on its standard output, as one line of JSON, and nothing else there (its
//! peers' output goes to standard error). So does simplelock-postgres's `pg_bench` example (a
//! [`Postgres`] result, through [`emit`]): it lives with its backend rather than here, so that
//! the harness, which the file and sema tests build, does not build a PostgreSQL client. `stress --json FILE` writes a [`StressSummary`] into
//! FILE.
//!
//! xtask mirrors these types rather than depending on this crate, deliberately: xtask must build
//! and run `cargo xtask ci` (fmt, clippy, the tests) even when the library does not compile, and
//! a dependency on the harness would make it build every backend first. Both sides are pinned to
//! one example document, `results.sample.json` next to this file: the test below checks that
//! this crate writes it, xtask's test that its mirror reads it (with `deny_unknown_fields`, so a
//! field added on one side only fails there).

use serde::{Deserialize, Serialize};

/// One multi-process measurement, tagged by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BenchResult {
    /// `bench-handoff`.
    Handoff(Handoff),
    /// `bench-throughput`.
    Throughput(Throughput),
    /// `bench-recovery`.
    Recovery(Recovery),
    /// simplelock-postgres's `pg_bench` example.
    Postgres(Postgres),
    /// `bench-ticker`.
    Ticker(Ticker),
}

/// How late a ticker task of a current-thread runtime runs while other tasks of that runtime
/// wait for a lock another process holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticker {
    /// The lock measured (`file`, `sema`).
    pub backend: String,
    /// Tasks waiting in `lock_async().await`.
    pub waiters: u64,
    /// The ticker's period, in ns.
    pub period_ns: u64,
    /// Ticks counted while the lock was held.
    pub ticks: u64,
    /// The largest time between two ticks, in ns (the period if nothing got in the way).
    pub max_gap_ns: u64,
}

/// How fast a waiting process gets the lock after its holder lets go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// The lock measured (`file`, `sema`, `flock`, `poll50`).
    pub backend: String,
    /// How the waiter waited: `hang` or `timed`.
    pub wait: String,
    /// Handoffs measured.
    pub samples: u64,
    /// From the release to the waiter's return from its lock call: the median, in ns.
    pub median_ns: u64,
    /// The 99th percentile, in ns.
    pub p99_ns: u64,
    /// The mean, in ns.
    pub mean_ns: u64,
}

/// How many acquisitions per second contending processes make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// The lock measured.
    pub backend: String,
    /// Contending processes.
    pub procs: u64,
    /// Acquisitions counted, all processes together.
    pub acquisitions: u64,
    /// How long they were counted.
    pub seconds: f64,
    /// `acquisitions / seconds`.
    pub per_second: f64,
}

/// How long a holder SIGKILLed inside the lock keeps the others waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// The lock measured.
    pub backend: String,
    /// How the waiters waited: `hang` or `async`.
    pub wait: String,
    /// Holders killed.
    pub kills: u64,
    /// Kills that landed inside the critical section (the ones measured).
    pub inside: u64,
    /// From the SIGKILL to the next holder's entry: the median, in ns.
    pub median_ns: u64,
    /// The worst, in ns.
    pub worst_ns: u64,
}

/// `PostgresLock` next to the same advisory-lock calls made raw with the `postgres` crate, on
/// one server, the variants taking turns sample by sample (so that all meet the same load): one
/// measurement, one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// Samples per variant and measure.
    pub samples: u64,
    /// One round trip to the server (`SELECT 1`): the median, in ns.
    pub roundtrip_ns: u64,
    /// An uncontended lock + unlock, per variant.
    pub uncontended: Vec<PostgresMeasure>,
    /// From one client's release to the blocked waiter's return from its lock call, per
    /// variant.
    pub handoff: Vec<PostgresMeasure>,
}

/// One variant's times in a [`Postgres`] measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresMeasure {
    /// `ours` (`PostgresLock`), `ours-timed` (its `timed_lock`), `ours-no-token` (`with_fencing_tokens(FencingTokens::Disabled)`), `permits` (one
    /// of 3 permits of `PostgresPermits`), `raw` (the advisory-lock calls alone),
    /// `raw-token` (plus the transaction-id token), `raw-notify` (a raw wait woken by
    /// `NOTIFY`).
    pub variant: String,
    /// The median, in ns.
    pub median_ns: u64,
    /// The 99th percentile, in ns.
    pub p99_ns: u64,
}

/// The verdicts of a `stress` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressSummary {
    /// Every run, in the order they ran.
    pub runs: Vec<Verdict>,
}

/// The verdict of one run of `stress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// The backend (`file`, `sema`, ...).
    pub backend: String,
    /// Which run: `counter run`, `kill storm`, `kill storm with the file replaced`, `adversary`.
    pub run: String,
    /// What went wrong; empty if the lock did its job.
    pub failures: Vec<String>,
}

impl StressSummary {
    /// `backend run: failure` for every failure of every run.
    pub fn failures(&self) -> Vec<String> {
        self.runs
            .iter()
            .flat_map(|verdict| {
                verdict
                    .failures
                    .iter()
                    .map(move |f| format!("{} {}: {f}", verdict.backend, verdict.run))
            })
            .collect()
    }
}

macro_rules! into_result {
    ($($kind:ident),*) => {$(
        impl From<$kind> for BenchResult {
            fn from(result: $kind) -> Self {
                BenchResult::$kind(result)
            }
        }
    )*};
}
into_result!(Handoff, Throughput, Recovery, Postgres, Ticker);

/// Prints `result` as one line of JSON on standard output.
///
/// # Errors
///
/// If serde_json cannot write it (it always can: strings and numbers).
pub fn emit(result: impl Into<BenchResult>) -> Result<(), String> {
    let json = serde_json::to_string(&result.into()).map_err(|e| format!("writing JSON: {e}"))?;
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One result of each kind and a stress summary, as `results.sample.json` has them.
    fn sample() -> (Vec<BenchResult>, StressSummary) {
        let bench = vec![
            BenchResult::Handoff(Handoff {
                backend: "file".into(),
                wait: "hang".into(),
                samples: 500,
                median_ns: 20_000,
                p99_ns: 90_000,
                mean_ns: 25_000,
            }),
            BenchResult::Throughput(Throughput {
                backend: "sema".into(),
                procs: 4,
                acquisitions: 1_000_000,
                seconds: 2.0,
                per_second: 500_000.0,
            }),
            BenchResult::Recovery(Recovery {
                backend: "sema".into(),
                wait: "async".into(),
                kills: 50,
                inside: 50,
                median_ns: 2_000_000,
                worst_ns: 8_000_000,
            }),
            BenchResult::Ticker(Ticker {
                backend: "file".into(),
                waiters: 1000,
                period_ns: 10_000_000,
                ticks: 180,
                max_gap_ns: 12_000_000,
            }),
            BenchResult::Postgres(Postgres {
                samples: 300,
                roundtrip_ns: 25_000,
                uncontended: vec![PostgresMeasure {
                    variant: "ours".into(),
                    median_ns: 70_000,
                    p99_ns: 90_000,
                }],
                handoff: vec![PostgresMeasure {
                    variant: "raw".into(),
                    median_ns: 60_000,
                    p99_ns: 80_000,
                }],
            }),
        ];
        let stress = StressSummary {
            runs: vec![
                Verdict {
                    backend: "file".into(),
                    run: "counter run".into(),
                    failures: vec![],
                },
                Verdict {
                    backend: "sema".into(),
                    run: "kill storm".into(),
                    failures: vec!["1 lost updates".into()],
                },
            ],
        };
        (bench, stress)
    }

    /// xtask's mirror of these types is tested against the same file: both sides agree on it.
    #[test]
    fn the_sample_document_is_what_this_crate_writes() {
        let (bench, stress) = sample();
        let written = serde_json::json!({ "bench": bench, "stress": stress });
        let pinned: serde_json::Value =
            serde_json::from_str(include_str!("results.sample.json")).unwrap();
        assert_eq!(written, pinned);
        let read: Vec<BenchResult> = serde_json::from_value(pinned["bench"].clone()).unwrap();
        assert_eq!(read, bench);
        assert_eq!(
            stress.failures(),
            vec!["sema kill storm: 1 lost updates".to_owned()]
        );
    }

    #[test]
    fn a_result_is_one_line_with_its_kind() {
        let line = serde_json::to_string(&sample().0[0]).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(r#"{"kind":"handoff","#), "{line}");
    }
}
