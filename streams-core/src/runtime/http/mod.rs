//! The built-in HTTP server (`http.listen=HOST:PORT`): liveness and
//! readiness probes, Prometheus metrics, the topology, and the list of state
//! stores. It runs on a small tokio runtime of its own (one worker), so that
//! a slow scrape never takes a stream thread's time, and it only reads what
//! the threads publish (counters, states): nothing on the processing path
//! waits for it.

mod metrics;
mod stores;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State as AxumState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{Env, State};
use crate::error::StreamsError;

pub(crate) use metrics::RuntimeMetrics;

/// A running server; dropping it stops it.
pub(crate) struct HttpServer {
    address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A bound listening socket and the runtime that will serve it: what
/// `start()` sets up before anything else, so that a taken port fails it
/// before threads start.
pub(crate) struct Bound {
    address: SocketAddr,
    listener: tokio::net::TcpListener,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("address", &self.address).finish_non_exhaustive()
    }
}

/// Binds `listen` for the server of application `application_id`.
pub(crate) fn bind(listen: &str, application_id: &str) -> Result<Bound, StreamsError> {
    let bind_error = |source: std::io::Error| StreamsError::HttpListen { address: listen.to_owned(), source };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(format!("{application_id}-http"))
        .enable_all()
        .build()
        .map_err(bind_error)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
    };
    Ok(Bound { address, listener, runtime })
}

impl Bound {
    /// The bound address (the port chosen when `http.listen` asked for 0).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves `env` until the returned server is dropped.
    pub(crate) fn serve(self, env: Arc<Env>) -> HttpServer {
        let Self { address, listener, runtime } = self;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(env);
        runtime.spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        });
        tracing::info!(%address, "HTTP server listening (health, metrics, topology, stores)");
        HttpServer { address, shutdown: Some(shutdown), runtime: Some(runtime) }
    }
}

impl HttpServer {
    /// Where it listens (the port chosen when `http.listen` asked for 0).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn router(env: Arc<Env>) -> Router {
    // No client-wide time-out: each forwarded request sets its own.
    let client = reqwest::Client::builder().no_proxy().build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot configure the HTTP client; using the defaults");
        reqwest::Client::new()
    });
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route("/topology", get(topology))
        .route("/stores", get(list_stores))
        .route("/stores/{store}/keys", get(stores::get_range))
        .route("/stores/{store}/keys/{key}", get(stores::get_key))
        .route("/stores/{store}/keys/{key}/windows", get(stores::get_windows))
        .route("/stores/{store}/keys/{key}/sessions", get(stores::get_sessions))
        .with_state(stores::Shared { env, client })
}

async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "UP" }))
}

/// 200 when the client runs and no task restores; 503 otherwise, with the
/// state and the restore progress (what a Kubernetes readiness probe wants).
async fn ready(AxumState(env): AxumState<Arc<Env>>) -> Response {
    let state = env.lifecycle.state();
    let m = env.counters.snapshot(0);
    let restoring = m.records_to_restore > m.records_restored;
    let body = serde_json::json!({
        "state": state.to_string(),
        "restored_records": m.records_restored,
        "restore_remaining_records": m.records_to_restore.saturating_sub(m.records_restored),
    });
    let status = if state == State::Running && !restoring { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn prometheus(AxumState(env): AxumState<Arc<Env>>) -> Response {
    match metrics::render(&env) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct TopologyQuery {
    format: Option<String>,
}

/// `describe()`'s text, or with `?format=mermaid` its Mermaid diagram.
async fn topology(AxumState(env): AxumState<Arc<Env>>, Query(q): Query<TopologyQuery>) -> Response {
    let description = env.topology.describe();
    match q.format.as_deref() {
        None | Some("text") => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], description.to_string()).into_response()
        }
        Some("mermaid") => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], description.to_mermaid()).into_response()
        }
        Some(other) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("unknown format `{other}`: use text or mermaid") })),
        )
            .into_response(),
    }
}

/// The topology's state stores and their kinds.
async fn list_stores(AxumState(env): AxumState<Arc<Env>>) -> Response {
    let global: Vec<&str> = env.topology.global_stores().collect();
    let list: Vec<serde_json::Value> = env
        .topology
        .stores
        .iter()
        .map(|s| {
            let kind = stores::kind_name(s.supplier().kind());
            serde_json::json!({
                "name": s.name(),
                "kind": kind,
                "persistent": s.supplier().persistent(),
                "logged": s.logging_enabled(),
                "global": global.contains(&s.name()),
            })
        })
        .collect();
    Json(list).into_response()
}
