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
    judge(&read?)
}

/// Prints the verdicts; fails if there are none or any names a failure.
fn judge(summary: &StressSummary) -> TaskResult {
    if summary.runs.is_empty() {
        return Err("the stress run judged no run".to_owned());
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
        let verdict = |failures: &[&str]| Verdict {
            backend: "sema".into(),
            run: "kill storm".into(),
            failures: failures.iter().map(|f| f.to_string()).collect(),
        };
        let ok = StressSummary {
            runs: vec![verdict(&[]), verdict(&[])],
        };
        assert!(judge(&ok).is_ok());
        let bad = StressSummary {
            runs: vec![verdict(&[]), verdict(&["2 overlapping critical sections"])],
        };
        let error = judge(&bad).unwrap_err();
        assert!(error.contains("sema kill storm: 2 overlapping"), "{error}");
        assert!(judge(&StressSummary::default()).is_err());
    }
}
