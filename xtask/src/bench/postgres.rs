//! The PostgreSQL part of `cargo xtask bench`: `PostgresLock` next to the same advisory-lock
//! calls made raw with the `postgres` crate (simplelock-postgres's `pg_bench` example), and the
//! time the server takes to release a lock after the holder's network is cut (its network-cut
//! test, with our default settings).
//!
//! `cargo xtask bench --only postgres` runs this part alone and writes its section of the
//! README (between the `bench-postgres` markers); the full run writes it too, and its bars into
//! the chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use super::{Results, capture_results};
use crate::{TaskResult, cargo, show};

/// The README markers of this part's section (inside the whole benchmark section).
pub(crate) const BEGIN: &str = "<!-- bench-postgres:begin -->";
pub(crate) const END: &str = "<!-- bench-postgres:end -->";

/// Runs the measurements against the test server (found or started as `cargo xtask ci` does).
pub(crate) fn run(quick: bool) -> Result<Vec<BTreeMap<String, String>>, String> {
    let server = crate::pg::ensure()?;
    let samples = if quick { "100" } else { "500" };
    let mut build = cargo(&[
        "build",
        "--release",
        "-p",
        "simplelock-postgres",
        "--example",
        "pg_bench",
    ]);
    server.apply(&mut build);
    crate::step(build)?;
    let exe = crate::project_root().join("target/release/examples/pg_bench");
    let mut command = Command::new(exe);
    command.arg(samples);
    server.apply(&mut command);
    let mut results = capture_results(command)?;
    let cuts = if quick { 1 } else { 3 };
    for _ in 0..cuts {
        results.push(network_cut(&server)?);
    }
    Ok(results)
}

/// One run of the network-cut test, read from what it prints.
fn network_cut(server: &crate::pg::Server) -> Result<BTreeMap<String, String>, String> {
    let mut command = cargo(&[
        "test",
        "--release",
        "-p",
        "simplelock-postgres",
        "--test",
        "lost",
        "--",
        "--exact",
        "network_cut_releases_within_the_bound_and_the_holder_learns_it",
        "--nocapture",
    ]);
    server.apply(&mut command);
    let shown = show(&command);
    println!("\n==> {shown}");
    let output = command
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    // "network cut: the server released after 3.4s, the holder learned it after Some(3.4s)"
    let line = stdout
        .lines()
        .find(|l| l.starts_with("network cut:"))
        .ok_or("the network-cut test printed no timing")?;
    let secs = |after: &str| -> Option<f64> {
        let rest = &line[line.find(after)? + after.len()..];
        let rest = rest.trim_start_matches("Some(");
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..end].parse().ok()?;
        Some(match &rest[end..] {
            u if u.starts_with("ms") => value / 1e3,
            u if u.starts_with("µs") => value / 1e6,
            _ => value,
        })
    };
    let released = secs("released after ").ok_or("no release time in its output")?;
    let learned = secs("learned it after ").ok_or("no learning time in its output")?;
    let mut fields = BTreeMap::new();
    fields.insert("kind".to_owned(), "pg-cut".to_owned());
    fields.insert("released_ns".to_owned(), format!("{:.0}", released * 1e9));
    fields.insert("learned_ns".to_owned(), format!("{:.0}", learned * 1e9));
    Ok(fields)
}

fn find<'a>(
    results: &'a [BTreeMap<String, String>],
    kind: &str,
    imp: Option<&str>,
) -> Option<&'a BTreeMap<String, String>> {
    results.iter().find(|r| {
        r.get("kind").map(String::as_str) == Some(kind)
            && imp.is_none_or(|i| r.get("impl").map(String::as_str) == Some(i))
    })
}

fn num(r: Option<&BTreeMap<String, String>>, key: &str) -> Option<f64> {
    r?.get(key)?.parse().ok()
}

/// The README section of this part (without the markers).
pub(crate) fn markdown(results: &[BTreeMap<String, String>]) -> String {
    let mut md = String::new();
    if results.is_empty() {
        return md;
    }
    let rt = num(find(results, "pg-roundtrip", None), "median_ns");
    md.push_str(
        "**PostgreSQL**: `PostgresLock` vs the same advisory-lock calls made raw with the \
         `postgres` crate, one connection per client, same run, no TLS, server on this machine",
    );
    if let Some(rt) = rt {
        let _ = write!(md, " (one round trip: {})", super::report::duration(rt));
    }
    md.push_str(
        ". *raw + token* adds to the raw call the transaction-id fencing token PostgresLock \
         takes (its commit waits for a WAL flush); *PostgresLock, no token* is \
         `without_fencing_tokens()`.\n\n\
         | measure (median) | PostgresLock | PostgresLock, no token | raw | raw + token | \
         PostgresLock vs raw | goal |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    let median = |kind: &str, imp: &str| num(find(results, kind, Some(imp)), "median_ns");
    let cell =
        |kind: &str, imp: &str| median(kind, imp).map_or("—".to_owned(), super::report::duration);
    for (kind, what) in [
        ("pg-uncontended", "uncontended lock + unlock"),
        (
            "pg-handoff",
            "handoff: release → the blocked waiter returns",
        ),
    ] {
        let (Some(ours), Some(raw)) = (median(kind, "ours"), median(kind, "raw")) else {
            continue;
        };
        let (versus, goal) = if kind == "pg-uncontended" {
            let extra = (ours - raw) / rt.unwrap_or(f64::NAN);
            let met = if extra <= 1.0 { "✅" } else { "❌" };
            (
                format!("+{extra:.1} round trips"),
                format!("≤ raw + 1 round trip {met}"),
            )
        } else {
            let ratio = ours / raw;
            let met = if ratio <= 1.2 { "✅" } else { "❌" };
            (format!("{ratio:.2}×"), format!("≤ 1.2× {met}"))
        };
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {} | {} | {versus} | {goal} |",
            cell(kind, "ours"),
            cell(kind, "ours-no-token"),
            cell(kind, "raw"),
            cell(kind, "raw-token"),
        );
    }
    let cuts: Vec<(f64, f64)> = results
        .iter()
        .filter(|r| r.get("kind").map(String::as_str) == Some("pg-cut"))
        .filter_map(|r| Some((num(Some(r), "released_ns")?, num(Some(r), "learned_ns")?)))
        .collect();
    if let Some(worst) = cuts.iter().map(|c| c.0).reduce(f64::max) {
        let learned = cuts.iter().map(|c| c.1).fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "\nThe holder's network cut (iptables drops its packets both ways), our default \
             settings: the server released the lock after {:.1} s and the holder was told after \
             {:.1} s (worst of {} run{}; goal ≤ 5 s {}). With the server's default keepalive \
             settings the lock was still held after 60 s.",
            worst / 1e9,
            learned / 1e9,
            cuts.len(),
            if cuts.len() == 1 { "" } else { "s" },
            if worst <= 5e9 { "✅" } else { "❌" }
        );
    }
    md
}

/// Bars for the chart: ours and raw, per measure.
pub(crate) fn bars(results: &[BTreeMap<String, String>]) -> Vec<(String, f64, bool)> {
    let mut bars = Vec::new();
    for (kind, what) in [("pg-uncontended", "lock+unlock"), ("pg-handoff", "handoff")] {
        for imp in ["ours", "ours-no-token", "raw", "raw-token"] {
            if let Some(ns) = num(find(results, kind, Some(imp)), "median_ns") {
                let who = match imp {
                    "ours" => "PostgresLock",
                    "ours-no-token" => "PostgresLock, no token",
                    "raw" => "raw postgres",
                    _ => "raw postgres + token",
                };
                bars.push((format!("{who} {what}"), ns, imp.starts_with("ours")));
            }
        }
    }
    bars
}

/// `cargo xtask bench --only postgres`: this part alone, written into its README section.
pub(crate) fn only(quick: bool) -> TaskResult {
    let results = Results {
        postgres: run(quick)?,
        ..Results::default()
    };
    let md = markdown(&results.postgres);
    println!("\n{md}");
    let readme = crate::project_root().join("README.md");
    let text = std::fs::read_to_string(&readme).map_err(|e| format!("reading README.md: {e}"))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("README.md lacks the {BEGIN} / {END} markers"));
    };
    let updated = format!("{}{BEGIN}\n{md}{}", &text[..begin], &text[end..]);
    std::fs::write(&readme, updated).map_err(|e| format!("writing README.md: {e}"))?;
    println!(
        "bench: wrote the PostgreSQL results into README.md (the chart is drawn by the full run)"
    );
    Ok(())
}
