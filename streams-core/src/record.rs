//! Records, their headers, and where they came from.

/// One record header: a key and an optional value, as Kafka allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value; `None` is a null header value.
    pub value: Option<Vec<u8>>,
}

/// The ordered headers of a record. Keys may repeat, as in Kafka.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header (existing headers with the same key are kept).
    pub fn add(&mut self, key: impl Into<String>, value: Option<impl Into<Vec<u8>>>) -> &mut Self {
        self.entries.push(Header { key: key.into(), value: value.map(Into::into) });
        self
    }

    /// Removes every header with this key.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.entries.retain(|h| h.key != key);
        self
    }

    /// The last header with this key, as Kafka's `lastHeader`.
    pub fn last_header(&self, key: &str) -> Option<&Header> {
        self.entries.iter().rev().find(|h| h.key == key)
    }

    /// Every header with this key, in order.
    pub fn headers<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        self.entries.iter().filter(move |h| h.key == key)
    }

    /// All headers, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.entries.iter()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl FromIterator<Header> for Headers {
    fn from_iter<I: IntoIterator<Item = Header>>(iter: I) -> Self {
        Self { entries: iter.into_iter().collect() }
    }
}

/// A record flowing through a topology: key, value, timestamp (ms since the
/// epoch) and headers.
///
/// Nullability is part of the types: a topic whose keys may be null is read
/// with an `Option<K>` key (see [`Nullable`](crate::serde::Nullable)); a KTable
/// tombstone is a `None` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    key: K,
    value: V,
    timestamp: i64,
    headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Self { key, value, timestamp, headers: Headers::new() }
    }

    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The timestamp, in milliseconds since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change them.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The same record with another key (and possibly key type).
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record { key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another value (and possibly value type).
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The same record with these headers instead of its own.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// Key, value, timestamp and headers, taken apart.
    pub fn into_parts(self) -> (K, V, i64, Headers) {
        (self.key, self.value, self.timestamp, self.headers)
    }
}

/// Where the record being processed was read from.
///
/// Present while a record from a source topic is processed; absent inside a
/// punctuation, which is not caused by any one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// The source topic (shared: the records of one topic share its name).
    pub topic: std::sync::Arc<str>,
    /// The partition of the source topic.
    pub partition: i32,
    /// The offset within that partition.
    pub offset: i64,
}
