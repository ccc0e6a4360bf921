//! A forked child cannot use, nor release, the handle it inherited; and a call from inside an
//! async runtime is refused with an error, not a panic.

use simplelock_core::{ConcreteLock, SimpleLockError};
use simplelock_postgres::PostgresLock;

mod common;

#[test]
fn a_forked_child_cannot_use_or_release_the_parents_lock() {
    let mut lock = common::open(&common::name("fork"));
    lock.try_lock().unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the child only calls into code that takes no lock another thread could hold at
    // the fork (the owner check comes first, and glibc's malloc is fork-safe), then `_exit`s
    // without running destructors or atexit handlers of the parent's state.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let refused = matches!(lock.try_unlock(), Err(SimpleLockError::UnknownError { .. }))
            && matches!(
                lock.ensure_held(),
                Err(SimpleLockError::UnknownError { .. })
            );
        drop(lock); // must neither unlock nor close the parent's connection
        #[allow(unsafe_code)]
        // SAFETY: `_exit` ends the child at once; always sound.
        unsafe {
            libc::_exit(if refused { 0 } else { 1 })
        };
    }
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: waits for our own child, with a valid pointer to `status`.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child could use its parent's handle (status {status})"
    );
    lock.ensure_held()
        .expect("the child's drop released or broke the parent's lock");
    lock.try_unlock().unwrap();
}

#[test]
fn calls_from_inside_an_async_runtime_are_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The probe of the test server connects: outside the runtime.
    let url = common::url();
    let result = rt.block_on(async {
        PostgresLock::options()
            .with_url(url)
            .named(&common::name("async"))
    });
    match result {
        Err(err @ SimpleLockError::UnknownError { .. }) => {
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
