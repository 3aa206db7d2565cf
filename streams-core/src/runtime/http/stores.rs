//! Interactive queries over HTTP: any instance answers for any key.
//!
//! A key's task is found as the runtime partitions it (the store's key
//! serde, Kafka's murmur2 partitioner over the task count); when this
//! instance runs the task the answer is local, otherwise the request goes
//! one hop to the task's owner from the endpoints map, marked with
//! [`FORWARDED`] so that it never travels further. Key ranges gather every
//! instance's local entries and merge them in serialized-key order.
//!
//! Status codes: 400 for what the caller can fix (unknown store, wrong kind
//! of store, a key or bound that does not parse, `from` > `to`); 404 for a
//! key without value; 503 with `Retry-After` while the answer cannot be
//! complete (a rebalance, a restore, an owner that does not answer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::{guard, metadata, Env, State};
use crate::store::{JsonEntry, JsonQueryError, JsonView, LocalStores, StoreEntry, StoreKind};
use crate::task_engine::TaskId;

/// Marks a request one instance sends another: answer from local state only.
pub(super) const FORWARDED: &str = "x-rivulet-forwarded";
/// On an answer from a standby copy: `true`.
const STALE: &str = "x-rivulet-stale";
/// On an answer from a standby copy: the copy's lag in changelog records.
const STANDBY_LAG: &str = "x-rivulet-standby-lag";

/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

/// What the query handlers share.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) env: Arc<Env>,
    pub(super) client: reqwest::Client,
}

impl axum::extract::FromRef<Shared> for Arc<Env> {
    fn from_ref(shared: &Shared) -> Self {
        Arc::clone(&shared.env)
    }
}

/// A failed query, as its HTTP answer.
#[derive(Debug)]
enum Failure {
    BadRequest(String),
    NotFound(String),
    Unavailable(String),
    Internal(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Unavailable(m) => {
                let body = Json(json!({ "error": m }));
                return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, RETRY_AFTER_SECS)], body)
                    .into_response();
            }
            Self::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<JsonQueryError> for Failure {
    fn from(e: JsonQueryError) -> Self {
        match e {
            JsonQueryError::BadKey(_) => Self::BadRequest(e.to_string()),
            JsonQueryError::Store(crate::error::StreamsError::InvalidStateStore { .. }) => {
                Self::Unavailable(e.to_string())
            }
            JsonQueryError::Store(_) => Self::Internal(e.to_string()),
        }
    }
}

/// The store's kind, as the endpoints name it.
pub(super) fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::KeyValue => "key_value",
        StoreKind::Window { .. } => "window",
        StoreKind::Session { .. } => "session",
    }
}

/// The store's JSON view, checked to be of kind `want`.
fn view(env: &Env, store: &str, want: &'static str) -> Result<Arc<dyn JsonView>, Failure> {
    let builder = env.topology.stores.iter().find(|s| s.name() == store).ok_or_else(|| {
        let known: Vec<&str> = env.topology.stores.iter().map(|s| s.name()).collect();
        Failure::BadRequest(format!("unknown store `{store}`; this application's stores: {known:?}"))
    })?;
    let kind = kind_name(builder.supplier().kind());
    if kind != want {
        let hint = match kind {
            "window" => "query /stores/{store}/keys/{key}/windows",
            "session" => "query /stores/{store}/keys/{key}/sessions",
            _ => "query /stores/{store}/keys/{key}",
        };
        return Err(Failure::BadRequest(format!("store `{store}` is a {kind} store, not a {want} store: {hint}")));
    }
    Ok(Arc::clone(builder.json()))
}

fn running(env: &Env, store: &str) -> Result<(), Failure> {
    match env.lifecycle.state() {
        // Tasks restoring or moving during a rebalance answer 503 by themselves.
        State::Running | State::Rebalancing => Ok(()),
        state => Err(Failure::Unavailable(format!("store `{store}` is not queryable while the client is {state}"))),
    }
}

/// This instance's name in answers.
fn own_host(env: &Env) -> String {
    env.membership.endpoint.clone().unwrap_or_default()
}

/// This instance's restored partitions of `store`: all of them, or those
/// of one task.
fn local(env: &Env, store: &str, task: Option<TaskId>) -> LocalStores {
    let entries: Vec<StoreEntry> = if let Some(global) = env.global_stores.get(store) {
        vec![global.clone()]
    } else {
        guard(&env.local_stores)
            .iter()
            .filter(|(id, _)| task.is_none_or(|t| t == **id))
            .flat_map(|(_, stores)| stores.iter().filter(|(n, _)| n == store).map(|(_, e)| e.clone()))
            .collect()
    };
    LocalStores::new(store.to_owned(), entries)
}

/// Where the answer for `key_text` of `store` comes from.
enum Route {
    /// This instance (the task, `None` for a global store).
    Local(Option<TaskId>),
    /// Another instance, by endpoint, for the task.
    Remote(String, TaskId),
    /// No instance known to run the task (a rebalance): a standby copy
    /// held here may answer, stale; else 503 with the reason.
    Nowhere(TaskId, String),
}

fn route(env: &Env, store: &str, view: &dyn JsonView, key_text: &str, forwarded: bool) -> Result<Route, Failure> {
    let key = view.key_bytes(key_text)?;
    let task = metadata::task_for_key(env, store, &key).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let Some(task) = task else { return Ok(Route::Local(None)) };
    if guard(&env.local_stores).contains_key(&task) {
        return Ok(Route::Local(Some(task)));
    }
    let runs_here = guard(&env.tasks).values().any(|t| t.contains(&task));
    if runs_here {
        return Err(Failure::Unavailable(format!("task {task} of store `{store}` is restoring here")));
    }
    if forwarded {
        return Err(Failure::Unavailable(format!("task {task} of store `{store}` has moved away from this instance")));
    }
    match env.membership.owners().remove(&task) {
        Some(owner) if Some(&owner) != env.membership.endpoint.as_ref() => Ok(Route::Remote(owner, task)),
        _ => Ok(Route::Nowhere(task, format!("no instance is known to run task {task} of store `{store}` yet"))),
    }
}

/// The answer of this instance's standby copy of `task` (`"stale": true`,
/// with the copy's lag in changelog records), when it holds one.
fn stale_get(env: &Env, store: &str, task: TaskId, view: &dyn JsonView, key: &str) -> Option<Response> {
    let (answer, lag) =
        env.standbys.read_copy(store, task, |entries| view.get(LocalStores::new(store.to_owned(), entries), key))?;
    Some(match answer {
        Ok(Some(e)) => {
            let body = json!({ "key": e.key, "value": e.value, "host": own_host(env), "stale": true, "lag": lag });
            marked_stale(Json(body).into_response(), lag)
        }
        Ok(None) => Failure::NotFound(format!("no value for key `{key}` in the standby copy of store `{store}`"))
            .into_response(),
        Err(e) => Failure::from(e).into_response(),
    })
}

/// The answer of this instance's standby copy of `task` to a window or
/// session query: the same JSON array the owner gives, marked stale in the
/// headers (`x-rivulet-stale: true`, `x-rivulet-standby-lag`), when it holds
/// a copy.
fn stale_list(
    env: &Env,
    store: &str,
    task: TaskId,
    read: impl FnOnce(LocalStores) -> Result<Vec<Value>, JsonQueryError>,
) -> Option<Response> {
    let (answer, lag) =
        env.standbys.read_copy(store, task, |entries| read(LocalStores::new(store.to_owned(), entries)))?;
    Some(match answer {
        Ok(list) => marked_stale(Json(list).into_response(), lag),
        Err(e) => Failure::from(e).into_response(),
    })
}

/// Marks an answer as coming from a standby copy `lag` records behind.
fn marked_stale(mut response: Response, lag: u64) -> Response {
    let headers = response.headers_mut();
    headers.insert(STALE, header::HeaderValue::from_static("true"));
    headers.insert(STANDBY_LAG, header::HeaderValue::from(lag));
    response
}

/// The checks every single-key query makes (a store of kind `want`, a
/// running client), and where its answer comes from.
fn prepare(
    env: &Env,
    store: &str,
    want: &'static str,
    key: &str,
    headers: &HeaderMap,
) -> Result<(Route, Arc<dyn JsonView>), Failure> {
    let view = view(env, store, want)?;
    running(env, store)?;
    Ok((route(env, store, &*view, key, is_forwarded(headers))?, view))
}

fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
}

/// Sends the same request to `owner` and relays its answer. When the owner
/// does not answer (down, not yet noticed by the group), `stale` (this
/// instance's standby copy) answers instead if it can; else 503.
async fn forward(
    client: &reqwest::Client,
    owner: &str,
    path_and_query: &str,
    stale: impl FnOnce() -> Option<Response>,
) -> Response {
    match ask(client, owner, path_and_query).await {
        Ok((status, body)) => relay(status, body),
        Err(e) => stale().unwrap_or_else(|| Failure::Unavailable(e).into_response()),
    }
}

/// An owner's answer, passed on.
fn relay(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    response
}

/// One forwarded request: the status and JSON body of the answer.
async fn ask(client: &reqwest::Client, owner: &str, path_and_query: &str) -> Result<(u16, Value), String> {
    let url = format!("http://{owner}{path_and_query}");
    let answer = client
        .get(&url)
        .header(FORWARDED, "1")
        .timeout(FORWARD_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("the owner {owner} did not answer: {e}"))?;
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.map_err(|e| format!("the owner {owner} did not answer in full: {e}"))?;
    let body = serde_json::from_slice(&bytes).map_err(|e| format!("the owner {owner} answered with bad JSON: {e}"))?;
    Ok((status, body))
}

fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_path(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `GET /stores/{store}/keys/{key}`.
pub(super) async fn get_key(
    AxumState(shared): AxumState<Shared>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let env = &shared.env;
    let answer = prepare(env, &store, "key_value", &key, &headers);
    match answer {
        Ok((Route::Local(task), view)) => match view.get(local(env, &store, task), &key) {
            Ok(Some(entry)) => {
                Json(json!({ "key": entry.key, "value": entry.value, "host": own_host(env) })).into_response()
            }
            Ok(None) => Failure::NotFound(format!("no value for key `{key}` in store `{store}`")).into_response(),
            Err(e) => Failure::from(e).into_response(),
        },
        Ok((Route::Remote(owner, task), view)) => {
            let path = format!("/stores/{}/keys/{}", encode_path(&store), encode_path(&key));
            forward(&shared.client, &owner, &path, || stale_get(env, &store, task, &*view, &key)).await
        }
        Ok((Route::Nowhere(task, reason), view)) => {
            stale_get(env, &store, task, &*view, &key).unwrap_or_else(|| Failure::Unavailable(reason).into_response())
        }
        Err(failure) => failure.into_response(),
    }
}

/// The bounds of a time query.
#[derive(Debug, Deserialize)]
pub(super) struct TimeRange {
    from: Option<String>,
    to: Option<String>,
}

fn millis(name: &str, text: Option<&str>, default: i64) -> Result<i64, Failure> {
    match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| Failure::BadRequest(format!("`{name}` must be milliseconds since the epoch, not `{t}`"))),
    }
}

/// `GET /stores/{store}/keys/{key}/windows?from=MS&to=MS` (window stores).
pub(super) async fn get_windows(
    AxumState(shared): AxumState<Shared>,
    Path((store, key)): Path<(String, String)>,
    Query(range): Query<TimeRange>,
    headers: HeaderMap,
) -> Response {
    let env = &shared.env;
    let answer = (|| {
        let view = view(env, &store, "window")?;
        let from = millis("from", range.from.as_deref(), 0)?;
        let to = millis("to", range.to.as_deref(), i64::MAX)?;
        if from > to {
            return Err(Failure::BadRequest(format!("`from` ({from}) is after `to` ({to})")));
        }
        running(env, &store)?;
        Ok((route(env, &store, &*view, &key, is_forwarded(&headers))?, view, from, to))
    })();
    match answer {
        Ok((Route::Local(task), view, from, to)) => match view.windows(local(env, &store, task), &key, from, to) {
            Ok(windows) => Json(windows).into_response(),
            Err(e) => Failure::from(e).into_response(),
        },
        Ok((Route::Nowhere(task, reason), view, from, to)) => {
            stale_list(env, &store, task, |copy| view.windows(copy, &key, from, to))
                .unwrap_or_else(|| Failure::Unavailable(reason).into_response())
        }
        Ok((Route::Remote(owner, task), view, from, to)) => {
            let query = encode_query(&[("from", Some(from.to_string())), ("to", Some(to.to_string()))]);
            let path = format!("/stores/{}/keys/{}/windows{query}", encode_path(&store), encode_path(&key));
            let stale = || stale_list(env, &store, task, |copy| view.windows(copy, &key, from, to));
            forward(&shared.client, &owner, &path, stale).await
        }
        Err(failure) => failure.into_response(),
    }
}

/// `GET /stores/{store}/keys/{key}/sessions` (session stores).
pub(super) async fn get_sessions(
    AxumState(shared): AxumState<Shared>,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let env = &shared.env;
    let answer = prepare(env, &store, "session", &key, &headers);
    match answer {
        Ok((Route::Local(task), view)) => match view.sessions(local(env, &store, task), &key) {
            Ok(sessions) => Json(sessions).into_response(),
            Err(e) => Failure::from(e).into_response(),
        },
        Ok((Route::Nowhere(task, reason), view)) => stale_list(env, &store, task, |copy| view.sessions(copy, &key))
            .unwrap_or_else(|| Failure::Unavailable(reason).into_response()),
        Ok((Route::Remote(owner, task), view)) => {
            let path = format!("/stores/{}/keys/{}/sessions", encode_path(&store), encode_path(&key));
            forward(&shared.client, &owner, &path, || stale_list(env, &store, task, |copy| view.sessions(copy, &key)))
                .await
        }
        Err(failure) => failure.into_response(),
    }
}

/// The bounds of a key range.
#[derive(Debug, Deserialize)]
pub(super) struct KeyRange {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

/// The default and the largest `limit` of a key range.
const DEFAULT_LIMIT: usize = 1000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// `GET /stores/{store}/keys?from=&to=&limit=`: the range over every
/// instance, in serialized-key order.
pub(super) async fn get_range(
    AxumState(shared): AxumState<Shared>,
    Path(store): Path<String>,
    Query(range): Query<KeyRange>,
    headers: HeaderMap,
) -> Response {
    let env = &shared.env;
    let forwarded = is_forwarded(&headers);
    let checked = (|| {
        let view = view(env, &store, "key_value")?;
        let limit = match range.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(t) => t
                .trim()
                .parse::<usize>()
                .map_err(|_| Failure::BadRequest(format!("`limit` must be a non-negative integer, not `{t}`")))?,
        };
        if let (Some(from), Some(to)) = (range.from.as_deref(), range.to.as_deref()) {
            if view.key_bytes(from)? > view.key_bytes(to)? {
                return Err(Failure::BadRequest(format!("`from` ({from}) sorts after `to` ({to})")));
            }
        }
        running(env, &store)?;
        Ok((view, limit))
    })();
    let (view, limit) = match checked {
        Ok(v) => v,
        Err(failure) => return failure.into_response(),
    };
    let own = match view.range(local(env, &store, None), range.from.as_deref(), range.to.as_deref()) {
        Ok(entries) => entries,
        Err(e) => return Failure::from(e).into_response(),
    };
    let host = own_host(env);
    if forwarded {
        let entries: Vec<Value> = own
            .iter()
            .take(limit)
            .map(|e| json!({ "key": e.key, "value": e.value, "host": host, "key_bytes": hex(&e.key_bytes) }))
            .collect();
        return Json(entries).into_response();
    }
    let remotes = match remote_owners(env, &store) {
        Ok(r) => r,
        Err(failure) => return failure.into_response(),
    };
    let query =
        encode_query(&[("from", range.from.clone()), ("to", range.to.clone()), ("limit", Some(limit.to_string()))]);
    let path = format!("/stores/{}/keys{query}", encode_path(&store));
    let answers = futures::future::join_all(remotes.iter().map(|owner| ask(&shared.client, owner, &path))).await;
    let mut merged: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
    for e in own {
        merged.entry(e.key_bytes.clone()).or_insert_with(|| entry_json(&e, &host));
    }
    for (owner, answer) in remotes.iter().zip(answers) {
        let entries = match answer {
            Ok((200, Value::Array(entries))) => entries,
            Ok((status, body)) => {
                return Failure::Unavailable(format!("instance {owner} answered {status}: {body}")).into_response()
            }
            Err(e) => return Failure::Unavailable(e).into_response(),
        };
        for mut e in entries {
            let Some(bytes) = e.get("key_bytes").and_then(Value::as_str).and_then(unhex) else {
                return Failure::Unavailable(format!("instance {owner} answered an entry without its key"))
                    .into_response();
            };
            if let Some(obj) = e.as_object_mut() {
                obj.remove("key_bytes");
            }
            merged.entry(bytes).or_insert(e);
        }
    }
    Json(merged.into_values().take(limit).collect::<Vec<_>>()).into_response()
}

fn entry_json(e: &JsonEntry, host: &str) -> Value {
    json!({ "key": e.key, "value": e.value, "host": host })
}

/// The other instances that own partitions of `store`; fails when a
/// partition has no known owner, or one of this instance's is restoring.
fn remote_owners(env: &Env, store: &str) -> Result<BTreeSet<String>, Failure> {
    let Some((subtopology, partitions)) =
        metadata::store_subtopology(env, store).map_err(|e| Failure::BadRequest(e.to_string()))?
    else {
        return Ok(BTreeSet::new());
    };
    let listed = guard(&env.local_stores);
    let owners = env.membership.owners();
    let mut remotes = BTreeSet::new();
    for partition in 0..partitions {
        let task = TaskId { subtopology, partition };
        if listed.contains_key(&task) {
            continue;
        }
        match owners.get(&task) {
            Some(owner) if Some(owner) != env.membership.endpoint.as_ref() => {
                remotes.insert(owner.clone());
            }
            _ => {
                return Err(Failure::Unavailable(format!(
                    "no instance is known to serve task {task} of store `{store}` yet"
                )))
            }
        }
    }
    Ok(remotes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_path("a b/c\u{e9}"), "a%20b%2Fc%C3%A9");
        assert_eq!(encode_query(&[("from", Some("a&b".into())), ("to", None)]), "?from=a%26b");
    }
}
