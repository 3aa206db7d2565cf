//! Scraping an example's `/metrics` (the Prometheus / OpenMetrics text
//! format, `name{labels} value`) and picking a port for its HTTP server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};

use super::Res;

/// RocksDB's key estimate per store and task: which tasks hold a store.
const ESTIMATED_KEYS: &str = "rivulet_rocksdb_estimated_keys";
/// A standby copy's lag, per task.
const STANDBY_LAG: &str = "rivulet_standby_lag_records";

/// A local address no one listens on now: the OS picks a free port, the
/// listener is dropped.
pub fn free_address() -> Res<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One sample of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics(pub Vec<Sample>);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(parse_sample).collect())
    }

    /// The sum of the samples called `name`; `None` when it has none.
    pub fn value(&self, name: &str) -> Option<f64> {
        let mut samples = self.0.iter().filter(|s| s.name == name).peekable();
        samples.peek()?;
        Some(samples.map(|s| s.value).sum())
    }

    /// As [`Metrics::value`], an error saying what is missing.
    pub fn get(&self, name: &str) -> Result<f64, String> {
        self.value(name).ok_or_else(|| format!("/metrics has no {name}"))
    }

    /// The standby copies held, by task, with their lags.
    pub fn standby_lags(&self) -> BTreeMap<String, f64> {
        self.by_label(STANDBY_LAG, "task", &[])
    }

    /// The tasks whose `store` is listed with RocksDB figures.
    pub fn store_tasks(&self, store: &str) -> BTreeSet<String> {
        self.by_label(ESTIMATED_KEYS, "task", &[("store", store)]).into_keys().collect()
    }

    /// The samples called `name` whose labels include `filter`, by the
    /// value of their label `by`.
    pub fn by_label(&self, name: &str, by: &str, filter: &[(&str, &str)]) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v)))
            .filter_map(|s| Some((s.labels.get(by)?.clone(), s.value)))
            .collect()
    }
}

/// `name{label="value",…} value [timestamp]`; `None` for comments, blank
/// lines and anything else.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, rest) = line.split_at(name_end);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inside) => parse_labels(inside)?,
        None => (BTreeMap::new(), rest),
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample { name: name.to_owned(), labels, value })
}

/// The labels after a sample's `{` up to its `}`, and what follows it.
pub fn parse_labels(mut rest: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = rest.split_once('=')?;
        let quoted = after_key.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        rest = &quoted[close + 1..];
    }
}
