//! Names: the lock folder and `<name>.lock`; arbitrary names never panic, never leave the
//! folder, and are refused with the broken rule.
// Unix: the helpers (tests/common) and the cases use modes, users, fork or signals; Windows
// runs tests/windows.rs and the conformance suite.
#![cfg(unix)]

mod common;

use std::path::Path;

use common::{WORK_DIR, command, role, say, scratch};
use proptest::prelude::*;
use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_file::{FileLock, lock_dir};

fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['/', '\\', '\0'])
        && name != "."
        && name != ".."
        && name.len() <= 250
}

fn check_name(dir: &Path, name: &str) {
    match FileLock::options().with_folder(dir).named(name) {
        Ok(lock) => {
            assert!(is_valid(name), "{name:?} was accepted");
            let path = lock.path();
            assert_eq!(path.parent(), Some(dir), "{name:?} left the folder");
            assert_eq!(
                path.file_name().unwrap().to_str().unwrap(),
                format!("{name}.lock")
            );
            assert!(path.is_file());
        }
        Err(SimpleLockError::InvalidName { name: given, .. }) => {
            assert!(!is_valid(name), "{name:?} was refused");
            assert_eq!(given, name);
        }
        Err(other) => panic!("{name:?}: unexpected {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_string_is_a_name_in_the_folder_or_refused(name in any::<String>()) {
        let dir = common::run_dir().join("proptest-names");
        std::fs::create_dir_all(&dir).unwrap();
        check_name(&dir, &name);
    }

    #[test]
    fn path_like_names_are_refused(
        parts in prop::collection::vec("[a-z.]{0,3}", 1..4),
        sep in prop::sample::select(vec!["/", "\\", "\0"]),
    ) {
        let dir = common::run_dir().join("proptest-paths");
        std::fs::create_dir_all(&dir).unwrap();
        let name = parts.join(sep);
        check_name(&dir, &name);
        check_name(&dir, &format!("..{sep}{name}"));
    }
}

#[test]
fn edge_names() {
    let dir = scratch("edge-names");
    for name in [
        "", ".", "..", "a/b", "/", "a\\b", "\0", "../x", "ok", ".x", "...", " ",
    ] {
        check_name(&dir, name);
    }
    check_name(&dir, &"n".repeat(250));
    check_name(&dir, &"n".repeat(251));
    check_name(&dir, &"ß".repeat(125)); // 250 bytes
    check_name(&dir, &"ß".repeat(126)); // 252 bytes
}

#[test]
fn named_locks_live_in_the_lock_folder() {
    const TEST: &str = "named_locks_live_in_the_lock_folder";
    if role().as_deref() == Some("named") {
        // SIMPLELOCK_DIR was set by the parent.
        let dir = lock_dir().unwrap();
        assert_eq!(
            dir,
            Path::new(&std::env::var_os(WORK_DIR).unwrap()).join("locks")
        );
        let mut a = FileLock::named("deploy").unwrap();
        let mut b = FileLock::named("deploy").unwrap();
        assert_eq!(a.path(), dir.join("deploy.lock"));
        a.try_lock().unwrap();
        assert!(matches!(
            b.try_lock(),
            Err(SimpleLockError::AlreadyLocked { .. })
        ));
        assert!(matches!(
            FileLock::named("../escape"),
            Err(SimpleLockError::InvalidName { .. })
        ));
        say("ok");
        return;
    }
    let dir = scratch("named");
    let mut named = common::Child::spawn(
        command(TEST, "named")
            .env(WORK_DIR, &dir)
            .env("SIMPLELOCK_DIR", dir.join("locks")),
    );
    assert_eq!(named.next(), "ok");
    named.wait_success();
    assert!(dir.join("locks/deploy.lock").is_file());
    assert!(!dir.join("escape.lock").exists());
}
