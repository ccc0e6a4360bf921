//! `cargo xtask stress`: the multi-process counter run and the kill storm, for any backend, and
//! each backend's adversary: for the file backend a kill storm while another process deletes and
//! re-creates the lock file, for the sema backend one with its object zeroed, attacked by another
//! user and squatted.
//!
//! The work is done by `simplelock-harness stress`, built in release mode; this task builds it,
//! passes the options through, and judges the verdicts it writes as JSON (`--json`): the run
//! fails if the harness failed, wrote no verdicts, or any verdict names a failure.

use std::fs;
use std::process::Command;

use crate::bench::results::StressSummary;
use crate::{TaskResult, harness_program, step};

/// What `--quick` stands for: the short run CI does.
const QUICK: &[&str] = &["--iterations", "2000", "--kills", "25"];

pub(crate) fn main(args: &[String]) -> TaskResult {
    let mut pass: Vec<String> = Vec::new();
    for arg in args {
        if arg == "--quick" {
            pass.extend(QUICK.iter().map(|s| s.to_string()));
        } else {
            pass.push(arg.clone());
        }
    }
    let exe = harness_program()?;
    let verdicts = exe.with_file_name(format!("stress-verdicts-{}.json", std::process::id()));
    let _ = fs::remove_file(&verdicts);
    let mut command = Command::new(exe);
    command
        .arg("stress")
        .args(pass)
        .arg("--json")
        .arg(&verdicts);
    let ran = step(command);
    let read = fs::read_to_string(&verdicts)
        .map_err(|e| format!("reading the verdicts {}: {e}", verdicts.display()))
        .and_then(|text| {
            serde_json::from_str::<StressSummary>(&text)
                .map_err(|e| format!("reading the verdicts {}: {e}", verdicts.display()))
        });
    let _ = fs::remove_file(&verdicts);
    // A harness that failed before writing its verdicts says why itself.
    ran?;
    let every_backend = !args.iter().any(|arg| arg.starts_with("--backend"));
    judge(&read?, every_backend)
}

/// The runs each backend must have had: the counter run and the kill storm, and for the two
/// backends of the library their adversary.
fn expected_runs(backend: &str) -> &'static [&'static str] {
    match backend {
        "file" => &[
            "counter run",
            "kill storm",
            "kill storm with the file replaced",
        ],
        "sema" => &["counter run", "kill storm", "adversary"],
        _ => &["counter run", "kill storm"],
    }
}

/// Prints the verdicts; fails if any names a failure, or a run is missing (with
/// `every_backend`, also a backend of the library).
fn judge(summary: &StressSummary, every_backend: bool) -> TaskResult {
    if summary.runs.is_empty() {
        return Err("the stress run judged no run".to_owned());
    }
    let mut backends: Vec<&str> = summary.runs.iter().map(|v| v.backend.as_str()).collect();
    if every_backend {
        backends.extend(["file", "sema"]);
    }
    for backend in backends {
        for run in expected_runs(backend) {
            if !summary
                .runs
                .iter()
                .any(|v| v.backend == backend && v.run == *run)
            {
                return Err(format!("the stress run did not judge the {backend} {run}"));
            }
        }
    }
    for verdict in &summary.runs {
        let outcome = if verdict.failures.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", verdict.failures.join(", "))
        };
        println!("stress: {} {}: {outcome}", verdict.backend, verdict.run);
    }
    let failed: Vec<String> = summary
        .runs
        .iter()
        .flat_map(|v| {
            v.failures
                .iter()
                .map(move |f| format!("{} {}: {f}", v.backend, v.run))
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("stress: {}", failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::Verdict;

    #[test]
    fn a_failure_in_any_verdict_fails_the_task() {
        let runs = ["counter run", "kill storm", "adversary"];
        let next = std::cell::Cell::new(0);
        let verdict = |failures: &[&str]| {
            let run = runs[next.get() % 3];
            next.set(next.get() + 1);
            Verdict {
                backend: "sema".into(),
                run: run.into(),
                failures: failures.iter().map(|f| f.to_string()).collect(),
            }
        };
        let ok = StressSummary {
            runs: vec![verdict(&[]), verdict(&[]), verdict(&[])],
        };
        assert!(judge(&ok, false).is_ok());
        let bad = StressSummary {
            runs: vec![
                verdict(&[]),
                verdict(&["2 overlapping critical sections"]),
                verdict(&[]),
            ],
        };
        let error = judge(&bad, false).unwrap_err();
        assert!(error.contains("sema kill storm: 2 overlapping"), "{error}");
        assert!(judge(&StressSummary::default(), false).is_err());
    }

    #[test]
    fn a_missing_run_fails_the_task() {
        let run = |backend: &str, run: &str| Verdict {
            backend: backend.into(),
            run: run.into(),
            failures: vec![],
        };
        let sema = || {
            ["counter run", "kill storm", "adversary"]
                .map(|r| run("sema", r))
                .to_vec()
        };
        let only_sema = StressSummary { runs: sema() };
        assert!(judge(&only_sema, false).is_ok());
        let error = judge(&only_sema, true).unwrap_err();
        assert!(error.contains("file counter run"), "{error}");
        let mut runs = sema();
        runs.pop();
        let error = judge(&StressSummary { runs }, false).unwrap_err();
        assert!(error.contains("sema adversary"), "{error}");
    }
}
