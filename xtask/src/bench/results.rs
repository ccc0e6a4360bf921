//! The results of the harness's measurements and stress runs, read from its JSON.
//!
//! A deliberate mirror of `simplelock_harness::results` rather than a dependency on that crate:
//! xtask must build (and `cargo xtask ci` run fmt, clippy and the tests) even when the library
//! does not, and it would otherwise compile every backend before it can start. The two sides
//! are pinned to one document, `simplelock-harness/src/results.sample.json`: the harness checks
//! that it writes it, the test below that this mirror reads it, and `deny_unknown_fields` turns
//! a field added on one side only into an error instead of a silently empty column.

use serde::Deserialize;

/// One multi-process measurement, tagged by its `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum BenchResult {
    Handoff(Handoff),
    Throughput(Throughput),
    Recovery(Recovery),
    Postgres(Postgres),
    Ticker(Ticker),
}

/// `bench-ticker`: a ticker's largest gap while its runtime's tasks wait for a lock.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ticker {
    pub(crate) backend: String,
    pub(crate) waiters: u64,
    pub(crate) period_ns: u64,
    pub(crate) ticks: u64,
    pub(crate) max_gap_ns: u64,
}

/// `bench-handoff`: from a release to the waiter's return from its lock call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Handoff {
    pub(crate) backend: String,
    pub(crate) wait: String,
    pub(crate) samples: u64,
    pub(crate) median_ns: u64,
    pub(crate) p99_ns: u64,
    pub(crate) mean_ns: u64,
}

/// `bench-throughput`: acquisitions per second of contending processes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Throughput {
    pub(crate) backend: String,
    pub(crate) procs: u64,
    pub(crate) acquisitions: u64,
    pub(crate) seconds: f64,
    pub(crate) per_second: f64,
}

/// `bench-recovery`: from the SIGKILL of a holder to the next holder's entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recovery {
    pub(crate) backend: String,
    /// `hang` or `async`.
    pub(crate) wait: String,
    pub(crate) kills: u64,
    pub(crate) inside: u64,
    pub(crate) median_ns: u64,
    pub(crate) worst_ns: u64,
}

/// simplelock-postgres's `pg_bench`: PostgresLock and raw advisory-lock calls, taking turns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Postgres {
    pub(crate) samples: u64,
    pub(crate) roundtrip_ns: u64,
    pub(crate) uncontended: Vec<PostgresMeasure>,
    pub(crate) handoff: Vec<PostgresMeasure>,
}

/// One variant (`ours`, `ours-timed`, `ours-no-token`, `ours-async`, `permits`, `raw`, `raw-token`) of a [`Postgres`] measure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresMeasure {
    pub(crate) variant: String,
    pub(crate) median_ns: u64,
    pub(crate) p99_ns: u64,
}

/// The verdicts of a `stress` run (`--json FILE`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StressSummary {
    pub(crate) runs: Vec<Verdict>,
}

/// The verdict of one run of `stress`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verdict {
    pub(crate) backend: String,
    pub(crate) run: String,
    pub(crate) failures: Vec<String>,
}

/// The one result a measurement printed on its standard output (one line of JSON).
pub(crate) fn parse_bench(stdout: &str) -> Result<BenchResult, String> {
    let mut lines = stdout.lines().filter(|line| !line.trim().is_empty());
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(format!(
            "expected one line of JSON on standard output, got {stdout:?}"
        ));
    };
    serde_json::from_str(line).map_err(|e| format!("reading the result {line:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../simplelock-harness/src/results.sample.json");

    /// The document the harness is tested to write reads back into this mirror.
    #[test]
    fn the_mirror_reads_the_harness_sample() {
        let sample: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        let bench: Vec<BenchResult> = serde_json::from_value(sample["bench"].clone()).unwrap();
        assert_eq!(bench.len(), 5);
        assert!(
            matches!(&bench[0], BenchResult::Handoff(h) if h.median_ns == 20_000 && h.wait == "hang")
        );
        assert!(matches!(&bench[1], BenchResult::Throughput(t) if t.per_second == 500_000.0));
        assert!(matches!(&bench[2], BenchResult::Recovery(r) if r.worst_ns == 8_000_000));
        assert!(matches!(&bench[3], BenchResult::Ticker(t) if t.max_gap_ns == 12_000_000));
        assert!(
            matches!(&bench[4], BenchResult::Postgres(p) if p.roundtrip_ns == 25_000 && p.handoff[0].variant == "raw")
        );
        let stress: StressSummary = serde_json::from_value(sample["stress"].clone()).unwrap();
        assert_eq!(stress.runs[1].failures, ["1 lost updates"]);
        for result in sample["bench"].as_array().unwrap() {
            let line = serde_json::to_string(result).unwrap();
            parse_bench(&format!("{line}\n")).unwrap();
        }
    }

    #[test]
    fn anything_but_one_result_is_refused() {
        let one = r#"{"kind":"recovery","backend":"file","wait":"hang","kills":1,"inside":1,"median_ns":5,"worst_ns":6}"#;
        assert!(parse_bench(one).is_ok());
        assert!(parse_bench("").is_err());
        assert!(parse_bench(&format!("{one}\n{one}\n")).is_err());
        assert!(parse_bench("RESULT recovery backend=file kills=1").is_err());
        let extra = one.replace("\"kills\"", "\"extra\":1,\"kills\"");
        assert!(
            parse_bench(&extra).is_err(),
            "an unknown field must be refused"
        );
    }
}
