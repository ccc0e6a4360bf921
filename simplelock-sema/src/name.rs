//! The name rules, checked before the operating system sees a name.
//!
//! POSIX leaves much of a semaphore name's meaning to the implementation: glibc accepts `"x"`
//! and `"//x"` where other systems refuse them, and each system has its own length limit. We
//! check names ourselves, so every platform accepts and refuses the same names and each refusal
//! says which rule was broken.

use simplelock_core::{SimpleLockError, SimpleLockResult};

/// The longest name, in bytes, after its leading `/`: glibc's limit for `sem_open` (the file
/// `sem.NAME` in `/dev/shm` must fit in 255 bytes), so any name `sem_open` accepts works here.
pub const MAX_NAME_LEN: usize = 251;

/// What the shared memory object of a lock is called: `/sl.` and the name without its `/`, so
/// the lock `/deploy` lives in `/dev/shm/sl.deploy`.
pub(crate) const OBJECT_PREFIX: &str = "/sl.";

/// Where POSIX shared memory objects live on Linux (glibc's and musl's `shm_open` use it).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// A checked name: the canonical form `/name` and the name of its shared memory object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockName {
    /// `/name`, how the lock is shown to people.
    pub(crate) canonical: String,
    /// `/sl.name`, what `shm_open` is given.
    pub(crate) object: String,
}

impl LockName {
    /// The file of the lock's object: `/dev/shm/sl.NAME`, the one place that spells it.
    pub(crate) fn path(&self) -> String {
        format!("{SHM_DIR}{}", self.object)
    }
}

/// Checks `name` against the rules in the crate docs, returning its canonical form.
///
/// # Errors
/// [`SimpleLockError::InvalidName`] naming the broken rule.
pub(crate) fn check(name: &str) -> SimpleLockResult<LockName> {
    let refuse = |reason: String| Err(SimpleLockError::invalid_name(name, reason));
    if name.is_empty() {
        return refuse("the name is empty".into());
    }
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return refuse("the name is only \"/\": nothing follows the leading '/'".into());
    }
    if bare.contains('\0') {
        return refuse("the name contains a NUL byte".into());
    }
    if bare.contains('/') {
        return refuse("the name contains a '/' other than a leading one".into());
    }
    if bare.len() > MAX_NAME_LEN {
        return refuse(format!(
            "the name is {} bytes long after the leading '/', more than the {MAX_NAME_LEN} allowed",
            bare.len()
        ));
    }
    Ok(LockName {
        canonical: format!("/{bare}"),
        object: format!("{OBJECT_PREFIX}{bare}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> String {
        match check(name) {
            Err(SimpleLockError::InvalidName {
                name: given,
                reason,
                ..
            }) => {
                assert_eq!(given, name, "InvalidName must carry the name as given");
                reason
            }
            other => panic!("{name:?} must be refused, got {other:?}"),
        }
    }

    #[test]
    fn bad_names_are_refused_with_the_rule_they_break() {
        let long = format!("/{}", "a".repeat(MAX_NAME_LEN + 1));
        let cases: [(&str, &str); 7] = [
            ("", "empty"),
            ("/", "only \"/\""),
            ("/a/b", "'/' other than a leading one"),
            ("//x", "'/' other than a leading one"),
            ("a/", "'/' other than a leading one"),
            ("/a\0b", "NUL"),
            (&long, "252 bytes long"),
        ];
        for (name, rule) in cases {
            let reason = reason(name);
            assert!(reason.contains(rule), "{name:?}: {reason:?} lacks {rule:?}");
        }
    }

    #[test]
    fn slash_and_no_slash_name_the_same_lock() {
        assert_eq!(check("noslash").unwrap(), check("/noslash").unwrap());
        let name = check("noslash").unwrap();
        assert_eq!(name.canonical, "/noslash");
        assert_eq!(name.object, "/sl.noslash");
    }

    #[test]
    fn the_longest_name_is_accepted_and_fits_the_file_name_limit() {
        let bare = "é".repeat(MAX_NAME_LEN / 2) + "x"; // multi-byte characters count in bytes
        assert_eq!(bare.len(), MAX_NAME_LEN);
        let name = check(&bare).unwrap();
        assert!(name.object.len() - 1 <= 255, "sl.NAME must fit NAME_MAX");
        let too_long = bare + "x";
        assert!(reason(&too_long).contains("252 bytes"));
    }
}
