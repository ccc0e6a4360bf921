//! What another user, a careless process of the same user, a full `/dev/shm` or an unusual
//! namespace can do to a lock: each case an error, never a second holder, never a signal.
//!
//! These tests need root: they run a child as `nobody` (uid 65534, as `setpriv --reuid=65534
//! --regid=65534 --clear-groups` would), mount a tiny tmpfs on `/dev/shm` in a private mount
//! namespace (`unshare -m`), and make pid and time namespaces. Run as an ordinary user they
//! fail, saying so, rather than pass without testing anything.
#![allow(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork};
use simplelock_core::{ConcreteLock, PreviousHolder, SimpleLockError};
use simplelock_sema::SemaphoreLock;

mod common;
use common::{Child, Cleanup, RemoveFile, role, say};

const LOCK: &str = "SEMA_TEST_LOCK";
const NOBODY: u32 = 65534;

/// Fails the test unless it runs as root, saying how to run it.
fn need_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root (a second user, mounts, namespaces): run the tests as root, e.g. \
         `sudo -E cargo test -p simplelock-sema --test hostile`"
    );
}

/// Turns this (child) process into user `nobody`, with no supplementary groups.
fn become_nobody() {
    nix::unistd::setgroups(&[]).unwrap();
    nix::unistd::setgid(Gid::from_raw(NOBODY)).unwrap();
    nix::unistd::setuid(Uid::from_raw(NOBODY)).unwrap();
}

/// As `nobody` (in a child process): creates the object of lock `name` with mode 0o666 and
/// `len` zero bytes, as a squatter would.
fn squat(test: &str, name: &str, len: u64) {
    let mut child = Child::start(
        test,
        "squatter",
        &[(LOCK, name), ("SQUAT_LEN", &len.to_string())],
    );
    child.expect("squatted");
    child.wait_success();
    let meta = fs::metadata(common::object_path(name)).unwrap();
    assert_eq!(meta.uid(), NOBODY);
    assert_eq!(meta.mode() & 0o777, 0o666);
}

/// The squatter's side of [`squat`]; true if this process is the squatter.
fn squatter_role() -> bool {
    if role().as_deref() != Some("squatter") {
        return false;
    }
    become_nobody();
    let path = common::object_path(&common::env(LOCK));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&path)
        .unwrap();
    file.set_permissions(fs::Permissions::from_mode(0o666))
        .unwrap();
    file.set_len(common::env("SQUAT_LEN").parse().unwrap())
        .unwrap();
    say("squatted");
    true
}

/// The message of an error and of its whole chain of sources.
fn full_message(e: &SimpleLockError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Expects a `PermissionDenied` that names the lock, the owner `nobody` and a way out.
fn expect_squat_refused(result: Result<impl std::fmt::Debug, SimpleLockError>, name: &str) {
    match result {
        Err(e @ SimpleLockError::PermissionDenied { .. }) => {
            let text = full_message(&e);
            assert!(text.contains(name.trim_start_matches('/')), "{text}");
            assert!(text.contains("uid 65534"), "the owner is not named: {text}");
            assert!(text.contains("remove"), "no way out is named: {text}");
        }
        other => panic!("a squatted object was used: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

/// `nobody` creates `/dev/shm/sl.NAME` first, empty and mode 0o666: root's `new` (which asks
/// for 0o600) must refuse it, naming the owner, instead of using an object `nobody` can write.
#[test]
fn an_object_squatted_by_another_user_is_refused() {
    if squatter_role() {
        return;
    }
    need_root("an_object_squatted_by_another_user_is_refused");
    let name = common::unique_name("squat");
    let _cleanup = RemoveFile(common::object_path(&name));
    squat("an_object_squatted_by_another_user_is_refused", &name, 0);
    expect_squat_refused(SemaphoreLock::named(&name), &name);
    expect_squat_refused(
        SemaphoreLock::options().with_mode(0o666).named(&name),
        &name,
    );
    expect_squat_refused(SemaphoreLock::open_existing(&name), &name);
    assert_eq!(
        fs::metadata(common::object_path(&name)).unwrap().len(),
        0,
        "the refused object was changed"
    );
    // Trusting that owner explicitly is the documented way to share a lock across users; an
    // empty object is still no lock object.
    match SemaphoreLock::options()
        .with_mode(0o666)
        .with_owner(NOBODY)
        .named(&name)
    {
        Err(SimpleLockError::UnknownError { message, .. }) => {
            assert!(message.contains("0 bytes"), "{message}")
        }
        other => panic!("an empty object was used: {other:?}"),
    }
}

/// After a removal, `nobody` re-creates the name before root's old handle opens it again: the
/// handle must refuse the squatted object on its way back too.
#[test]
fn a_reopen_refuses_a_name_squatted_after_removal() {
    if squatter_role() {
        return;
    }
    need_root("a_reopen_refuses_a_name_squatted_after_removal");
    let name = common::unique_name("resquat");
    let _cleanup = RemoveFile(common::object_path(&name));
    let mut old = SemaphoreLock::named(&name).unwrap();
    assert!(SemaphoreLock::remove(&name).unwrap());
    squat("a_reopen_refuses_a_name_squatted_after_removal", &name, 64);
    expect_squat_refused(old.try_lock(), &name);
    expect_squat_refused(old.timed_lock(Duration::from_millis(20)), &name);
}

/// An object of our own user whose mode is wider than the one asked for (here 0o666 where
/// `new` asks 0o600) is refused: anyone it lets in could break the lock.
#[test]
fn an_object_with_a_wider_mode_than_asked_is_refused() {
    let name = common::unique_name("wide");
    let _cleanup = Cleanup::new(&[&name]);
    let _wide = SemaphoreLock::options()
        .with_mode(0o666)
        .named(&name)
        .unwrap();
    match SemaphoreLock::named(&name) {
        Err(e @ SimpleLockError::PermissionDenied { .. }) => {
            let text = full_message(&e);
            assert!(text.contains("0o666") && text.contains("0o600"), "{text}");
        }
        other => panic!("a wider mode than asked was accepted: {other:?}"),
    }
    // Asking for that mode (or a wider one) is fine.
    SemaphoreLock::options()
        .with_mode(0o666)
        .named(&name)
        .unwrap();
    SemaphoreLock::options()
        .with_mode(0o777)
        .named(&name)
        .unwrap();
}

/// A lock created by root for everyone (0o666) is usable by `nobody` only if `nobody` says it
/// trusts root's object; plain `new` refuses it as another user's object.
#[test]
fn sharing_across_users_needs_the_explicit_opt_in() {
    if role().as_deref() == Some("user") {
        become_nobody();
        let name = common::env(LOCK);
        expect_owner_refused(SemaphoreLock::named(&name));
        expect_owner_refused(SemaphoreLock::options().with_mode(0o666).named(&name));
        let mut lock = SemaphoreLock::options()
            .with_mode(0o666)
            .with_owner(0)
            .named(&name)
            .unwrap();
        lock.try_lock().unwrap();
        lock.try_unlock().unwrap();
        say("shared ok");
        return;
    }
    need_root("sharing_across_users_needs_the_explicit_opt_in");
    let name = common::unique_name("shared");
    let _cleanup = Cleanup::new(&[&name]);
    let _lock = SemaphoreLock::options()
        .with_mode(0o666)
        .named(&name)
        .unwrap();
    let mut child = Child::start(
        "sharing_across_users_needs_the_explicit_opt_in",
        "user",
        &[(LOCK, &name)],
    );
    child.expect("shared ok");
    child.wait_success();
}

fn expect_owner_refused(result: Result<SemaphoreLock, SimpleLockError>) {
    match result {
        Err(e @ SimpleLockError::PermissionDenied { .. }) => {
            assert!(full_message(&e).contains("uid 0"), "{}", full_message(&e))
        }
        other => panic!("another user's object was used without opting in: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

/// On a full `/dev/shm` (a 64 KiB tmpfs, filled), creating a lock is an error saying the space
/// ran out — not a SIGBUS at the first store into the new mapping.
#[test]
fn a_full_dev_shm_is_an_error_not_a_sigbus() {
    if role().as_deref() == Some("full") {
        let name = common::env(LOCK);
        match SemaphoreLock::named(&name).and_then(|mut lock| lock.try_lock()) {
            Err(e) => say(&format!("error {:?} {}", e.kind(), full_message(&e))),
            Ok(()) => say("locked"),
        }
        return;
    }
    need_root("a_full_dev_shm_is_an_error_not_a_sigbus");
    let exe = std::env::current_exe().unwrap();
    let script = "mount --make-rprivate / && mount -t tmpfs -o size=64k tmpfs /dev/shm && \
                  { dd if=/dev/zero of=/dev/shm/fill bs=4096 2>/dev/null; true; } && \
                  exec \"$0\" --exact a_full_dev_shm_is_an_error_not_a_sigbus --nocapture \
                  --test-threads=1 -q";
    let output = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(&exe)
        .env(common::ROLE, "full")
        .env(LOCK, common::unique_name("full"))
        .output()
        .expect("running unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child died: {} (signal 7 is SIGBUS)\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(common::TAG))
        .unwrap_or_else(|| panic!("the child said nothing: {stdout}"));
    assert!(
        line.starts_with("error StorageFull") && line.contains("/dev/shm"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------

/// A process of the same user truncates a held lock's object and grows it again (which zeroes
/// it), or punches a hole into it: no handle — one opened before or after — may get in while
/// the holder holds; each gets an error instead.
#[test]
fn a_zeroed_object_never_admits_a_second_holder() {
    for how in ["truncate", "punch"] {
        let name = common::unique_name("zeroed");
        let path = common::object_path(&name);
        let _cleanup = RemoveFile(path.clone());
        let mut holder = SemaphoreLock::named(&name).unwrap();
        let mut before = SemaphoreLock::named(&name).unwrap();
        holder.try_lock().unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        match how {
            "truncate" => {
                file.set_len(0).unwrap();
                file.set_len(64).unwrap();
            }
            _ => {
                use std::os::fd::AsRawFd;
                // SAFETY: fallocate takes an open descriptor and numbers.
                let r = unsafe {
                    libc::fallocate(
                        file.as_raw_fd(),
                        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                        0,
                        64,
                    )
                };
                assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
            }
        }
        drop(file);
        for result in [
            before.try_lock(),
            before.timed_lock(Duration::from_millis(30)),
            SemaphoreLock::named(&name).and_then(|mut l| l.try_lock()),
        ] {
            match result {
                Err(e @ SimpleLockError::UnknownError { .. }) => {
                    assert!(full_message(&e).contains("overwritten"), "{how}: {e}")
                }
                other => panic!("{how}: a second holder got in: {other:?}"),
            }
        }
        assert!(
            holder.try_unlock().is_err(),
            "{how}: the holder's release of a zeroed word must be an error"
        );
    }
}

// ---------------------------------------------------------------------------------------------

/// A process whose `/proc/self/ns` cannot be read (here: hidden under an empty tmpfs), in a pid
/// namespace of its own with its own `/proc`, would judge a live holder outside it dead: it must
/// get an error instead of the lock.
#[test]
fn unreadable_namespaces_fail_closed() {
    need_root("unreadable_namespaces_fail_closed");
    let name = common::unique_name("hiddenns");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    // 0: refused with an error; 1: got the lock; 2: setting up the sandbox failed.
    let code = in_forked_child(|| {
        use nix::mount::{MsFlags, mount};
        use nix::sched::{CloneFlags, unshare};
        if unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID).is_err() {
            return 2;
        }
        // The first child in the new pid namespace is its pid 1.
        in_forked_child(|| {
            let none: Option<&str> = None;
            let hidden = mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
                .and_then(|()| mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), none))
                .and_then(|()| {
                    mount(
                        Some("none"),
                        "/proc/1/ns",
                        Some("tmpfs"),
                        MsFlags::empty(),
                        none,
                    )
                })
                .and_then(|()| {
                    mount(
                        Some("none"),
                        "/proc/1/task/1/ns",
                        Some("tmpfs"),
                        MsFlags::empty(),
                        none,
                    )
                });
            if hidden.is_err() || fs::metadata("/proc/self/ns/pid").is_ok() {
                return 2;
            }
            match SemaphoreLock::named(&name).and_then(|mut l| l.try_lock()) {
                Ok(()) => 1,
                Err(e) if full_message(&e).contains("/proc/self/ns/pid") => 0,
                Err(_) => 3,
            }
        })
    });
    assert_eq!(
        code, 0,
        "1: the lock was taken from a live holder; 2: no sandbox; 3: another error"
    );
    holder.try_unlock().unwrap();
}

/// A process that moves into another time namespace (`setns`) after it opened a lock sees every
/// start time shifted: it must refuse to judge owners, not take a live holder's lock over.
#[test]
fn a_changed_time_namespace_is_refused() {
    need_root("a_changed_time_namespace_is_refused");
    let name = common::unique_name("timens");
    let _cleanup = Cleanup::new(&[&name]);
    let mut holder = SemaphoreLock::named(&name).unwrap();
    holder.try_lock().unwrap();
    // A process in a time namespace whose boot clock is 1000 s ahead.
    let mut shifted = Command::new("unshare")
        .args(["-T", "--boottime", "1000", "sleep", "60"])
        .spawn()
        .expect("running unshare (util-linux)");
    let ns_path = format!("/proc/{}/ns/time", shifted.id());
    common::eventually("the time namespace", || {
        fs::read_link(&ns_path).ok() != fs::read_link("/proc/self/ns/time").ok()
    });
    let ns = fs::File::open(&ns_path).unwrap();
    let mut lock = SemaphoreLock::named(&name).unwrap();
    // 0: refused with an error; 1: got the lock; 2: setns failed; 3: opening failed.
    let code = in_forked_child(move || {
        // Compute (and cache) this process's identity in the old namespace first.
        if lock.status().is_err() {
            return 3;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: setns takes an open descriptor and a flag (nix lacks CLONE_NEWTIME).
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWTIME) } != 0 {
            return 2;
        }
        match lock.try_lock() {
            Ok(()) => 1,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => 0,
            Err(_) => 4,
        }
    });
    let _ = shifted.kill();
    let _ = shifted.wait();
    assert_eq!(
        code, 0,
        "1: the lock was taken from a live holder; 2/3: setup failed; 4: another error"
    );
    assert_eq!(holder.previous_holder(), PreviousHolder::Released);
    holder.try_unlock().unwrap();
}

/// Runs `f` in a forked child (single-threaded, as `setns` into a time namespace and
/// `unshare(CLONE_NEWNS)` require) and returns its exit code; a signal is a failure.
fn in_forked_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `f` — lock calls, mounts, namespace calls, file metadata — and
    // `_exit`s without running destructors; it does not touch stdio.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("the forked child ended by {other:?}"),
        },
        ForkResult::Child => {
            // SAFETY: PR_SET_PDEATHSIG takes a signal number.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) }
        }
    }
}
