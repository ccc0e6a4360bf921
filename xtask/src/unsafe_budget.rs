//! The `unsafe` budget of the library code: at most [`BUDGET`] `unsafe` blocks in what one
//! platform's build compiles, each with a `// SAFETY:` comment just above it. Counted in the
//! source text (line comments and doc comments stripped), which is what a reviewer reads.
//!
//! The fences are module-level (`#![allow(unsafe_code)]` at the top of the module that holds
//! the blocks); an item-level `#[allow(unsafe_code)]` fails the check.
//!
//! A file under a `windows` path is compiled only for Windows, every other file for Linux
//! (the other Unix systems compile a subset of the Linux files), so each file counts toward one
//! of the two builds. `unsafe impl` lines (`Send`/`Sync` promises) are listed, not counted.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{TaskResult, project_root};

/// The most `unsafe` blocks one platform's build of the library code may hold. 13 since the
/// io_uring wait of simplelock-sema: tokio 1.54 deprecated its safe `AsyncFd::new` as unsound
/// and left `AsyncFd::register_with_interest`, `unsafe`, as the only way to have its reactor
/// watch a descriptor, so each crate that does (simplelock-file, simplelock-sema) has one.
const BUDGET: usize = 13;

/// The library code: every crate a user links, and the command-line tool.
const LIBRARY_SOURCES: &[&str] = &[
    "simplelock-core/src",
    "simplelock-fake/src",
    "simplelock-file/src",
    "simplelock-sema/src",
    "simplelock-postgres/src",
    "simplelock/src",
];

/// How many lines above an `unsafe` block its `// SAFETY:` comment may start.
const SAFETY_REACH: usize = 8;

/// One `unsafe` block found in the source.
struct Block {
    file: PathBuf,
    line: usize,
    windows: bool,
    argued: bool,
}

pub(crate) fn check() -> TaskResult {
    println!("\n==> unsafe budget: at most {BUDGET} blocks per platform in the library code");
    let root = project_root();
    let mut blocks = Vec::new();
    let mut failures = Vec::new();
    for dir in LIBRARY_SOURCES {
        for file in rust_files(&root.join(dir))? {
            blocks.extend(blocks_in(&file, &root)?);
            failures.extend(item_level_fences(&file, &root)?);
        }
    }
    for (platform, windows) in [("Linux", false), ("Windows", true)] {
        let of_platform: Vec<&Block> = blocks.iter().filter(|b| b.windows == windows).collect();
        println!("    {platform}: {} unsafe blocks", of_platform.len());
        for block in &of_platform {
            println!("      {}:{}", block.file.display(), block.line);
        }
        if of_platform.len() > BUDGET {
            failures.push(format!(
                "{platform}: {} unsafe blocks in the library code, over the budget of {BUDGET}",
                of_platform.len()
            ));
        }
    }
    for block in blocks.iter().filter(|b| !b.argued) {
        failures.push(format!(
            "{}:{}: an unsafe block without a `// SAFETY:` comment in the {SAFETY_REACH} lines above",
            block.file.display(),
            block.line
        ));
    }
    if failures.is_empty() {
        println!("<== ok");
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The `.rs` files below `dir`, sorted.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The `unsafe` blocks of `file`, named relative to `root`.
fn blocks_in(file: &Path, root: &Path) -> Result<Vec<Block>, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let relative = file.strip_prefix(root).unwrap_or(file).to_path_buf();
    let windows = relative.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|name| name.trim_end_matches(".rs") == "windows")
    });
    let mut blocks = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for _ in code.match_indices("unsafe").filter(|(i, _)| {
            let rest = code[i + "unsafe".len()..].trim_start();
            let before = code[..*i].chars().next_back();
            rest.starts_with('{') && !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        }) {
            let from = at.saturating_sub(SAFETY_REACH);
            let argued = lines[from..=at].iter().any(|l| l.contains("SAFETY:"));
            blocks.push(Block {
                file: relative.clone(),
                line: at + 1,
                windows,
                argued,
            });
        }
    }
    Ok(blocks)
}

/// The item-level `#[allow(unsafe_code)]` fences of `file`: each one a failure.
fn item_level_fences(file: &Path, root: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let relative = file.strip_prefix(root).unwrap_or(file);
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("").trim_start();
            code.starts_with("#[allow(unsafe_code") || code.starts_with("#[expect(unsafe_code")
        })
        .map(|(at, _)| {
            format!(
                "{}:{}: an item-level unsafe_code fence; put `#![allow(unsafe_code)]` on the module",
                relative.display(),
                at + 1
            )
        })
        .collect())
}
