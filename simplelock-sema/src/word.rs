//! The lock word: one 64-bit value in shared memory that says who holds the lock.
//!
//! ```text
//!  63                          32 31 30                      0
//! +------------------------------+--+-------------------------+
//! | start time of the owner      |W | process id of the owner |
//! | (low 32 bits, clock ticks)   |  |                         |
//! +------------------------------+--+-------------------------+
//! ```
//!
//! - `0` is free: a new, zero-filled object is a free lock.
//! - A process's *token* is its process id in the low half and the low 32 bits of its start time
//!   (field 22 of `/proc/PID/stat`) in the high half. The pair names one process: a process id
//!   can be reused, but not by a process that started in the same clock tick.
//! - `W` (bit 31) says that a waiter may be asleep on the futex, so the release must wake one.
//!   The low half, with `W`, is the futex word.
//! - [`REMOVED`] marks an object whose name was unlinked by `remove`: its process id field is
//!   larger than any Linux process id can be.

/// A waiter may be asleep: the release must wake it.
pub(crate) const WAITERS: u64 = 1 << 31;

/// The process id field of the word.
const PID_MASK: u64 = WAITERS - 1;

/// Linux process ids are at most `PID_MAX_LIMIT` = 2^22 on 64-bit systems; a token needs the
/// process id to stay below this bound so that it can never look like [`REMOVED`].
pub(crate) const PID_LIMIT: u32 = 1 << 30;

/// The name of this object was unlinked; open the name again. No token has this value, because
/// its process id field (2^31 - 1) is above [`PID_LIMIT`].
pub(crate) const REMOVED: u64 = PID_MASK;

/// Like [`REMOVED`], and the remover had taken the lock over from a dead holder: whoever opens
/// the name again and creates the new object creates it held by [`DEAD_HOLDER`].
pub(crate) const REMOVED_AFTER_DEATH: u64 = PID_MASK - 1;

/// The holder of a new object made after a removal that followed a death: a token of no
/// process (its process id field is above [`PID_LIMIT`]), so the next locker finds it dead,
/// takes over and reports that its predecessor died.
pub(crate) const DEAD_HOLDER: u64 = PID_MASK - 2;

/// What a value of the lock word means, and what an acquisition does in each state (the steps of
/// `SemaphoreLock::acquire_slow`; the fast path is the first row alone, one compare-and-swap):
///
/// | state | value | an acquirer | a release |
/// |---|---|---|---|
/// | [`Free`](Word::Free) | `0` | claims it: CAS `0` → its token (with `W` and one more wake if it slept) | — |
/// | [`Held`](Word::Held) by a live owner | token, `W` clear | sets `W`, sleeps on the futex (a slice at most, never past its deadline) | CAS token → `0` |
/// | [`Held`](Word::Held) by a live owner | token, `W` set | sleeps on the futex | CAS → `0`, wakes one waiter |
/// | [`Held`](Word::Held) by a dead owner | token of a dead process (or [`DEAD_HOLDER`]) | takes over: CAS → its token, and reports the death | — |
/// | [`Held`](Word::Held) by its own thread | its token, holder thread is this one | [`WouldDeadlock`](simplelock_core::SimpleLockError::WouldDeadlock) when waiting forever; otherwise waits | — |
/// | [`Removed`](Word::Removed) | [`REMOVED`] / [`REMOVED_AFTER_DEATH`] | opens the name again (the new object, created held by [`DEAD_HOLDER`] after a death) and starts over | — |
///
/// An owner is checked for life (`/proc/PID/stat`) only once it has held the lock for a whole
/// slice while one waiter watched, and before that waiter gives up, so a normal handoff reads no
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// Nobody holds the lock.
    Free,
    /// The name was unlinked: this object is retired; `died` if its last holder had died.
    Removed { died: bool },
    /// `owner` (a token) holds the lock; `waiters` if the `W` bit is set.
    Held { owner: u64, waiters: bool },
}

impl Word {
    pub(crate) fn decode(value: u64) -> Word {
        match value {
            0 => Word::Free,
            REMOVED => Word::Removed { died: false },
            REMOVED_AFTER_DEATH => Word::Removed { died: true },
            _ => Word::Held {
                owner: value & !WAITERS,
                waiters: value & WAITERS != 0,
            },
        }
    }
}

/// The token of the process `pid` that started at `start` clock ticks after boot.
///
/// Returns `None` for a process id that does not fit below [`PID_LIMIT`] (or is 0).
pub(crate) fn token(pid: u32, start: u64) -> Option<u64> {
    if pid == 0 || pid >= PID_LIMIT {
        return None;
    }
    Some(((start & 0xffff_ffff) << 32) | u64::from(pid))
}

/// The process id in a token or word.
pub(crate) fn pid_of(value: u64) -> u32 {
    // The mask keeps 31 bits, so the value fits.
    (value & PID_MASK) as u32
}

/// The start time (low 32 bits) in a token or word.
pub(crate) fn start_of(value: u64) -> u32 {
    (value >> 32) as u32
}

/// The low half of a word: what the futex compares.
pub(crate) fn futex_half(value: u64) -> u32 {
    (value & 0xffff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_collide_with_the_special_values() {
        for pid in [1, 2, 4242, (1 << 22) - 1, PID_LIMIT - 1] {
            for start in [0, 1, 0xffff_ffff, 0x1_0000_0001, u64::MAX] {
                let t = token(pid, start).unwrap();
                assert_ne!(t, 0);
                assert_ne!(t, REMOVED);
                assert_ne!(t, REMOVED_AFTER_DEATH);
                assert_ne!(t, DEAD_HOLDER);
                assert_eq!(t & WAITERS, 0, "a token never has the waiters bit");
                assert_eq!(pid_of(t), pid);
                assert_eq!(start_of(t), (start & 0xffff_ffff) as u32);
                assert_eq!(
                    Word::decode(t | WAITERS),
                    Word::Held {
                        owner: t,
                        waiters: true
                    }
                );
                assert_eq!(futex_half(t | WAITERS), pid | (1 << 31));
            }
        }
    }

    #[test]
    fn impossible_process_ids_have_no_token() {
        assert_eq!(token(0, 5), None);
        assert_eq!(token(PID_LIMIT, 5), None);
        assert_eq!(token(u32::MAX, 5), None);
    }

    #[test]
    fn special_values_decode() {
        assert_eq!(Word::decode(0), Word::Free);
        assert_eq!(Word::decode(REMOVED), Word::Removed { died: false });
        assert_eq!(
            Word::decode(REMOVED_AFTER_DEATH),
            Word::Removed { died: true }
        );
        assert!(pid_of(DEAD_HOLDER) >= PID_LIMIT);
        assert!(matches!(Word::decode(DEAD_HOLDER), Word::Held { .. }));
        assert!(pid_of(REMOVED) >= PID_LIMIT);
    }
}
