//! Where the process starts on glibc Linux: a C `main`, without std's runtime set-up.
//!
//! The tool is started once per command it runs, so its start-up is paid on every call (issue
//! 15 measures it against `flock(1)`). Of what std's `lang_start` does before `main`, one part
//! costs a seventh of the tool's user-space instructions: to know the main thread's stack guard
//! (for its "stack overflow" message), it asks glibc's `pthread_getattr_np`, which reads and
//! parses `/proc/self/maps`. This tool does not need that message: a stack overflow still
//! ends it with SIGSEGV on the guard page the kernel keeps below the stack. What it does need
//! of that set-up, it does here itself:
//!
//! - **The standard streams are open.** Started with descriptor 0, 1 or 2 closed, the first
//!   file we open (the lock file) would take its number, and the command would inherit it as
//!   its standard input or output. A closed one is opened on `/dev/null`, as std does.
//! - **SIGPIPE is ignored**, as std does, so that a closed pipe on standard output is a write
//!   error we report (`status | head -0`), not a silent death. The command gets the default
//!   action back: std resets SIGPIPE in every child it starts.
//!
//! The arguments come from glibc (std reads them in an initializer of its own on glibc Linux,
//! not in `lang_start`), which is why this applies to glibc Linux only; elsewhere the tool
//! starts in an ordinary `fn main`. A panic prints its message and aborts (it cannot unwind
//! out of a C function), as it does with the `dist` profile anyway.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, IntoRawFd};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// The C entry point glibc calls (std's own `main` is not generated: `no_main`).
// SAFETY: `main` is the symbol the C runtime calls; nothing else in the program defines it (the
// crate is `no_main` on this target), and its signature is the one the C runtime expects.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if let Err(err) = open_standard_streams() {
        crate::say_error(&format!(
            "cannot open /dev/null for a closed standard stream: {err}"
        ));
        return crate::args::exit::SOFTWARE;
    }
    // SAFETY: signal(2) with SIG_IGN installs no handler; it only changes this process's
    // disposition of SIGPIPE, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    c_int::from(crate::run())
}

/// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed. `open` returns the
/// lowest free number, so `/dev/null` is opened until the number is 3 or more: each one below
/// filled a closed standard stream (in order), and the last one is closed again.
fn open_standard_streams() -> std::io::Result<()> {
    loop {
        let null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        if null.as_raw_fd() > 2 {
            return Ok(());
        }
        // std opens it close-on-exec; a standard stream is for the command too.
        fcntl(&null, FcntlArg::F_SETFD(FdFlag::empty()))?;
        // Kept open for the life of the process, as the standard stream it now is.
        let _ = null.into_raw_fd();
    }
}
