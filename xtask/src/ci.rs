//! `cargo xtask ci`: everything CI checks, in the order a failure is cheapest to see: format,
//! lints, tests (every crate with all features, then the facade with each feature combination),
//! docs, and a short multi-process stress run.

use std::fs;

use crate::{TaskResult, cargo, project_root, step};

/// The facade, whose features select the backends.
const FACADE: &str = "simplelock";

pub(crate) fn main(args: &[String]) -> TaskResult {
    if let Some(arg) = args.first() {
        return Err(format!("`ci` takes no arguments, got {arg:?}"));
    }
    step(cargo(&["fmt", "--all", "--", "--check"]))?;
    step(cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    core_has_no_dependencies()?;
    // The server the PostgreSQL backend's tests use (a throwaway one if none answers); it is
    // stopped when `postgres` goes out of scope.
    let postgres = crate::pg::ensure()?;
    let test = |args: &[&str]| {
        let mut command = cargo(args);
        postgres.apply(&mut command);
        step(command)
    };
    // Every crate with all its features: unit, integration and doc-tests.
    test(&["test", "--workspace", "--all-features"])?;
    // The facade alone with each feature combination CI promises: none, each alone.
    let features = facade_features()?;
    test(&["test", "-p", FACADE, "--no-default-features"])?;
    for feature in &features {
        test(&[
            "test",
            "-p",
            FACADE,
            "--no-default-features",
            "--features",
            feature,
        ])?;
    }
    let mut doc = cargo(&["doc", "--workspace", "--all-features", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    step(doc)?;
    // Real processes and a SIGKILL storm against each backend, sized to take seconds.
    crate::stress::main(&["--quick".to_owned()])?;
    println!("\nci: all checks passed");
    Ok(())
}

/// The core promises no dependencies at all; `cargo tree` shows what it really pulls in.
fn core_has_no_dependencies() -> TaskResult {
    let shown = "cargo tree -p simplelock-core -e normal,build --prefix none";
    println!("\n==> {shown}");
    let output = cargo(&[
        "tree",
        "-p",
        "simplelock-core",
        "-e",
        "normal,build",
        "--prefix",
        "none",
    ])
    .output()
    .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(format!("`{shown}` failed ({})", output.status));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    match crates.as_slice() {
        [core] => println!("<== ok: {core}"),
        [] => return Err(format!("`{shown}` printed nothing")),
        [_, dependencies @ ..] => {
            return Err(format!(
                "simplelock-core must have no dependencies, but pulls in:\n{}",
                dependencies.join("\n")
            ));
        }
    }
    Ok(())
}

/// The features of the facade, read from its manifest (all but `default`).
fn facade_features() -> Result<Vec<String>, String> {
    let path = project_root().join(FACADE).join("Cargo.toml");
    let manifest =
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            let name = name.trim();
            if !name.is_empty() && name != "default" {
                features.push(name.to_owned());
            }
        }
    }
    Ok(features)
}
