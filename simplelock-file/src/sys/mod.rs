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
