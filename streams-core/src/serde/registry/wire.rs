//! Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then
//! the encoded payload (for Protobuf, the message indexes come first).

/// The first byte of every Confluent-framed key or value.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the header: the magic byte and the schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not in Confluent's wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireFormatError {
    /// Fewer bytes than the header.
    #[error(
        "truncated payload: {len} bytes, shorter than the 5-byte Confluent header (magic byte 0, 4-byte schema id)"
    )]
    Truncated {
        /// How many bytes there were.
        len: usize,
    },
    /// A first byte other than 0: not written by a schema-registry serializer.
    #[error("unknown magic byte {found:#04x}: the Confluent wire format starts with 0x00 (was this record written without the schema registry?)")]
    UnknownMagicByte {
        /// The byte found.
        found: u8,
    },
    /// Protobuf message indexes that do not decode.
    #[error("malformed Protobuf message indexes after the schema id: {reason}")]
    MessageIndexes {
        /// What was wrong.
        reason: &'static str,
    },
}

/// Starts a framed payload for schema `id`; append the encoded bytes to it.
pub fn header(id: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + capacity);
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out
}

/// Splits framed bytes into the schema id and the payload after the header.
pub fn split(data: &[u8]) -> Result<(u32, &[u8]), WireFormatError> {
    match data {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [found, ..] if *found != MAGIC_BYTE => Err(WireFormatError::UnknownMagicByte { found: *found }),
        _ => Err(WireFormatError::Truncated { len: data.len() }),
    }
}

/// Appends Confluent's Protobuf message indexes: the path of the message in
/// the schema file (`[0]`, the first top-level message, is the single byte 0).
pub fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(i64::try_from(indexes.len()).unwrap_or(i64::MAX), out);
    for &i in indexes {
        write_zigzag(i64::from(i), out);
    }
}

/// Reads Confluent's Protobuf message indexes from the front of `data`.
pub fn read_message_indexes(data: &[u8]) -> Result<(Vec<i32>, &[u8]), WireFormatError> {
    let (count, mut rest) = read_zigzag(data)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    // A count beyond the bytes left cannot be real: refuse it before allocating.
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or(WireFormatError::MessageIndexes { reason: "negative or impossible index count" })?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let (i, r) = read_zigzag(rest)?;
        let i = i32::try_from(i).map_err(|_| WireFormatError::MessageIndexes { reason: "index out of range" })?;
        if i < 0 {
            return Err(WireFormatError::MessageIndexes { reason: "negative index" });
        }
        indexes.push(i);
        rest = r;
    }
    Ok((indexes, rest))
}

fn write_zigzag(v: i64, out: &mut Vec<u8>) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_zigzag(data: &[u8]) -> Result<(i64, &[u8]), WireFormatError> {
    let mut n: u64 = 0;
    for (i, &b) in data.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let v = ((n >> 1) as i64) ^ -((n & 1) as i64);
            return Ok((v, &data[i + 1..]));
        }
    }
    Err(WireFormatError::MessageIndexes { reason: "truncated or overlong varint" })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut framed = header(0x01020304, 3);
        framed.extend_from_slice(b"abc");
        assert_eq!(framed, [0, 1, 2, 3, 4, b'a', b'b', b'c']);
        assert_eq!(split(&framed), Ok((0x01020304, &b"abc"[..])));
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(split(&[]), Err(WireFormatError::Truncated { len: 0 }));
        assert_eq!(split(&[0, 0, 1]), Err(WireFormatError::Truncated { len: 3 }));
        assert_eq!(split(&[1, 0, 0, 0, 1, 9]), Err(WireFormatError::UnknownMagicByte { found: 1 }));
    }

    #[test]
    fn message_indexes_round_trip() {
        for path in [vec![0], vec![1], vec![0, 2], vec![3, 1, 70]] {
            let mut out = Vec::new();
            write_message_indexes(&path, &mut out);
            out.push(42);
            let (read, rest) = read_message_indexes(&out).unwrap();
            assert_eq!(read, path);
            assert_eq!(rest, [42]);
        }
        // Confluent's encodings: [0] is one zero byte; [1] is count 1 (0x02), index 1 (0x02).
        let mut out = Vec::new();
        write_message_indexes(&[1], &mut out);
        assert_eq!(out, [2, 2]);
        assert!(read_message_indexes(&[0x80]).is_err());
        assert!(read_message_indexes(&[0x7e]).is_err());
    }
}
