//! An io_uring whose one job is a `FUTEX_WAIT` on a lock word (`IORING_OP_FUTEX_WAIT`, Linux
//! 6.7+), with its descriptor registered with tokio's reactor: the completion of the wait makes
//! the ring readable, which wakes the runtime's thread directly (feature `tokio`; the policy is
//! in `async_uring.rs`).
//!
//! Two `unsafe` blocks: pushing entries to the submission queue (the kernel reads the addresses
//! they carry) and registering the ring's raw descriptor with tokio (which must stay open while
//! registered). What keeps them sound:
//!
//! - The futex address is the low half of a [`Shared::word`](super::Shared) in a mapping that
//!   the [`Queue`] keeps alive (a [`MapRef`] clone in `armed_on`) from the push until the wait's
//!   completion is reaped, or until the ring is closed, whichever comes first. The kernel reads
//!   the word once, while the wait is being queued, inside the `io_uring_enter` that submits it
//!   (futex waits are issued inline); after that it works on the futex's key (for a shared
//!   mapping, the object and offset), never on our address: a wake, a cancellation or the
//!   ring's teardown at close touch kernel memory only. Entries pushed but not submitted yet
//!   stay in the ring until a later submit, still under `armed_on`.
//! - The linked timeout's `timespec` is copied by the kernel when the entry is prepared (during
//!   the submit); it lives in the [`Queue`] anyway, as long as the ring.
//! - The registered descriptor is the ring's own, owned by the [`IoUring`] in the same
//!   [`FutexRing`], whose fields drop the registration first (tokio deregisters it), then the
//!   ring (which closes it).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use io_uring::{IoUring, Probe, opcode, squeue, types};
use rustix::event::{EventfdFlags, eventfd};
use tokio::io::Interest;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use super::{MapRef, futex_word};

/// The `user_data` of the futex wait, of its linked timeout and of a cancellation.
const FUTEX: u64 = 1;
const TIMEOUT: u64 = 2;
const CANCEL: u64 = 3;

/// `FUTEX2_SIZE_U32`: a 32-bit futex, and not `FUTEX2_PRIVATE`, so that the key is the shared
/// one a plain (shared) `FUTEX_WAKE` from any process computes for the same word.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// `FUTEX_BITSET_MATCH_ANY`: woken by any wake (a plain `FUTEX_WAKE` is a wake of this bitset).
const MATCH_ANY: u64 = 0xffff_ffff;

/// Enough room for the wait, its timeout and a cancellation, with some to spare.
const ENTRIES: u32 = 8;

/// A ring that can wait on a futex, or `Err` (`Unsupported`, or the error of
/// `io_uring_setup`: ENOSYS, EPERM under seccomp or `kernel.io_uring_disabled`) where this
/// kernel does not let this process have one. `deferred`: its completions are posted only when
/// its one submitting thread asks (`DEFER_TASKRUN`, see [`FutexRing::new`]).
fn new_ring(deferred: bool) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if deferred {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let ring = builder.build(ENTRIES)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let needed = [
        opcode::FutexWait::CODE,
        opcode::LinkTimeout::CODE,
        opcode::AsyncCancel::CODE,
    ];
    if needed.iter().all(|&op| probe.is_supported(op)) {
        Ok(ring)
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring has no futex wait here (Linux 6.7+)",
        ))
    }
}

/// The ring's submission and completion side, used under the [`FutexRing`]'s mutex.
pub(crate) struct Queue {
    uring: IoUring,
    /// For a deferred ring (`DEFER_TASKRUN`, whose completions are posted only when we ask):
    /// the eventfd the kernel signals when there are some to ask for.
    eventfd: Option<OwnedFd>,
    /// The longest a wait lasts (its linked timeout).
    slice: types::Timespec,
    /// The mapping of the word a submitted wait is on, kept until its completion is reaped.
    /// Declared after `uring`, so that the ring is closed before it is dropped.
    armed_on: Option<MapRef>,
}

impl fmt::Debug for FutexRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutexRing")
            .field("fd", &self.readiness.get_ref().0)
            .finish_non_exhaustive()
    }
}

/// How a futex wait submitted on the ring ended (its completion's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Woken (a release, a death), or the word had another value when it was queued: look.
    Woken,
    /// Its timeout ran out, or it was cancelled: look, and re-arm if the word is unchanged.
    TimedOut,
    /// The kernel refused it (`EINVAL` & co: no futex support after all).
    Refused(i32),
}

impl Queue {
    /// Whether a wait is submitted and not reaped yet.
    pub(crate) fn armed(&self) -> bool {
        self.armed_on.is_some()
    }

    /// Submits a wait on `map`'s word while its futex half is `expected`, at most a slice long.
    /// A word that no longer holds `expected` ends it at once (as `FUTEX_WAIT`'s `EAGAIN`).
    pub(crate) fn arm(&mut self, map: &MapRef, expected: u32) -> io::Result<()> {
        let address = futex_word(&map.shared().word).as_ptr().cast_const();
        let wait = opcode::FutexWait::new(address, u64::from(expected), MATCH_ANY, FUTEX2_SIZE_U32)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(FUTEX);
        let timeout = opcode::LinkTimeout::new(&raw const self.slice)
            .build()
            .user_data(TIMEOUT);
        // From here the kernel may hold the address: keep the mapping until the reap.
        self.armed_on = Some(map.clone());
        self.push(&[wait, timeout])?;
        self.uring.submit().map(drop)
    }

    /// Asks the kernel to end the submitted wait (its completion then comes as [`Ended::TimedOut`]).
    pub(crate) fn cancel(&mut self) -> io::Result<()> {
        if !self.armed() {
            return Ok(());
        }
        let cancel = opcode::AsyncCancel::new(FUTEX).build().user_data(CANCEL);
        self.push(&[cancel])?;
        self.uring.submit().map(drop)
    }

    fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        let mut queue = self.uring.submission();
        // SAFETY: the entries carry two addresses (see the module docs): the futex word, in the
        // mapping `armed_on` keeps alive until the wait's completion is reaped or the ring is
        // closed, and never read by the kernel after the submit; and the linked timeout's
        // `timespec`, a field of `self` (as long-lived as the ring), copied at the submit. An
        // `AsyncCancel` carries no address.
        unsafe { queue.push_multiple(entries) }
            .map_err(|_| io::Error::other("the io_uring submission queue is full"))
    }

    /// Reaps the completions: how the wait ended, if its completion was among them. `Err` if a
    /// deferred ring's completions cannot be run (asked from another thread than its one
    /// submitter: `EEXIST`).
    pub(crate) fn reap(&mut self) -> io::Result<Option<Ended>> {
        if let Some(fd) = &self.eventfd {
            // Reset its counter (nonblocking: `EAGAIN` when 0, fine); the kernel signals it
            // again for the next completions (and tokio's registration is edge-triggered).
            let _ = rustix::io::read(fd, &mut [0u8; 8]);
            // Run the deferred completions: a wait for one that returns at once (`ETIME` when
            // there is none).
            let now = types::Timespec::new();
            match self
                .uring
                .submitter()
                .submit_with_args(1, &types::SubmitArgs::new().timespec(&now))
            {
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EAGAIN | libc::EBUSY)
                    ) => {}
                Err(err) => return Err(err),
            }
        }
        let mut ended = None;
        for entry in self.uring.completion() {
            if entry.user_data() != FUTEX {
                continue;
            }
            self.armed_on = None;
            let errno = -entry.result();
            ended = Some(match errno {
                0 | libc::EAGAIN | libc::EINTR => Ended::Woken,
                libc::ECANCELED | libc::ETIME | libc::ETIMEDOUT => Ended::TimedOut,
                _ => Ended::Refused(errno),
            });
        }
        Ok(ended)
    }
}

/// The raw descriptor of the ring, as tokio's reactor registers it.
#[derive(Debug)]
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// A ring for futex waits, registered with the current tokio runtime's reactor for
/// readability (a completion is waiting).
pub(crate) struct FutexRing {
    /// Dropped first: tokio deregisters the descriptor while it is still open.
    readiness: AsyncFd<RingFd>,
    queue: Mutex<Queue>,
}

impl FutexRing {
    /// A new ring whose waits last `slice` at most, registered with the reactor of the tokio
    /// runtime this thread is in (which must have IO enabled, or tokio panics). `Err` where the
    /// kernel or a sandbox refuses io_uring or its futex wait.
    pub(crate) fn new(slice: Duration, single_thread: bool) -> io::Result<FutexRing> {
        let uring = new_ring(single_thread)?;
        let eventfd = if single_thread {
            let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            uring.submitter().register_eventfd(fd.as_raw_fd())?;
            Some(fd)
        } else {
            None
        };
        let fd = RingFd(
            eventfd
                .as_ref()
                .map_or(uring.as_raw_fd(), AsRawFd::as_raw_fd),
        );
        // SAFETY: `fd` is the descriptor `uring` owns, or `eventfd`; both go into the queue of
        // the same `FutexRing`, whose field order drops (and so deregisters) this registration
        // before the queue, which closes them; nothing else closes them.
        let readiness = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let slice = types::Timespec::new()
            .sec(slice.as_secs())
            .nsec(slice.subsec_nanos());
        Ok(FutexRing {
            readiness,
            queue: Mutex::new(Queue {
                uring,
                eventfd,
                slice,
                armed_on: None,
            }),
        })
    }

    /// The submission and completion side (a mutex held for a submit at most).
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ready` once the ring has completions to reap (after which [`Ready::clear`]), else
    /// `Pending` with `cx`'s waker registered; `Err` when the runtime is shutting down.
    ///
    /// Outside tokio's cooperative budget: the caller is the ring's pump, run inline by a
    /// task's poll or by its own waker, not a task's own work. Under the budget, a task that
    /// spent it would get `Pending` with the pump's waker *not* registered with the reactor
    /// but woken instead — at once where no worker runs the task (a multi-thread runtime's
    /// `block_on`), and that wake runs the pump again, which recursed until the stack overflowed.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready<'_>>> {
        let ready = tokio::task::coop::unconstrained(std::future::poll_fn(|cx| {
            self.readiness.poll_read_ready(cx)
        }));
        std::pin::pin!(ready).poll(cx).map_ok(Ready)
    }
}

/// The reactor said the ring is readable.
#[derive(Debug)]
pub(crate) struct Ready<'a>(AsyncFdReadyGuard<'a, RingFd>);

impl Ready<'_> {
    /// The completions were reaped: wait for the next readiness (a completion posted since the
    /// reactor's report is not lost: it keeps or sets the readiness again).
    pub(crate) fn clear(mut self) {
        self.0.clear_ready();
    }
}
