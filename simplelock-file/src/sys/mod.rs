//! Platform code, with the same names on every platform (see `unix.rs`).
//!
//! Only Unix-like systems are supported; the crate root stops the build elsewhere with a clear
//! message instead of failing at run time.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

mod held;
pub(crate) use held::{Held, registry};
mod wait;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use wait::Waiter;
pub(crate) use wait::Wake;

/// Reads from offset 0 into `buf` with `read_at` (a positioned read) until `buf` is full or the
/// file ends, retrying on `Interrupted`; returns how many bytes there were.
fn read_full(
    buf: &mut [u8],
    mut read_at: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Open (creating if needed) the lock file at `path`: never following a symbolic link at its
/// last component (Windows: nor a junction) nor, on Unix, in a folder other users can write;
/// never truncating; not inherited by programs we start (close-on-exec, not inheritable; on
/// Windows without sharing delete access); refusing anything but a regular file. `name` is how
/// errors name the lock.
pub(crate) fn open(
    path: &std::path::Path,
    name: &str,
) -> simplelock_core::SimpleLockResult<LockFd> {
    open_with(path, name, true)?.ok_or_else(|| {
        simplelock_core::SimpleLockError::from_io(
            name,
            "opening the lock file",
            std::io::ErrorKind::NotFound.into(),
        )
    })
}

/// The time now, to a few milliseconds: the kernel's coarse clock where it has one (Linux,
/// read from the vDSO without the clock source's cost), else `SystemTime::now`. For the
/// acquisition time of a hold without a record, which only `holder()` of the holding handle
/// shows, where `SystemTime::now` is a measurable part of the raw pair.
pub(crate) fn coarse_now() -> std::time::SystemTime {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let since_epoch = std::time::Duration::try_from(now).unwrap_or_default();
        std::time::SystemTime::UNIX_EPOCH + since_epoch
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        std::time::SystemTime::now()
    }
}
