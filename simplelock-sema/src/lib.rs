//! Draft.
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
mod lock;
mod name;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(not(target_os = "linux"))]
mod unsupported;
// Compiled on Linux too, in tests, so that the code other platforms get is checked.
#[cfg(all(target_os = "linux", test))]
#[allow(dead_code, unreachable_pub)]
mod unsupported;
#[cfg(target_os = "linux")]
mod word;

#[cfg(target_os = "linux")]
pub use lock::SemaphoreLock;
pub use name::MAX_NAME_LEN;
#[cfg(not(target_os = "linux"))]
pub use unsupported::SemaphoreLock;

/// The mode of an object created by [`SemaphoreLock::new`]: read and write for its owner only.
pub const DEFAULT_MODE: u32 = 0o600;
