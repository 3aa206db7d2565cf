//! Byte encodings that keep range scans ordered.
//!
//! Window and session store keys are `escaped(key) ++ 00 00 ++ timestamps`.
//! The escaping (`00` → `00 FF`) keeps the lexicographic order of keys and makes
//! the encoded key prefix-free: the `00 00` terminator sorts before any escaped
//! continuation, so key `a` and key `ab` never interleave and a scan for `a`
//! never returns `ab`. Timestamps are big-endian with the sign bit flipped, so
//! negative times also sort before positive ones.

/// Appends the escaped, terminated form of `key`.
pub(crate) fn push_escaped(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Splits an escaped, terminated key off the front of `bytes`: (key, rest).
pub(crate) fn split_escaped(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0 {
            match bytes.get(i + 1)? {
                0 => return Some((key, &bytes[i + 2..])),
                0xff => {
                    key.push(0);
                    i += 2;
                }
                _ => return None,
            }
        } else {
            key.push(b);
            i += 1;
        }
    }
    None
}

/// A timestamp as 8 bytes that sort like the signed value.
pub(crate) fn ts_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// Reads a timestamp written by [`ts_bytes`].
pub(crate) fn read_ts(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

/// The first byte string greater than every string that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The first byte string greater than `key` itself (for inclusive upper bounds).
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(key.len() + 1);
    s.extend_from_slice(key);
    s.push(0);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(k: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_escaped(&mut v, k);
        v
    }

    proptest! {
        #[test]
        fn escaping_round_trips_and_keeps_order(a in prop::collection::vec(any::<u8>(), 0..8), b in prop::collection::vec(any::<u8>(), 0..8), ta in any::<i64>(), tb in any::<i64>()) {
            let (ea, eb) = (esc(&a), esc(&b));
            prop_assert_eq!(split_escaped(&ea).map(|(k, rest)| (k, rest.len())), Some((a.clone(), 0)));
            prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
            // Key order wins over any timestamp suffix: no interleaving.
            let mut fa = ea.clone(); fa.extend_from_slice(&ts_bytes(ta));
            let mut fb = eb.clone(); fb.extend_from_slice(&ts_bytes(tb));
            if a != b { prop_assert_eq!(a.cmp(&b), fa.cmp(&fb)); }
            prop_assert_eq!(ta.cmp(&tb), ts_bytes(ta).cmp(&ts_bytes(tb)));
            prop_assert_eq!(read_ts(&ts_bytes(ta)), Some(ta));
        }

        /// Bad bytes never panic: decoding garbage gives `None` or a key that
        /// re-encodes to exactly the bytes it was read from.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(raw in prop::collection::vec(any::<u8>(), 0..32)) {
            if let Some((key, rest)) = split_escaped(&raw) {
                let mut again = esc(&key);
                again.extend_from_slice(rest);
                prop_assert_eq!(again, raw.clone());
            }
            match read_ts(&raw) {
                Some(ts) => prop_assert_eq!(&ts_bytes(ts)[..], &raw[..8]),
                None => prop_assert!(raw.len() < 8),
            }
            if let Some(end) = prefix_end(&raw) {
                prop_assert!(end.as_slice() > raw.as_slice() && !end.starts_with(&raw));
            }
            prop_assert!(successor(&raw).as_slice() > raw.as_slice());
        }
    }

    #[test]
    fn prefix_keys_do_not_interleave() {
        let mut a_late = esc(b"a");
        a_late.extend_from_slice(&ts_bytes(i64::MAX));
        let mut ab_early = esc(b"ab");
        ab_early.extend_from_slice(&ts_bytes(i64::MIN));
        assert!(a_late < ab_early);
        let mut a0 = esc(b"a\0");
        a0.extend_from_slice(&ts_bytes(0));
        assert!(a_late < a0, "`a` then `a\\0`");
    }
}
