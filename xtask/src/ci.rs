//! `cargo xtask ci`: everything CI checks, in the order a failure is cheapest to see: format,
//! lints, the unsafe budget, tests (every crate with all features, then the facade with each feature combination),
//! the 0.4 program against the real simplelock 0.4.1, docs, a short multi-process stress run, then
//! the other platforms: `cargo check` for macOS and FreeBSD, the Windows tests under Wine.

use std::env;
use std::path::PathBuf;

use cargo_metadata::MetadataCommand;

use crate::{TaskResult, cargo, project_root, step};

/// The facade, whose features select the backends.
const FACADE: &str = "simplelock";

pub(crate) fn main() -> TaskResult {
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
    crate::unsafe_budget::check()?;
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
    program_0_4_compiles_against_0_4_1()?;
    let mut doc = cargo(&["doc", "--workspace", "--all-features", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    step(doc)?;
    // Real processes and a SIGKILL storm against each backend, sized to take seconds.
    crate::stress::main(&["--quick".to_owned()])?;
    // The other platforms: macOS and FreeBSD compiled, Windows tested under Wine.
    crate::cross::check_other_targets()?;
    crate::cross::windows()?;
    println!("\nci: all checks passed");
    Ok(())
}

/// The crate outside the workspace that compiles the 0.4 program of `compat-0-4` (which the
/// workspace tests ran through `simplelock::compat_0_4`) against the real simplelock 0.4.1.
const AGAINST_0_4_1: &str = "compat-0-4/against-0.4.1";

/// The 0.4 program must compile against 0.4.1 itself, so that it checks 0.4.1's API and not our
/// idea of it. `cargo check` with the crate's own lock file and target folder: seconds.
fn program_0_4_compiles_against_0_4_1() -> TaskResult {
    let manifest = format!("{AGAINST_0_4_1}/Cargo.toml");
    let target = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("against-0.4.1");
    let target = target.to_string_lossy();
    step(cargo(&[
        "check",
        "--locked",
        "--manifest-path",
        &manifest,
        "--target-dir",
        &target,
    ]))
    .map_err(|e| {
        format!(
            "{e}\n(it downloads simplelock 0.4.1 and its dependencies from crates.io on first use)"
        )
    })
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

/// The features of the facade, from `cargo metadata` (all but `default`).
fn facade_features() -> Result<Vec<String>, String> {
    let metadata = MetadataCommand::new()
        .manifest_path(project_root().join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let facade = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == FACADE)
        .ok_or_else(|| format!("cargo metadata lists no package {FACADE:?}"))?;
    Ok(facade
        .features
        .keys()
        .filter(|name| *name != "default")
        .cloned()
        .collect())
}
