//! What a lock reports about itself: [`LockStatus`], [`Holder`] and [`PreviousHolder`].

use std::fmt;
use std::time::SystemTime;

/// The state of a lock as seen by one handle when it looked.
///
/// Anything but [`Mine`](LockStatus::Mine) is a snapshot: another process may take or release
/// the lock right after the answer was computed.
///
/// The three states are complete — a lock is held by this handle, by someone else, or by
/// nobody — so the enum is exhaustive, as in simplelock 0.4: a `match` over the three needs no
/// wildcard arm. (Shared holders another shared handle could join count as `Open` for it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockStatus {
    /// This handle holds the lock.
    Mine,
    /// Someone else holds the lock in a way that excludes this handle.
    Taken,
    /// Nobody holds the lock, or only holders this handle could share it with.
    Open,
}

impl fmt::Display for LockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockStatus::Mine => "held by this handle",
            LockStatus::Taken => "held by someone else",
            LockStatus::Open => "free",
        })
    }
}

/// Who holds a lock, as far as the backend can tell.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Holder {
    /// The process id of the holder, in the pid namespace of the process that asked (or of its
    /// own machine, when [`host`](Holder::host) is set).
    pub pid: u32,
    /// When the holder acquired the lock, where the backend records it.
    pub since: Option<SystemTime>,
    /// The holder's machine, for backends that span machines (`None`: this one, or unknown).
    pub host: Option<String>,
    /// The holder's program, where the backend records it.
    pub program: Option<String>,
}

impl Holder {
    /// A holder known by its process id only.
    pub fn new(pid: u32) -> Self {
        Holder {
            pid,
            since: None,
            host: None,
            program: None,
        }
    }

    /// The same holder, with the time it acquired the lock.
    #[must_use]
    pub fn with_since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// The same holder, on the machine `host`.
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The same holder, running `program`.
    #[must_use]
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = Some(program.into());
        self
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(program) = &self.program {
            write!(f, " ({program})")?;
        }
        if let Some(host) = &self.host {
            write!(f, " on {host}")?;
        }
        if let Some(age) = self.since.and_then(|since| since.elapsed().ok()) {
            write!(f, " for {:.1}s", age.as_secs_f64())?;
        }
        Ok(())
    }
}

/// How the previous holder of a lock let go of it, as learned by the last acquisition.
///
/// A holder that dies inside its critical section (SIGKILL, OOM kill, `abort`, power loss of a
/// process) may leave half-done work behind; [`Died`](PreviousHolder::Died) tells the next
/// holder to check and repair it. Backends that cannot tell report
/// [`Unknown`](PreviousHolder::Unknown), never a guess.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PreviousHolder {
    /// The lock was free, or its previous holder released it.
    Released,
    /// The previous holder ended while holding the lock, without releasing it.
    Died,
    /// The backend cannot tell, or this handle has not acquired the lock yet.
    #[default]
    Unknown,
}

impl PreviousHolder {
    /// `true` only if the backend knows that the previous holder died while holding the lock.
    pub fn died(self) -> bool {
        self == PreviousHolder::Died
    }
}
