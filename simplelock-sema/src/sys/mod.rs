//! The system calls behind the lock, and the only `unsafe` code of the crate.
//!
//! # Safety
//!
//! The system calls that have a safe wrapper (`open`, `fstat`, `linkat`, `unlink`, `getrandom`,
//! `kill`, ...) go through rustix. Every `unsafe` block left maps or unmaps memory (`mmap`,
//! `madvise`, `munmap`), waits or wakes on a word in shared memory (`futex`, whose address is
//! the low half of an `AtomicU64`: no safe wrapper takes that), or turns the pointer of a
//! mapping this module made into a reference; its `// SAFETY:` comment says why it is sound. The invariants the rest of the crate
//! relies on:
//!
//! - A [`Mapping`] owns a shared mapping of [`OBJECT_SIZE`] bytes, made by `mmap` over an object
//!   of exactly that size, readable and writable, aligned to a page; it is unmapped exactly
//!   once, when the `Mapping` is dropped. The handles of one object in a process share one
//!   `Mapping` through an `Arc` in their [`MapRef`], which also keeps its address;
//!   [`MapRef::shared`] hands out a reference to a [`Shared`] that only contains atomics, so
//!   concurrent access by other threads and processes is what atomics are for. (Another
//!   process that shrinks the object makes accesses to the mapping fault with SIGBUS: no Rust
//!   reference can guard against that; the crate docs say what remains.)
//! - [`fork_local`] hands out a reference to a private page that is mapped once and never
//!   unmapped (it lives as long as the process), made of atomics only.
//! - The futex calls only ever pass the address of the low half of a [`Shared::word`] that lives
//!   in a live `Mapping`.
//! - With the feature `tokio`, `uring.rs` pushes io_uring futex waits on such an address (the
//!   ring keeps the mapping until the wait is reaped or the ring closed; the kernel reads the
//!   word only while the submit queues the wait) and registers the ring's descriptor (or its
//!   eventfd) with tokio's reactor, owned by the same object, which deregisters it first.
//!
//! Everything here is Linux; other platforms do not compile this module (see `unsupported.rs`).

mod linux;

pub(crate) use linux::*;
