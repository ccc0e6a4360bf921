//! Code written against simplelock 0.4.1 that is not in its README example, but must keep
//! compiling as written.

use simplelock::LockStatus;

/// 0.4 code matches the three states without a wildcard arm.
fn describe(status: LockStatus) -> &'static str {
    match status {
        LockStatus::Mine => "mine",
        LockStatus::Taken => "taken",
        LockStatus::Open => "open",
    }
}

#[test]
fn lock_status_can_be_matched_exhaustively() {
    assert_eq!(describe(LockStatus::Mine), "mine");
    assert_eq!(describe(LockStatus::Taken), "taken");
    assert_eq!(describe(LockStatus::Open), "open");
}
