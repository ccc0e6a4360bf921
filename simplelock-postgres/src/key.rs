//! Name → advisory-lock key (documented on [`key_for_name`]).

use sha2::{Digest, Sha256};

/// The advisory-lock key of the lock named `name`: a stable formula that other languages can
/// reproduce.
///
/// PostgreSQL advisory locks are keyed by one `bigint` (or a pair of `int`s, a separate key
/// space we do not use). A named lock's key is
///
/// ```text
/// key = the first 8 bytes of SHA-256(UTF-8 bytes of the name), read as a big-endian signed
///       64-bit integer (two's complement)
/// ```
///
/// with no prefix, salt or normalisation, so any language takes the same lock:
///
/// ```text
/// Python: int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
/// Go:     h := sha256.Sum256([]byte(name)); key := int64(binary.BigEndian.Uint64(h[:8]))
/// SQL:    SELECT ('x' || left(encode(sha256(convert_to('deploy', 'UTF8')), 'hex'), 16))::bit(64)::bigint
/// ```
///
/// The formula is part of the crate's stable interface: changing it would let an old and a new
/// version of a program hold "the same" lock at once, so it will not change.
///
/// **Collisions.** Two different names collide with probability about n²/2⁶⁵ for n names in
/// use in one database (10⁶ names: ~3·10⁻⁸). A collision never lets two holders in; it makes the
/// two names one lock, so one job waits for an unrelated one, and `holder()` shows the other
/// job. The same goes for a name whose key happens to equal an integer key chosen by hand
/// ([`PostgresLockOptions::keyed`](crate::PostgresLockOptions::keyed)) or by another program in the same
/// database: keep hand-picked keys to a documented range, or use names everywhere.
pub fn key_for_name(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The two 32-bit halves under which PostgreSQL shows a `bigint` key in `pg_locks`
/// (`classid` = high half, `objid` = low half, `objsubid` = 1).
pub(crate) fn pg_locks_halves(key: i64) -> (i64, i64) {
    let bits = key as u64;
    ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_is_stable() {
        // SHA-256("deploy") = b7bd55c11b781b0c..., SHA-256("") = e3b0c44298fc1c14...; the value
        // for "deploy" is what the Python and SQL lines of the module docs print. Pinned so it
        // never changes.
        assert_eq!(key_for_name("deploy"), -5_206_911_306_292_520_180);
        assert_eq!(key_for_name(""), 0xe3b0_c442_98fc_1c14_u64 as i64);
        assert_ne!(key_for_name("deploy"), key_for_name("Deploy"));
    }

    #[test]
    fn halves_are_what_pg_locks_shows() {
        assert_eq!(pg_locks_halves(1), (0, 1));
        assert_eq!(pg_locks_halves(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(pg_locks_halves(0x1_0000_0002), (1, 2));
    }
}
