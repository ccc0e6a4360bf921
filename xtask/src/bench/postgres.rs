//! The PostgreSQL part of `cargo xtask bench`: `PostgresLock` next to the same advisory-lock
//! calls made raw with the `postgres` crate (simplelock-postgres's `pg_bench` example), and the
//! time the server takes to release a lock after the holder's network is cut (its network-cut
//! test, with our default settings).
//!
//! `cargo xtask bench --only postgres` runs this part alone and writes its section of the
//! README (between the `bench-postgres` markers); the full run writes it too, and its bars into
//! the chart.
//!
//! `pg_bench` prints one typed JSON result (`results::Postgres`, the harness's type); the
//! network-cut times come from the test's own line of text, since a test is no harness program.

use std::fmt::Write as _;
use std::process::Command;

use super::results::{BenchResult, Postgres, Ticker};
use super::{Results, capture_result, run_shown};
use crate::{TaskResult, cargo};

/// What this part measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    /// `pg_bench`'s result.
    pub(crate) bench: Option<Postgres>,
    /// The network-cut runs.
    pub(crate) cuts: Vec<Cut>,
    /// `pg_bench ticker`'s result: issue 12's ticker for `PostgresLock`.
    pub(crate) ticker: Option<Ticker>,
}

/// One run of the network-cut test.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cut {
    /// From the cut to the server's release, in ns.
    pub(crate) released_ns: f64,
    /// From the cut to the holder's learning it, in ns.
    pub(crate) learned_ns: f64,
}

impl Measured {
    /// The median of `variant` in the uncontended (`handoff == false`) or handoff measure.
    fn median(&self, handoff: bool, variant: &str) -> Option<f64> {
        let bench = self.bench.as_ref()?;
        let measures = if handoff {
            &bench.handoff
        } else {
            &bench.uncontended
        };
        measures
            .iter()
            .find(|m| m.variant == variant)
            .map(|m| m.median_ns as f64)
    }
}

/// The README markers of this part's section (inside the whole benchmark section).
pub(crate) const BEGIN: &str = "<!-- bench-postgres:begin -->";
pub(crate) const END: &str = "<!-- bench-postgres:end -->";

/// Runs the measurements against the test server (found or started as `cargo xtask ci` does).
pub(crate) fn run(quick: bool) -> Result<Measured, String> {
    let server = crate::pg::ensure()?;
    let samples = if quick { "100" } else { "500" };
    let mut build = cargo(&[
        "build",
        "--release",
        "-p",
        "simplelock-postgres",
        "--features",
        "tokio",
        "--example",
        "pg_bench",
    ]);
    server.apply(&mut build);
    crate::step(build)?;
    let exe = crate::project_root().join("target/release/examples/pg_bench");
    let mut command = Command::new(&exe);
    command.arg(samples);
    server.apply(&mut command);
    let bench = match capture_result(command)? {
        BenchResult::Postgres(bench) => bench,
        other => {
            return Err(format!(
                "pg_bench printed another kind of result: {other:?}"
            ));
        }
    };
    let mut command = Command::new(&exe);
    command.args(["ticker", if quick { "1000" } else { "3000" }]);
    server.apply(&mut command);
    let ticker = match capture_result(command)? {
        BenchResult::Ticker(ticker) => ticker,
        other => {
            return Err(format!(
                "pg_bench ticker printed another kind of result: {other:?}"
            ));
        }
    };
    let cuts = if quick { 1 } else { 3 };
    let cuts = (0..cuts)
        .map(|_| network_cut(&server))
        .collect::<Result<_, _>>()?;
    Ok(Measured {
        bench: Some(bench),
        cuts,
        ticker: Some(ticker),
    })
}

/// One run of the network-cut test, read from what it prints.
fn network_cut(server: &crate::pg::Server) -> Result<Cut, String> {
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
    let (_, stdout, _) = run_shown(&mut command)?;
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
    Ok(Cut {
        released_ns: released * 1e9,
        learned_ns: learned * 1e9,
    })
}

/// The README section of this part (without the markers).
pub(crate) fn markdown(results: &Measured) -> String {
    let mut md = String::new();
    if results.bench.is_none() && results.cuts.is_empty() {
        return md;
    }
    let rt = results.bench.as_ref().map(|b| b.roundtrip_ns as f64);
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
         `with_fencing_tokens(FencingTokens::Disabled)`; *PostgresLock, async* is `lock_async().await` on a \
         current-thread tokio runtime, released by `unlock().await`.\n\n\
         | measure (median) | PostgresLock | PostgresLock, no token | PostgresLock, async | raw | \
         raw + token | PostgresLock vs raw | goal |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let cell = |handoff: bool, variant: &str| {
        results
            .median(handoff, variant)
            .map_or("—".to_owned(), super::report::duration)
    };
    for (handoff, what) in [
        (false, "uncontended lock + unlock"),
        (true, "handoff: release → the blocked waiter returns"),
    ] {
        let (Some(ours), Some(raw)) = (
            results.median(handoff, "ours"),
            results.median(handoff, "raw"),
        ) else {
            continue;
        };
        let (versus, goal) = if !handoff {
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
            "| {what} | {} | {} | {} | {} | {} | {versus} | {goal} |",
            cell(handoff, "ours"),
            cell(handoff, "ours-no-token"),
            cell(handoff, "ours-async"),
            cell(handoff, "raw"),
            cell(handoff, "raw-token"),
        );
    }
    ratio_notes(results, &mut md);
    ticker_note(results, &mut md);
    cut_note(results, &mut md);
    md
}

/// The paragraph on the ticker, if it was measured.
fn ticker_note(results: &Measured, md: &mut String) {
    let Some(ticker) = &results.ticker else {
        return;
    };
    let (period, gap) = (ticker.period_ns as f64, ticker.max_gap_ns as f64);
    let _ = writeln!(
        md,
        "\nAsync waiters: a ticker task sleeping {} at a time on a current-thread tokio runtime \
         while {} other tasks of that runtime wait in `lock_async().await` for a lock another \
         session holds (one connection per waiter: as many as the server has to spare, not \
         1,000): largest gap {} (goal: the ticker keeps ticking, gap < 10 periods {}).",
        super::report::duration(period),
        ticker.waiters,
        super::report::duration(gap),
        if gap < 10.0 * period { "✅" } else { "❌" }
    );
}

/// The paragraphs on the same-run ratios with their goals: async and timed handoffs vs the
/// blocking one, and the permits' handoff vs the lock's.
fn ratio_notes(results: &Measured, md: &mut String) {
    let cell = |handoff: bool, variant: &str| {
        results
            .median(handoff, variant)
            .map_or("—".to_owned(), super::report::duration)
    };
    if let (Some(blocking), Some(async_)) = (
        results.median(true, "ours"),
        results.median(true, "ours-async"),
    ) {
        let ratio = async_ / blocking;
        let met = if ratio <= 2.0 { "✅" } else { "❌" };
        let _ = writeln!(
            md,
            "\nAsync handoff (an async guard's release → the async waiter returns; the waiter \
             waits in the server's queue, as the blocking one does): {} vs the blocking handoff {}: \
             {ratio:.2}× (goal ≤ 2× {met}).",
            super::report::duration(async_),
            super::report::duration(blocking),
        );
    }
    if let (Some(blocking), Some(timed)) = (
        results.median(true, "ours"),
        results.median(true, "ours-timed"),
    ) {
        let ratio = timed / blocking;
        let met = if ratio <= 1.2 { "✅" } else { "❌" };
        let _ = writeln!(
            md,
            "\nTimed handoff (`timed_lock` with a timeout that does not run out: the waiter waits \
             in the server under `lock_timeout`): {} vs the blocking handoff {}: {ratio:.2}× \
             (goal ≤ 1.2× {met}).",
            super::report::duration(timed),
            super::report::duration(blocking),
        );
    }
    if let (Some(floor), Some(raw), Some(permits), Some(lock)) = (
        results.median(true, "raw-notify"),
        results.median(true, "raw"),
        results.median(true, "permits"),
        results.median(true, "ours"),
    ) {
        let _ = writeln!(
            md,
            "\nThe floor of a wake-up by notification, made raw (one key: a try, a wait for the \
             release's `pg_notify`, a try again; what `PostgresPermits` does for any of N keys): \
             handoff {} = {:.2}× the raw lock handoff and {:.2}× PostgresLock's. \
             `PostgresPermits` = {:.2}× that floor.",
            super::report::duration(floor),
            floor / raw,
            floor / lock,
            permits / floor,
        );
    }
    if let (Some(permits), Some(lock)) = (
        results.median(true, "permits"),
        results.median(true, "ours"),
    ) {
        let ratio = permits / lock;
        let _ = writeln!(
            md,
            "\n`PostgresPermits` (one of 3 permits, each process keeping one more, so that the \
             waiter waits for any of three, woken by the release's notification): \
             lock + unlock {}, handoff {} = {ratio:.2}× PostgresLock's handoff (goal ≤ 2× {}).",
            cell(false, "permits"),
            super::report::duration(permits),
            if ratio <= 2.0 { "✅" } else { "❌" }
        );
    }
}

/// The paragraph on the holder's network cut, if it was measured.
fn cut_note(results: &Measured, md: &mut String) {
    let cuts: Vec<(f64, f64)> = results
        .cuts
        .iter()
        .map(|c| (c.released_ns, c.learned_ns))
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
}

/// Bars for the chart: ours and raw, per measure.
pub(crate) fn bars(results: &Measured) -> Vec<(String, f64, bool)> {
    let mut bars = Vec::new();
    for (handoff, what) in [(false, "lock+unlock"), (true, "handoff")] {
        for imp in [
            "ours",
            "ours-timed",
            "ours-no-token",
            "ours-async",
            "permits",
            "raw",
            "raw-token",
            "raw-notify",
        ] {
            if let Some(ns) = results.median(handoff, imp) {
                let who = match imp {
                    "ours" => "PostgresLock",
                    "ours-timed" => "PostgresLock, timed",
                    "ours-no-token" => "PostgresLock, no token",
                    "ours-async" => "PostgresLock, async",
                    "permits" => "PostgresPermits",
                    "raw" => "raw postgres",
                    "raw-notify" => "raw postgres, woken by NOTIFY",
                    _ => "raw postgres + token",
                };
                let ours = imp.starts_with("ours") || imp == "permits";
                bars.push((format!("{who} {what}"), ns, ours));
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
