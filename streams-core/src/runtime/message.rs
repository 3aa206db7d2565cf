//! What stream and global threads share about reading from Kafka: turning a
//! consumed message into a [`RawRecord`], and the wall clock.

use rdkafka::message::{BorrowedMessage, Headers as _, Message};

use crate::record::Headers;
use crate::topology::RawRecord;

/// Wall-clock time, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An owned copy of a consumed message.
pub(crate) fn to_raw(m: &BorrowedMessage<'_>) -> RawRecord {
    let mut headers = Headers::new();
    if let Some(h) = m.headers() {
        for header in h.iter() {
            headers.add(header.key, header.value.map(<[u8]>::to_vec));
        }
    }
    RawRecord {
        topic: m.topic().into(),
        partition: Some(m.partition()),
        offset: Some(m.offset()),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}
