//! The measurements' standard output is exactly one JSON result, whatever their peers print:
//! what `cargo xtask bench` relies on. Tiny runs of the real program, not timing assertions.

use std::process::Command;

use simplelock_harness::results::BenchResult;

/// Runs `simplelock-harness ARGS` and reads its one result.
fn measure(args: &[&str]) -> BenchResult {
    let output = Command::new(env!("CARGO_BIN_EXE_simplelock-harness"))
        .args(args)
        .output()
        .expect("starting simplelock-harness");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{args:?} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} printed more than its result: {stdout}"
    );
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

#[test]
fn each_measurement_prints_one_result_of_its_kind() {
    match measure(&["bench-handoff", "sema", "timed", "4"]) {
        BenchResult::Handoff(h) => {
            assert_eq!((h.backend.as_str(), h.wait.as_str()), ("sema", "timed"));
            assert!(h.samples > 0 && h.median_ns <= h.p99_ns, "{h:?}");
        }
        other => panic!("not a handoff: {other:?}"),
    }
    match measure(&["bench-throughput", "file", "2", "50"]) {
        BenchResult::Throughput(t) => {
            assert_eq!((t.backend.as_str(), t.procs), ("file", 2));
            assert!(t.acquisitions > 0, "{t:?}");
        }
        other => panic!("not a throughput: {other:?}"),
    }
    match measure(&["bench-recovery", "file", "2"]) {
        BenchResult::Recovery(r) => {
            assert_eq!((r.backend.as_str(), r.kills), ("file", 2));
            assert!(r.inside > 0 && r.median_ns <= r.worst_ns, "{r:?}");
        }
        other => panic!("not a recovery: {other:?}"),
    }
}

#[test]
fn bad_arguments_are_refused_by_clap_naming_them() {
    let output = Command::new(env!("CARGO_BIN_EXE_simplelock-harness"))
        .args(["bench-handoff", "sema", "sideways", "4"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sideways"), "{stderr}");
}
