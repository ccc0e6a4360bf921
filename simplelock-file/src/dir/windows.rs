//! The lock folder on Windows: `%SIMPLELOCK_DIR%` if set, else `%LOCALAPPDATA%\simplelock`.
//!
//! `%LOCALAPPDATA%` (`C:\Users\<user>\AppData\Local`) is the user's own: its access list lets
//! only the user (and administrators and the system) in, and it is the same for every process
//! of the user whatever its current folder — the Windows counterpart of Unix's per-user
//! `simplelock-UID` folder, with nothing to check about other users. Where it is not set (a
//! service account without a profile), the temporary folder is used, which Windows also
//! keeps per user (`%LOCALAPPDATA%\Temp`). The folder must be a real folder: a symbolic link
//! or junction planted there is refused, as on Unix.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use simplelock_core::{SimpleLockError, SimpleLockResult};

use super::ENV_DIR;

/// The folder below `%LOCALAPPDATA%` (or the temporary folder) that holds named locks.
const FOLDER: &str = "simplelock";

/// Where named locks live, and whether the user chose it.
fn choose(env: impl Fn(&str) -> Option<OsString>, temp_dir: &Path) -> (PathBuf, bool) {
    if let Some(dir) = env(ENV_DIR).filter(|dir| !dir.is_empty()) {
        return (PathBuf::from(dir), true);
    }
    let base = env("LOCALAPPDATA")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| temp_dir.to_owned(), PathBuf::from);
    (base.join(FOLDER), false)
}

/// The lock folder, without creating or checking anything.
pub(crate) fn chosen_dir(env: impl Fn(&str) -> Option<OsString>, temp_dir: &Path) -> PathBuf {
    choose(env, temp_dir).0
}

/// [`crate::lock_dir`] with the environment and the temporary folder given: the folder,
/// created (with its parents) if missing.
pub(crate) fn lock_dir_with(
    env: impl Fn(&str) -> Option<OsString>,
    temp_dir: &Path,
) -> SimpleLockResult<PathBuf> {
    let (dir, chosen) = choose(env, temp_dir);
    let name = dir.display().to_string();
    let doing = if chosen {
        "creating the lock folder (SIMPLELOCK_DIR)"
    } else {
        "creating the lock folder"
    };
    // Something else in its place is refused by `check`, with the reason.
    if let Err(err) = fs::create_dir_all(&dir)
        && fs::symlink_metadata(&dir).is_err()
    {
        return Err(SimpleLockError::from_io(name, doing, err));
    }
    check(&dir, chosen)?;
    Ok(dir)
}

/// The checks of an existing lock folder, without creating it.
pub(crate) fn check_existing_dir(
    env: impl Fn(&str) -> Option<OsString>,
    temp_dir: &Path,
) -> SimpleLockResult<()> {
    let (dir, chosen) = choose(env, temp_dir);
    check(&dir, chosen)
}

/// A folder of ours must be a folder, not a link or junction; one the user chose is trusted
/// as it is, but must be a folder.
fn check(dir: &Path, chosen: bool) -> SimpleLockResult<()> {
    let name = dir.display().to_string();
    let meta = fs::symlink_metadata(dir)
        .map_err(|err| SimpleLockError::from_io(&name, "checking the lock folder", err))?;
    let why = if meta.file_type().is_symlink() && !chosen {
        "the lock folder is a symbolic link or junction"
    } else if !dir.is_dir() {
        if chosen {
            "SIMPLELOCK_DIR names something that is not a folder"
        } else {
            "the lock folder is not a folder"
        }
    } else {
        return Ok(());
    };
    Err(SimpleLockError::permission_denied(
        name,
        Some(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{why}; set {ENV_DIR} to a folder of your own to keep named locks there"),
        )),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_folder_is_in_local_app_data_unless_chosen() {
        let temp = Path::new(r"C:\Temp");
        assert_eq!(
            chosen_dir(env(&[("LOCALAPPDATA", r"C:\Users\me\AppData\Local")]), temp),
            Path::new(r"C:\Users\me\AppData\Local\simplelock")
        );
        assert_eq!(
            chosen_dir(
                env(&[
                    ("LOCALAPPDATA", r"C:\Users\me\AppData\Local"),
                    (ENV_DIR, r"D:\locks")
                ]),
                temp
            ),
            Path::new(r"D:\locks")
        );
        assert_eq!(chosen_dir(env(&[]), temp), Path::new(r"C:\Temp\simplelock"));
    }

    #[test]
    fn the_folder_is_created_and_a_file_in_its_place_refused() {
        let base = std::env::temp_dir().join(format!("simplelock-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let local = base.to_string_lossy().into_owned();
        let made = lock_dir_with(env(&[("LOCALAPPDATA", &local)]), &base).unwrap();
        assert_eq!(made, base.join(FOLDER));
        assert!(made.is_dir());
        let file = base.join("file");
        fs::write(&file, b"").unwrap();
        let chosen = file.to_string_lossy().into_owned();
        let err = lock_dir_with(env(&[(ENV_DIR, &chosen)]), &base).unwrap_err();
        assert!(
            matches!(err, SimpleLockError::PermissionDenied { .. }),
            "{err:?}"
        );
        assert!(format!("{err:?}").contains("not a folder"), "{err:?}");
        fs::remove_dir_all(&base).unwrap();
    }
}
