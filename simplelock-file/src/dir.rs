//! The lock folder ([`lock_dir`](crate::lock_dir)) and the rules for lock names.

#[cfg(unix)]
use std::ffi::OsString;
#[cfg(unix)]
use std::fs::{self, DirBuilder};
#[cfg(unix)]
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
#[cfg(unix)]
use std::path::{Path, PathBuf};

use simplelock_core::{SimpleLockError, SimpleLockResult};

#[cfg(windows)]
pub(crate) use self::windows::{check_existing_dir, chosen_dir, lock_dir_with};
#[cfg(unix)]
use crate::sys;

/// The environment variable that overrides the lock folder.
pub(crate) const ENV_DIR: &str = "SIMPLELOCK_DIR";

/// What [`lock_file_name`] appends to a name.
const SUFFIX: &str = ".lock";
/// The longest file name most file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The system folders a per-user lock folder goes into, in order of preference: the first that
/// is a sticky, world-writable folder is used. `/run/lock` is the FHS place for lock files, the
/// same for every process of the machine (systemd's `PrivateTmp=` does not replace it, a login
/// session is not needed for it, unlike `/run/user/UID`); `/dev/shm` is there on every Linux
/// system, where a distribution keeps `/run/lock` for root.
#[cfg(unix)]
pub(crate) const SYSTEM_BASES: [&str; 2] = ["/run/lock", "/dev/shm"];

/// Where named locks live, and how that folder is checked.
#[cfg(unix)]
#[derive(Debug, Clone, PartialEq, Eq)]
enum Folder {
    /// `$SIMPLELOCK_DIR`: the user's choice, trusted as it is.
    Chosen(PathBuf),
    /// `simplelock-UID` in a folder everybody may write to: it must be ours alone.
    Private(PathBuf),
}

#[cfg(unix)]
impl Folder {
    fn path(&self) -> &Path {
        match self {
            Folder::Chosen(path) | Folder::Private(path) => path,
        }
    }
}

/// The lock folder the rules give, from the environment (only `SIMPLELOCK_DIR` counts), the
/// system folders `bases` and the temporary folder; nothing is created nor checked.
#[cfg(unix)]
fn choose(env: impl Fn(&str) -> Option<OsString>, bases: &[&Path], temp_dir: &Path) -> Folder {
    if let Some(dir) = env(ENV_DIR).filter(|dir| !dir.is_empty()) {
        return Folder::Chosen(PathBuf::from(dir));
    }
    let name = format!("simplelock-{}", sys::euid());
    let shared = bases.iter().find(|base| {
        fs::metadata(base).is_ok_and(|meta| meta.is_dir() && meta.mode() & 0o1777 == 0o1777)
    });
    Folder::Private(shared.map_or(temp_dir, |base| base).join(name))
}

/// The lock folder, without creating or checking anything.
#[cfg(unix)]
pub(crate) fn chosen_dir(env: impl Fn(&str) -> Option<OsString>, temp_dir: &Path) -> PathBuf {
    choose(env, &system_bases(), temp_dir).path().to_owned()
}

#[cfg(unix)]
fn system_bases() -> [&'static Path; 2] {
    SYSTEM_BASES.map(Path::new)
}

/// [`crate::lock_dir`] with the environment and the temporary folder given, so tests need not
/// change the process environment.
#[cfg(unix)]
pub(crate) fn lock_dir_with(
    env: impl Fn(&str) -> Option<OsString>,
    temp_dir: &Path,
) -> SimpleLockResult<PathBuf> {
    lock_dir_in(env, &system_bases(), temp_dir)
}

#[cfg(unix)]
fn lock_dir_in(
    env: impl Fn(&str) -> Option<OsString>,
    bases: &[&Path],
    temp_dir: &Path,
) -> SimpleLockResult<PathBuf> {
    match choose(env, bases, temp_dir) {
        Folder::Chosen(dir) => {
            ensure_chosen_dir(&dir)?;
            Ok(dir)
        }
        Folder::Private(dir) => {
            ensure_private_dir(&dir)?;
            Ok(dir)
        }
    }
}

/// The checks of an existing lock folder, without creating it (for looking at a lock).
#[cfg(unix)]
pub(crate) fn check_existing_dir(
    env: impl Fn(&str) -> Option<OsString>,
    temp_dir: &Path,
) -> SimpleLockResult<()> {
    match choose(env, &system_bases(), temp_dir) {
        Folder::Chosen(_) => Ok(()),
        Folder::Private(dir) => check_private_dir(&dir),
    }
}

/// A folder the user chose with `SIMPLELOCK_DIR`: created (mode 0700) if missing, and otherwise
/// trusted as it is: it may be a group-shared folder for locks between users, such as
/// `/var/lock/myapp` with mode 2770.
#[cfg(unix)]
fn ensure_chosen_dir(dir: &Path) -> SimpleLockResult<()> {
    let name = dir.display().to_string();
    let created = DirBuilder::new().recursive(true).mode(0o700).create(dir);
    match (fs::metadata(dir), created) {
        (Ok(meta), _) if meta.is_dir() => Ok(()),
        (Ok(_), _) => Err(denied(
            &name,
            "SIMPLELOCK_DIR names something that is not a folder",
        )),
        (Err(_), Err(err)) | (Err(err), Ok(())) => Err(SimpleLockError::from_io(
            name,
            "creating the lock folder (SIMPLELOCK_DIR)",
            err,
        )),
    }
}

/// A per-user folder in a place others can write to (`/tmp`): created with mode 0700 if
/// missing; if it exists, it must be a real folder (not a symbolic link), owned by this user,
/// and writable by nobody else — otherwise another user could have planted it to read or
/// replace our lock files.
#[cfg(unix)]
fn ensure_private_dir(dir: &Path) -> SimpleLockResult<()> {
    let name = dir.display().to_string();
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have taken bits from 0700 that we need ourselves.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|err| SimpleLockError::from_io(&name, "setting mode 0700", err))?;
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(SimpleLockError::from_io(
                name,
                "creating the lock folder",
                err,
            ));
        }
    }
    check_private_dir(dir)
}

/// The checks of [`ensure_private_dir`] on a folder that exists.
#[cfg(unix)]
fn check_private_dir(dir: &Path) -> SimpleLockResult<()> {
    let name = dir.display().to_string();
    let meta = fs::symlink_metadata(dir)
        .map_err(|err| SimpleLockError::from_io(&name, "checking the lock folder", err))?;
    let me = sys::euid();
    if meta.file_type().is_symlink() {
        Err(denied(&name, "the lock folder is a symbolic link"))
    } else if !meta.is_dir() {
        Err(denied(&name, "the lock folder is not a folder"))
    } else if meta.uid() != me {
        Err(denied(
            &name,
            &format!(
                "the lock folder belongs to uid {}, not to this user (uid {me})",
                meta.uid()
            ),
        ))
    } else if meta.mode() & 0o022 != 0 {
        Err(denied(
            &name,
            &format!(
                "the lock folder is writable by other users (mode {:o})",
                meta.mode() & 0o7777
            ),
        ))
    } else {
        Ok(())
    }
}

#[cfg(unix)]
fn denied(name: &str, why: &str) -> SimpleLockError {
    SimpleLockError::permission_denied(
        name,
        Some(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{why}; set {ENV_DIR} to a folder of your own to keep named locks there"),
        )),
    )
}

/// The file name for the lock `name`: `<name>.lock`, or the rule the name breaks.
pub(crate) fn lock_file_name(name: &str) -> SimpleLockResult<String> {
    let reason = if name.is_empty() {
        "the name is empty".to_owned()
    } else if name.contains('\0') {
        "the name contains a NUL byte".to_owned()
    } else if name.contains('/') {
        "the name contains '/', a path separator".to_owned()
    } else if name.contains('\\') {
        "the name contains '\\', a path separator on Windows".to_owned()
    } else if name == "." || name == ".." {
        format!("the name {name:?} names a folder")
    } else if name.len() + SUFFIX.len() > NAME_MAX {
        format!(
            "the name is {} bytes long, at most {} are allowed (the file name \"<name>{SUFFIX}\" \
             must fit in {NAME_MAX} bytes)",
            name.len(),
            NAME_MAX - SUFFIX.len()
        )
    } else {
        return Ok(format!("{name}{SUFFIX}"));
    };
    Err(SimpleLockError::invalid_name(name, reason))
}

#[cfg(windows)]
mod windows;

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "simplelock-file-unit-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        DirBuilder::new().mode(0o755).create(&dir).unwrap();
        dir
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a Path)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_os_str().to_owned())
        }
    }

    fn reason(err: &SimpleLockError) -> String {
        match err {
            SimpleLockError::InvalidName { reason, .. } => reason.clone(),
            other => panic!("expected InvalidName, got {other:?}"),
        }
    }

    #[test]
    fn valid_names_get_the_lock_suffix() {
        assert_eq!(lock_file_name("deploy").unwrap(), "deploy.lock");
        assert_eq!(lock_file_name(".hidden").unwrap(), ".hidden.lock");
        assert_eq!(lock_file_name("...").unwrap(), "....lock");
        assert_eq!(lock_file_name("ünïcödé ✓").unwrap(), "ünïcödé ✓.lock");
        let longest = "x".repeat(250);
        assert_eq!(lock_file_name(&longest).unwrap().len(), 255);
    }

    #[test]
    fn invalid_names_say_which_rule_they_break() {
        for (name, rule) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            ("a/b", "'/'"),
            ("/abs", "'/'"),
            ("..\\x", "Windows"),
            (".", "folder"),
            ("..", "folder"),
        ] {
            let err = lock_file_name(name).unwrap_err();
            assert!(reason(&err).contains(rule), "{name:?}: {err}");
            assert_eq!(err.name(), Some(name));
        }
        let err = lock_file_name(&"é".repeat(126)).unwrap_err(); // 252 bytes, 126 chars
        assert!(reason(&err).contains("252 bytes"), "{err}");
    }

    #[test]
    fn override_is_used_and_created_with_parents() {
        let base = scratch("override");
        let chosen = base.join("a/b");
        let dir = lock_dir_with(env(&[(ENV_DIR, &chosen)]), &base).unwrap();
        assert_eq!(dir, chosen);
        assert!(chosen.is_dir());
        assert_eq!(fs::metadata(&chosen).unwrap().mode() & 0o777, 0o700);
        // An existing group-shared folder is accepted as the user's choice.
        let shared = base.join("shared");
        DirBuilder::new().mode(0o777).create(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o2770)).unwrap();
        assert_eq!(
            lock_dir_with(env(&[(ENV_DIR, &shared)]), &base).unwrap(),
            shared
        );
        // A file is refused.
        let file = base.join("file");
        fs::write(&file, b"").unwrap();
        let err = lock_dir_with(env(&[(ENV_DIR, &file)]), &base).unwrap_err();
        assert!(
            matches!(err, SimpleLockError::PermissionDenied { .. }),
            "{err:?}"
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn the_first_sticky_world_writable_base_is_used_and_the_environment_is_not() {
        let base = scratch("bases");
        let (closed, sticky, temp) = (base.join("closed"), base.join("sticky"), base.join("tmp"));
        for dir in [&closed, &sticky, &temp] {
            DirBuilder::new().mode(0o755).create(dir).unwrap();
        }
        fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
        let user = format!("simplelock-{}", sys::euid());
        // XDG_RUNTIME_DIR (a login session's) does not change the folder: cron has none.
        let runtime = base.join("run");
        DirBuilder::new().mode(0o700).create(&runtime).unwrap();
        let login = [("XDG_RUNTIME_DIR", runtime.as_path())];
        let bases = [closed.as_path(), sticky.as_path()];
        let dir = lock_dir_in(env(&login), &bases, &temp).unwrap();
        assert_eq!(dir, sticky.join(&user));
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(lock_dir_in(env(&[]), &bases, &temp).unwrap(), dir);
        // Without a usable base: the temporary folder.
        assert_eq!(
            lock_dir_in(env(&[]), &[closed.as_path()], &temp).unwrap(),
            temp.join(&user)
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn temp_fallback_is_private_and_refuses_planted_folders() {
        let temp = scratch("temp");
        let lock_dir_with = |env, temp: &Path| lock_dir_in(env, &[], temp);
        let dir = lock_dir_with(env(&[]), &temp).unwrap();
        assert_eq!(dir, temp.join(format!("simplelock-{}", sys::euid())));
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // Calling it again accepts the folder it made.
        assert_eq!(lock_dir_with(env(&[]), &temp).unwrap(), dir);

        // World-writable: refused, and the message says why.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = lock_dir_with(env(&[]), &temp).unwrap_err();
        assert!(
            matches!(err, SimpleLockError::PermissionDenied { .. }),
            "{err:?}"
        );
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("writable by other users"), "{err:?}");
        // The way out is in the message.
        assert!(why.contains("set SIMPLELOCK_DIR to a folder"), "{why}");
        assert_eq!(err.name(), Some(dir.display().to_string().as_str()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        // Owned by another user: refused (only root can set this up).
        if sys::euid() == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            let err = lock_dir_with(env(&[]), &temp).unwrap_err();
            let why = std::error::Error::source(&err).unwrap().to_string();
            assert!(why.contains("belongs to uid 65534"), "{err:?}");
        } else {
            eprintln!("not root: the folder-owned-by-another-user case is not checked");
        }
        fs::remove_dir(&dir).unwrap();

        // A symbolic link planted where the folder goes: refused, even to a good folder.
        let elsewhere = temp.join("elsewhere");
        DirBuilder::new().mode(0o700).create(&elsewhere).unwrap();
        symlink(&elsewhere, &dir).unwrap();
        let err = lock_dir_with(env(&[]), &temp).unwrap_err();
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("symbolic link"), "{err:?}");
        fs::remove_file(&dir).unwrap();

        // A file planted where the folder goes.
        fs::write(&dir, b"").unwrap();
        let err = lock_dir_with(env(&[]), &temp).unwrap_err();
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("not a folder"), "{err:?}");
        fs::remove_dir_all(temp).unwrap();
    }
}
