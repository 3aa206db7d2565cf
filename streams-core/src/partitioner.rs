//! The partitioning of Kafka's Java client: murmur2 of the key bytes, so that
//! records keyed by Rivulet and by JVM producers land on the same partitions
//! (librdkafka's `partitioner=murmur2_random` does the same for keyed records).

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), as a signed 32-bit hash.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    // Kafka mixes in the length as a Java int: only its low 32 bits.
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a key:
/// `toPositive(murmur2(key)) % partitions`. `None` when `partitions` < 1.
pub fn partition_for_key(key: &[u8], partitions: i32) -> Option<i32> {
    (partitions >= 1).then(|| (murmur2(key) & 0x7fff_ffff) % partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with `org.apache.kafka.common.utils.Utils.murmur2` of kafka-clients 4.1.1.
    const JAVA: &[(&str, i32, i32)] = &[
        ("21", -973_932_308, 4),
        ("foobar", -790_332_482, 6),
        ("a-little-bit-long-string", -985_981_536, 0),
        ("a-little-bit-longer-string", -1_486_304_829, 3),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971, 5),
        ("abc", 479_470_107, 3),
        ("", 275_646_681, 1),
        ("card-42", -1_180_489_753, 7),
    ];

    #[test]
    fn matches_the_java_client() {
        for (key, hash, partition_of_8) in JAVA {
            assert_eq!(murmur2(key.as_bytes()), *hash, "murmur2({key:?})");
            assert_eq!(partition_for_key(key.as_bytes(), 8), Some(*partition_of_8), "partition of {key:?}");
        }
        assert_eq!(partition_for_key(b"x", 0), None);
    }
}
