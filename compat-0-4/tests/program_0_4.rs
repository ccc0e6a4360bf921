//! The 0.4 program (`program/v0_4.rs`, compiled unchanged against the real simplelock 0.4.1 by
//! `cargo xtask ci`) run on this workspace through its one changed line, the compat import.

/// The 0.4 program after its one changed line.
pub mod v0_4 {
    use simplelock::compat_0_4::*;
    include!("../program/v0_4.rs");
}

mod common;

use std::path::PathBuf;

use common::TempName;

#[test]
fn readme_example() {
    v0_4::readme_example().unwrap();
}

#[test]
fn default_lock_and_lock_until_finished() {
    v0_4::default_lock_and_lock_until_finished(&TempName::new("default")).unwrap();
}

#[test]
fn lock_until_finished_releases_on_panic() {
    v0_4::lock_until_finished_releases_on_panic(&TempName::new("panic")).unwrap();
}

#[test]
fn builder() {
    v0_4::builder(&TempName::new("builder")).unwrap();
}

#[test]
fn hand_rolled_backend() {
    v0_4::hand_rolled_backend().unwrap();
}

#[test]
fn hand_rolled_lock() {
    v0_4::hand_rolled_lock().unwrap();
}

/// Deletes the file when dropped, also when the test fails.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_lock() {
    let name = TempName::new("file");
    let file = TempFile(std::env::temp_dir().join(format!("{name}.lock")));
    v0_4::file_lock(&file.0).unwrap();
}

#[test]
fn semaphore_lock() {
    v0_4::semaphore_lock(&TempName::new("sema")).unwrap();
}

#[test]
fn fake_lock() {
    v0_4::fake_lock().unwrap();
}

#[test]
fn errors() {
    v0_4::errors();
}
