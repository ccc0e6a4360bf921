//! Waiting for a lock file to change, for `timed_lock`: an inotify watch (Linux; elsewhere
//! `sys/wait.rs` has no waiter, and the caller polls with a backoff).
//!
//! flock has no timed wait, and a blocking `flock` can only be cut short by a signal, which a
//! library must not install. So a timed waiter sleeps until something happens to the file: a
//! simplelock holder's release rewrites the record (`IN_MODIFY`), and a holder that dies has its
//! descriptor closed by the kernel (`IN_CLOSE_WRITE` / `IN_CLOSE_NOWRITE`). Both wake the
//! waiter within microseconds; it then tries the lock again. Releases that touch nothing
//! (`flock -u`, a read-only or foreign holder) are caught by the caller's bounded backoff.

use std::fs::File;
use std::time::Duration;

use crate::sys::Wake;

pub(crate) use linux::Waiter;

mod linux {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::Mutex;

    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use rustix::io::Errno;

    use super::*;

    /// What wakes a waiter: the file was closed (a holder ended), its attributes or links
    /// changed, or it was deleted or moved; and, for a file with a holder record, written (a
    /// release or an acquisition rewrote the record). Writes to any other file are the holder's
    /// data, which says nothing about the lock: they do not wake the waiter.
    const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
        .union(WatchFlags::CLOSE_NOWRITE)
        .union(WatchFlags::ATTRIB)
        .union(WatchFlags::DELETE_SELF)
        .union(WatchFlags::MOVE_SELF);

    /// Idle inotify instances of this process (whose pid is kept with them), for the next wait.
    ///
    /// Closing an inotify instance makes the kernel wait for an RCU grace period: about 0.5 ms
    /// on average here, sometimes several — measured, and it would land on every handoff, since
    /// a waiter closes its instance right after it got the lock. So instances are kept and
    /// reused; a wait only adds and removes its watch (about 4 µs). The pool keeps at most
    /// [`MAX_IDLE`] of them: the per-user limit of instances is small (128 by default), and an
    /// instance kept idle is one another program of the user cannot have. The rest are closed
    /// when their wait ends.
    ///
    /// Only `try_lock` is used on the pool: a fork can copy it locked by another thread, and a
    /// waiter must never hang on that. A failed `try_lock` just costs a fresh instance (or, on
    /// the way back, a slow close). The pid tells a forked child that the instances it sees are
    /// its parent's (shared with it): it lets go of its copies and starts its own pool.
    static IDLE: Mutex<(u32, Vec<OwnedFd>)> = Mutex::new((0, Vec::new()));

    /// How many idle instances a process keeps at most.
    const MAX_IDLE: usize = 4;

    fn pooled() -> Option<OwnedFd> {
        let mut idle = IDLE.try_lock().ok()?;
        let pid = crate::sys::current_pid();
        if idle.0 != pid {
            // The parent's instances: closing our copies is cheap (the parent keeps them open).
            idle.1.clear();
            idle.0 = pid;
        }
        idle.1.pop()
    }

    fn give_back(inotify: OwnedFd) {
        if let Ok(mut idle) = IDLE.try_lock() {
            let pid = crate::sys::current_pid();
            if (idle.0 == pid || idle.1.is_empty()) && idle.1.len() < MAX_IDLE {
                idle.0 = pid;
                idle.1.push(inotify);
            }
        }
    }

    /// An inotify instance watching one open file.
    #[derive(Debug)]
    pub(crate) struct Waiter {
        /// Taken out only by `drop`, which gives it back to the pool.
        inotify: Option<OwnedFd>,
        watch: i32,
    }

    impl Waiter {
        /// A watch on the inode `file` has open (and on its writes if `writes`), or `None` if
        /// inotify is not available (no more instances for this user, `/proc` not mounted, ...).
        ///
        /// The watch goes through `/proc/self/fd/N`, which names the open inode itself, not
        /// whatever the lock's path names now.
        pub(crate) fn new(file: &File, writes: bool) -> Option<Waiter> {
            let inotify = match pooled() {
                Some(inotify) => inotify,
                None => inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?,
            };
            let path = format!("/proc/self/fd/{}", file.as_raw_fd());
            let events = if writes {
                EVENTS | WatchFlags::MODIFY
            } else {
                EVENTS
            };
            let Ok(watch) = inotify::add_watch(&inotify, path, events) else {
                give_back(inotify);
                return None;
            };
            let waiter = Waiter {
                inotify: Some(inotify),
                watch,
            };
            // Events left from an earlier use of the instance are not about this wait.
            waiter.drain();
            Some(waiter)
        }

        pub(crate) fn fd(&self) -> &OwnedFd {
            // Taken out only by `drop`, after which nothing calls this.
            self.inotify
                .as_ref()
                .expect("the waiter's inotify instance")
        }

        /// Wait at most `timeout` for an event on the file, and consume the events.
        pub(crate) fn wait(&self, timeout: Duration) -> Wake {
            let timeout = Timespec {
                tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: timeout.subsec_nanos().into(),
            };
            let mut fds = [PollFd::new(self.fd(), PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => Wake::Timeout,
                Ok(_) => {
                    self.drain();
                    Wake::Event
                }
                Err(Errno::INTR) => Wake::Interrupted,
                // Cannot happen with a valid descriptor; treat it as a timeout, so the caller
                // goes on with its backoff rather than spinning.
                Err(_) => Wake::Timeout,
            }
        }

        /// Read and drop the pending events (the descriptor is non-blocking).
        pub(crate) fn drain(&self) {
            let mut buf = [0u8; 1024];
            loop {
                match rustix::io::read(self.fd(), &mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(Errno::INTR) => {}
                    _ => return, // EAGAIN: all read
                }
            }
        }
    }

    impl Drop for Waiter {
        fn drop(&mut self) {
            let _ = inotify::remove_watch(self.fd(), self.watch);
            self.drain(); // the IN_IGNORED the removal queued, and anything else
            if let Some(inotify) = self.inotify.take() {
                give_back(inotify);
            }
        }
    }
}
