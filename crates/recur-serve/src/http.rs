//! The HTTP side: routes, request checks and the metrics middleware. The
//! handlers check a request against the loaded models' shapes and the
//! limits, then queue it for the compute thread ([`crate::engine`]) and
//! wait, up to the request timeout, for its answer. Nothing a client sends
//! reaches the models unchecked, so client mistakes are 4xx, never 500.

use crate::api::{
    parse, ApiError, ChatRequest, ChatResponse, ClassifyRequest, ClassifyResponse, ClassifyResult,
    ErrorCode, InferRequest, InferResponse,
};
use crate::config::ServeConfig;
use crate::engine::{Info, Job};
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use recur_core::config::Layout;
use recur_text::chunk::{pieces, ChunkRules};
use recur_text::encoder::visible;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const PAGE: &str = include_str!("page.html");

/// Where the service stands; `/health` answers from it.
#[derive(Debug, Clone)]
pub enum Status {
    Loading,
    Ready(Arc<Info>),
    Failed(String),
}

pub struct AppState {
    pub cfg: ServeConfig,
    pub status: RwLock<Status>,
    pub queue: mpsc::Sender<Job>,
    pub metrics: Arc<Metrics>,
    /// The latest feature rows `/v1/classify` was sent, as the model reads
    /// them (smoothed, unscaled), for the drift figures in `/metrics`.
    pub seen: std::sync::Mutex<crate::drift_rows::SeenRows>,
    /// The latest readiness check (a real forward pass of every model),
    /// run at load and then every `limits.health_check_interval_ms`;
    /// `/health` reads it and never waits for the models.
    pub checked: RwLock<Option<Check>>,
    /// What the served model folders held when loaded (see [`on_disk`]),
    /// and those that hold something else now: `/health` names them, as
    /// the server goes on serving what it loaded.
    pub loaded_from: RwLock<Vec<(std::path::PathBuf, Option<String>)>>,
    pub changed_on_disk: RwLock<Vec<String>>,
}

/// What a served model folder (or weights file) holds, to tell when it is
/// replaced or deleted under a running server: its manifest's digest, or
/// a file's size and time; `None` when there is nothing there.
pub fn on_disk(path: &std::path::Path) -> Option<String> {
    let man = path.join(recur_core::dirwrite::MANIFEST);
    if man.is_file() {
        return recur_core::fsx::sha256_file(&man).ok();
    }
    let m = std::fs::metadata(path).ok()?;
    Some(format!("{} {:?}", m.len(), m.modified().ok()))
}

/// The folders served, with what they hold now.
pub fn served_paths(cfg: &ServeConfig) -> Vec<(std::path::PathBuf, Option<String>)> {
    cfg.models
        .iter()
        .map(|m| m.path.clone())
        .chain(cfg.classifier.clone())
        .map(|p| {
            let now = on_disk(&p);
            (p, now)
        })
        .collect()
}

/// One readiness check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub result: Result<(), String>,
    pub at: Instant,
    pub ms: f64,
    /// Checks run since the models loaded.
    pub count: u64,
}

impl AppState {
    /// Records a check's outcome.
    pub fn record_check(&self, result: Result<(), String>, ms: f64) {
        let mut c = self.checked.write().expect("check lock");
        let count = c.as_ref().map_or(0, |c| c.count) + 1;
        *c = Some(Check {
            result,
            at: Instant::now(),
            ms,
            count,
        });
    }

    /// Requests waiting for the models: in the queue, and taken off it by
    /// the engine to choose batches from but not yet run.
    pub fn waiting(&self) -> usize {
        self.metrics
            .waiting
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether `limits.queue_capacity` requests are waiting (a full queue,
    /// `queue_capacity` long, is that many already).
    pub fn busy(&self) -> bool {
        self.waiting() >= self.cfg.limits.queue_capacity
    }

    /// Takes a place among the requests waiting for the models, in one
    /// atomic step (a check and a later count let concurrent requests
    /// each pass the check); false when `queue_capacity` are waiting. The
    /// engine gives the place back when it takes or drops the job.
    pub fn admit(&self) -> bool {
        let cap = self.cfg.limits.queue_capacity;
        self.metrics
            .waiting
            .fetch_update(SeqCst, SeqCst, |w| (w < cap).then_some(w + 1))
            .is_ok()
    }

    /// Gives back a place [`AppState::admit`] took for a job that was
    /// never queued.
    pub fn release(&self) {
        self.metrics.waiting.fetch_sub(1, SeqCst);
    }
}

/// Runs the readiness check every `interval` while the models are ready
/// and the queue has room (a full queue is busy, not unhealthy: the check
/// is skipped, not failed).
pub async fn check_periodically(s: Shared, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let changed: Vec<String> = s
            .loaded_from
            .read()
            .expect("paths lock")
            .iter()
            .filter(|(p, then)| on_disk(p) != *then)
            .map(|(p, _)| p.display().to_string())
            .collect();
        *s.changed_on_disk.write().expect("changed lock") = changed;
        let ready = matches!(&*s.status.read().expect("status lock"), Status::Ready(_));
        if !ready || s.busy() {
            continue;
        }
        let t = Instant::now();
        match submit(&s, |reply| Job::Health { reply }).await {
            Ok(()) => s.record_check(Ok(()), ms(t)),
            // Overloaded between the look and the send: busy, not failed.
            Err(e) if matches!(e.code, "queue_full" | "timeout") => {}
            Err(e) => s.record_check(Err(e.message), ms(t)),
        }
    }
}

pub use crate::drift_rows::SEEN_ROWS;

type Shared = Arc<AppState>;

/// The service's routes, with their limits, over `state`.
pub fn router(state: Shared) -> Router {
    let limit = state.cfg.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/chat", post(chat))
        .route("/v1/infer", post(infer))
        .route("/v1/classify", post(classify))
        .route("/health", get(health))
        .route("/live", get(live))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        // The body guard on the routes only: a POST to an unknown path is
        // answered 404 at once, its body unread (and a client waiting on
        // `Expect: 100-continue` gets the 404, not a 100).
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// DNS rebinding: a web page whose name an attacker points at 127.0.0.1
/// is same-origin with a local recur, so the Content-Type rule of
/// [`guard`] does not stop it; its requests still carry its own name in
/// `Host`. A server on a loopback address answers only loopback names and
/// `allowed_hosts`; one on another address, loopback names and
/// `allowed_hosts` when it lists any, else any name. An HTTP/1.0 request
/// without Host, or one with an empty Host (not a browser's), passes; an
/// HTTP/1.1 request without one is refused, as RFC 9112 3.2 requires.
async fn host_guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    use crate::hosts;
    // One Host at most (RFC 9112 3.2): with two, a proxy in front and this
    // guard could each read another.
    let sent = req.headers().get_all(header::HOST).iter().count();
    if sent > 1 {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_host",
            format!("the request has {sent} Host headers; HTTP/1.1 allows one"),
        )
        .into_response();
    }
    if sent == 0 && req.version() == axum::http::Version::HTTP_11 {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_host",
            "the HTTP/1.1 request has no Host header; send `Host: NAME` (the server's name and port, as in the URL), which HTTP/1.1 requires",
        )
        .into_response();
    }
    // A request line in absolute form (`GET http://name/info`) names the
    // host the request is for, over the Host header (RFC 9112 3.2.2): both
    // are checked.
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("(not text)").to_string());
    let allowed = &s.cfg.allowed_hosts;
    let local = hosts::binds_loopback(&s.cfg.host);
    if !local && allowed.is_empty() {
        return next.run(req).await;
    }
    // Entries were checked when the config was read.
    let ok = |shown: &str| {
        shown.trim().is_empty()
            || hosts::name_of(shown).is_some_and(|name| {
                hosts::is_loopback(&name)
                    || allowed
                        .iter()
                        .any(|a| hosts::allowed_name(a).is_ok_and(|a| a == name))
            })
    };
    let Some(shown) = [authority, host].into_iter().flatten().find(|v| !ok(v)) else {
        return next.run(req).await;
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        "bad_host",
        format!(
            "Host {:?} is not a name of this server (listening on {}): use localhost or 127.0.0.1{}, or list the name in the serve config's allowed_hosts",
            recur_data::table::clip(&shown),
            s.cfg.host,
            if allowed.is_empty() {
                String::new()
            } else {
                format!(", or {}", allowed.join(", "))
            }
        ),
    )
    .into_response()
}

/// What a connection past `limits.max_connections` is served: `/health`
/// and `/live`, and a JSON 503 for anything else.
pub fn overflow_router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/live", get(live))
        .fallback(too_many_connections)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn too_many_connections(State(s): State<Shared>) -> ApiError {
    ApiError::unavailable(
        "too_many_connections",
        format!(
            "{} connections are open (limits.max_connections); retry shortly",
            s.cfg.limits.max_connections
        ),
    )
}

/// A POST must say its body is JSON (`Content-Type: application/json`): a
/// web page can send a cross-site POST without a CORS preflight only as a
/// form, as text or with no type at all (a `Blob` body), so none of those
/// reach the models of a local recur; the preflight a JSON post needs is
/// never answered. A body with a Content-Encoding (gzip) is refused: it
/// would be read as plain JSON. The body must declare no more
/// than `limits.max_body_bytes` (refused before it is read, so a client
/// waiting on `Expect: 100-continue` gets 413 at once), and arrive within
/// `limits.body_timeout_ms`.
async fn guard(State(s): State<Shared>, req: Request, next: Next) -> Response {
    // Until its body is read the request may be closed to make room (see
    // `listen`); every path out of here past that point marks it read.
    let receiving = req.extensions().get::<crate::listen::Receiving>().cloned();
    let read = || {
        if let Some(r) = &receiving {
            r.done()
        }
    };
    if req.method() != axum::http::Method::POST {
        read();
        return next.run(req).await;
    }
    let r = guard_post(&s, req, next, &read, receiving.as_ref()).await;
    read();
    r
}

/// The most of an oversized body read (and dropped) before its 413, and
/// how long that may take: enough for a client that sends a few megabytes
/// at once to read the answer, never a store of them.
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads a body to its end, keeping nothing.
async fn drain(mut body: axum::body::Body) {
    use http_body_util::BodyExt;
    while let Some(Ok(_)) = body.frame().await {}
}

/// The body, at most `max` bytes (else `Err(None)`; a read error is
/// `Err(Some(..))`), each part counted on `progress` as it comes, so that
/// a body dripped byte by byte is known for one when room is needed.
async fn read_body(
    mut body: axum::body::Body,
    max: usize,
    progress: Option<&crate::listen::Receiving>,
) -> std::result::Result<axum::body::Bytes, Option<axum::Error>> {
    use http_body_util::BodyExt;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Some)?.into_data() else {
            continue;
        };
        if buf.len() + data.len() > max {
            return Err(None);
        }
        if let Some(p) = progress {
            p.add(data.len());
        }
        if buf.is_empty() && axum::body::HttpBody::is_end_stream(&body) {
            // The whole body in one part, as most come: no copy.
            return Ok(data);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.into())
}

/// The `charset` parameter of a Content-Type value, unquoted.
fn charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

async fn guard_post(
    s: &Shared,
    req: Request,
    next: Next,
    read: &impl Fn(),
    progress: Option<&crate::listen::Receiving>,
) -> Response {
    let l = &s.cfg.limits;
    let unsupported = |msg: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            msg,
        )
        .into_response()
    };
    // One Content-Type: with two, the handler would read the first and a
    // charset in the second would pass unseen.
    if req.headers().get_all(header::CONTENT_TYPE).iter().count() > 1 {
        return unsupported("several Content-Type headers: send one, application/json".into());
    }
    let ct = req.headers().get(header::CONTENT_TYPE);
    let json = ct
        .and_then(|ct| ct.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            // JSON by a structured suffix too (RFC 6839: `application/
            // vnd.api+json`, `application/problem+json`), which browsers
            // send only after a preflight, as application/json.
            v == "application/json"
                || v.strip_prefix("application/")
                    .and_then(|t| t.strip_suffix("+json"))
                    .is_some_and(|t| !t.is_empty() && !t.contains('/'))
        });
    if !json {
        let given = match ct {
            None => "no Content-Type".to_string(),
            Some(ct) => format!("Content-Type {:?}", ct.to_str().unwrap_or("(not text)")),
        };
        return unsupported(format!(
            "{given}: send JSON with Content-Type: application/json"
        ));
    }
    // JSON is UTF-8 (RFC 8259; ASCII is UTF-8 too); a body declared in
    // another charset would be read as UTF-8 all the same, so it is
    // refused, not misread.
    if let Some(cs) = ct.and_then(|ct| ct.to_str().ok()).and_then(charset) {
        if !["utf-8", "utf8", "us-ascii", "ascii"]
            .iter()
            .any(|ok| cs.eq_ignore_ascii_case(ok))
        {
            return unsupported(format!(
                "charset {cs:?}: recur reads JSON as UTF-8; send it in UTF-8"
            ));
        }
    }
    // A compressed body would be read as plain JSON: refused, not guessed.
    // Every Content-Encoding header, each a list of codings; empty items
    // and `identity` mean none.
    // The same for a transfer coding other than `chunked` (hyper undoes
    // that one; `gzip, chunked` would leave gzip's bytes).
    let headers = req.headers();
    let codings = |name: header::HeaderName, plain: &'static str| {
        headers
            .get_all(name.clone())
            .iter()
            .flat_map(|v| {
                v.to_str()
                    .unwrap_or("(not text)")
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .find(|c| {
                !c.is_empty()
                    && !c.eq_ignore_ascii_case("identity")
                    && !c.eq_ignore_ascii_case(plain)
            })
            .map(|c| (name, c))
    };
    let coded = codings(header::CONTENT_ENCODING, "identity")
        .or_else(|| codings(header::TRANSFER_ENCODING, "chunked"));
    if let Some((name, e)) = coded {
        let mut r = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("{name} {e:?}: recur reads bodies as sent; send plain JSON"),
        )
        .into_response();
        r.headers_mut().insert(
            header::ACCEPT_ENCODING,
            axum::http::HeaderValue::from_static("identity"),
        );
        return r;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Answered with the body unread: `track` says `Connection: close`.
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the request body is over {} bytes (limits.max_body_bytes; see GET /info)",
                l.max_body_bytes
            ),
        )
        .into_response()
    };
    if declared.is_some_and(|n| n > l.max_body_bytes as u64) {
        // A client waiting on `Expect: 100-continue` sends nothing more:
        // answered at once. Another is already sending: closed with its
        // body unread, it met a reset on its next write and never read
        // the 413 (Python's http.client saw a broken pipe). So a bounded
        // part of the body is read and dropped first.
        let expects = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !expects && declared.is_some_and(|n| n <= DRAIN_BYTES) {
            let (_, body) = req.into_parts();
            let _ = tokio::time::timeout(DRAIN_TIME, drain(body)).await;
        }
        return too_large();
    }
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let (parts, body) = req.into_parts();
    let limit = Duration::from_millis(l.body_timeout_ms);
    let got = tokio::time::timeout(limit, read_body(body, l.max_body_bytes, progress)).await;
    read();
    match got {
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms (limits.body_timeout_ms)",
                l.body_timeout_ms
            ),
        )
        .into_response(),
        Ok(Err(None)) => too_large(),
        Ok(Err(Some(e))) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            if chunked {
                format!("the request body could not be read ({e}): check its chunked encoding")
            } else {
                format!(
                    "the request body could not be read ({e}): the connection ended before the Content-Length's bytes"
                )
            },
        )
        .into_response(),
        Ok(Ok(bytes)) => {
            let mut r = next
                .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await;
            r.extensions_mut().insert(BodyRead);
            r
        }
    }
}

/// Marks a response whose request body was read to its end, so the
/// connection can carry the next request.
#[derive(Clone, Copy)]
struct BodyRead;

/// `response` with `Connection: close`: the body was not read to its end,
/// so the connection cannot carry another request, and a keep-alive client
/// that was not told so reused it and met a reset (RFC 9112 section 9.6).
/// hyper closes the connection after a response that says so.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Counts and times every request by endpoint, status and error code.
async fn track(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let t = Instant::now();
    // A body sent and never read (a 404, 405, 403 or 415 is answered
    // before it) ends the connection: say so (see [`closing`]).
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut resp = next.run(req).await;
    if has_body && resp.extensions().get::<BodyRead>().is_none() {
        resp = closing(resp);
    }
    let m = &s.metrics;
    m.latency
        .with_label_values(&[endpoint.as_str()])
        .observe(t.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[endpoint.as_str(), resp.status().as_str()])
        .inc();
    if resp.status().is_client_error() || resp.status().is_server_error() {
        let code = resp
            .extensions()
            .get::<ErrorCode>()
            .map_or("other", |c| c.0);
        m.errors.with_label_values(&[endpoint.as_str(), code]).inc();
    }
    resp
}

async fn not_found(req: Request) -> ApiError {
    if let Some(e) = not_implemented(&req) {
        return e;
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no endpoint {} {}; there are POST /chat, /v1/infer, /v1/classify and GET /, /health, /live, /info, /metrics",
            req.method(),
            // CONNECT's target has no path (it said "no endpoint ;").
            recur_data::table::clip(match req.uri().path() {
                "" => req.uri().to_string(),
                p => p.to_string(),
            }
            .as_str())
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    if let Some(e) = not_implemented(&req) {
        return e;
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {}", req.uri().path(), req.method()),
    )
}

/// 501 for a method recur does not implement anywhere (`FOO`, `PUT`,
/// `CONNECT`), as RFC 9110 section 9.1 asks, where it answered 405 or 404.
/// OPTIONS stays a 405 on its routes: no preflight is answered, on purpose.
fn not_implemented(req: &Request) -> Option<ApiError> {
    let known = ["GET", "HEAD", "POST", "OPTIONS"];
    (!known.contains(&req.method().as_str())).then(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            format!(
                "recur does not implement the method {}; its endpoints take GET, HEAD and POST",
                recur_data::table::clip(req.method().as_str())
            ),
        )
    })
}

/// The chat page, on a server with LVMs.
async fn page(State(s): State<Shared>) -> Response {
    if let Status::Ready(i) = &*s.status.read().expect("status lock") {
        if i.models.is_empty() {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "no_lvm",
                "this server has no LVM, so no chat page; it serves /v1/classify",
            )
            .into_response();
        }
    }
    // Not framed by other sites (a chat form under someone else's page),
    // and its script may talk to this server only.
    (
        [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// The chat page's content security policy: its own inline style and
/// script, requests to this server, nothing else, and no framing.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The request parsed from its body, or the JSON error that says why not.
fn request<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                "the request body is over the limit (limits.max_body_bytes; see GET /info)",
            )
        } else {
            ApiError::new(status, "bad_body", r.body_text())
        }
    })?;
    parse(&body)
}

fn ready(s: &AppState) -> Result<Arc<Info>, ApiError> {
    match &*s.status.read().expect("status lock") {
        Status::Ready(i) => Ok(i.clone()),
        Status::Loading => Err(ApiError::unavailable(
            "loading",
            "the models are still loading; retry shortly (GET /health says when)",
        )),
        Status::Failed(why) => Err(ApiError::unavailable(
            "failed",
            format!("the models failed to load: {why}"),
        )),
    }
}

/// Queues a job and waits for its answer.
async fn submit<T>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> Job,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    // The queue and the engine's window of jobs together: the queue alone
    // filled at `queue_capacity` less the window, which the engine fills
    // only when idle, so under load about half the capacity was refused.
    let full = || {
        ApiError::unavailable(
            "queue_full",
            format!(
                "{} requests are waiting for the models (limits.queue_capacity {}); retry shortly",
                s.waiting(),
                s.cfg.limits.queue_capacity
            ),
        )
    };
    if !s.admit() {
        return Err(full());
    }
    if let Err(e) = s.queue.try_send(make(tx)) {
        s.release();
        return Err(match e {
            mpsc::error::TrySendError::Full(_) => full(),
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::unavailable("shutting_down", "the server is shutting down")
            }
        });
    }
    s.metrics.queue_depth.set(s.waiting() as i64);
    let limit = Duration::from_millis(s.cfg.limits.request_timeout_ms);
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(ApiError::internal("the compute thread stopped")),
        Err(_) => Err(ApiError::unavailable(
            "timeout",
            format!(
                "no answer within {} ms (limits.request_timeout_ms)",
                limit.as_millis()
            ),
        )),
    }
}

fn model_index(info: &Info, name: Option<&str>) -> Result<usize, ApiError> {
    if info.models.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_lvm",
            "this server has no LVM (set `models:` in the serve config); it serves /v1/classify",
        ));
    }
    let name = name.unwrap_or(&info.default_model);
    info.models
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = info.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::invalid(
                "unknown_model",
                format!(
                    "model {name:?} is not served; these are: {}",
                    names.join(", ")
                ),
            )
        })
}

/// The sentences of a chat request, checked against the limits.
fn chat_texts(req: &ChatRequest, s: &ServeConfig) -> Result<Vec<String>, ApiError> {
    let l = &s.limits;
    let texts = match (&req.messages, &req.paragraph) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::invalid(
                "messages_or_paragraph",
                format!(
                    "give either `messages` (1 to {} strings) or `paragraph`",
                    l.max_messages
                ),
            ))
        }
        (Some(m), None) => {
            if m.is_empty() {
                return Err(ApiError::invalid(
                    "empty_messages",
                    format!("`messages` is empty; give 1 to {} strings", l.max_messages),
                ));
            }
            if m.len() > l.max_messages {
                return Err(ApiError::invalid(
                    "too_many_messages",
                    format!(
                        "`messages` holds {}; at most {} (limits.max_messages)",
                        m.len(),
                        l.max_messages
                    ),
                ));
            }
            for (i, t) in m.iter().enumerate() {
                if !visible(t) {
                    return Err(ApiError::invalid(
                        "empty_text",
                        format!("messages[{i}] has nothing visible in it"),
                    ));
                }
                let n = t.chars().count();
                if n > l.max_text_chars {
                    return Err(ApiError::invalid(
                        "text_too_long",
                        format!(
                            "messages[{i}] has {n} characters; at most {} (limits.max_text_chars)",
                            l.max_text_chars
                        ),
                    ));
                }
            }
            m.iter().map(|t| t.trim().to_string()).collect()
        }
        (None, Some(p)) => {
            let n = p.chars().count();
            if n > l.max_paragraph_chars {
                return Err(ApiError::invalid(
                    "text_too_long",
                    format!(
                        "`paragraph` has {n} characters; at most {} (limits.max_paragraph_chars)",
                        l.max_paragraph_chars
                    ),
                ));
            }
            let rules = ChunkRules {
                min_chars: 1,
                max_chars: l.max_text_chars.min(500),
            };
            let mut c = pieces(p, rules);
            c.retain(|x| visible(x));
            if c.is_empty() {
                return Err(ApiError::invalid(
                    "empty_text",
                    "`paragraph` holds no sentence",
                ));
            }
            c
        }
    };
    Ok(texts)
}

fn top_k(req: Option<usize>, info: &Info) -> Result<usize, ApiError> {
    let k = req.unwrap_or(info.top_k);
    if k == 0 || k > info.limits.max_top_k {
        return Err(ApiError::invalid(
            "bad_top_k",
            format!(
                "top_k is {k}; give 1 to {} (limits.max_top_k)",
                info.limits.max_top_k
            ),
        ));
    }
    Ok(k)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn chat(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ChatResponse>, ApiError> {
    let t = Instant::now();
    let req: ChatRequest = request(body)?;
    let info = ready(&s)?;
    let texts = chat_texts(&req, &s.cfg)?;
    let model = model_index(&info, req.model.as_deref())?;
    let k = top_k(req.top_k, &info)?;
    let exclude_context = req.exclude_context.unwrap_or(info.exclude_context);
    let a = submit(&s, |reply| Job::Chat {
        texts,
        model,
        top_k: k,
        exclude_context,
        queued: Instant::now(),
        reply,
    })
    .await?;
    Ok(Json(ChatResponse {
        response: a.response,
        confidence: a.confidence,
        total_latency_ms: ms(t),
        latency_breakdown: a.breakdown,
        ctx_fill_mode: a.ctx_fill_mode.into(),
        neighbours: a.neighbours,
        model: info.models[model].name.clone(),
        sentences: a.sentences,
        batch_size: a.batch_size,
    }))
}

async fn infer(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InferResponse>, ApiError> {
    let t = Instant::now();
    let req: InferRequest = request(body)?;
    let info = ready(&s)?;
    let model = model_index(&info, req.model.as_deref())?;
    let (c, dim) = (info.models[model].context, info.models[model].dim);
    let n = req.context_vectors.len();
    let most = s.cfg.limits.max_messages.max(c) * 4;
    if n == 0 {
        return Err(ApiError::invalid(
            "empty_context",
            format!(
                "`context_vectors` is empty; give 1 to {most} vectors of {dim} numbers (the model reads the last {c})"
            ),
        ));
    }
    if n > most {
        return Err(ApiError::invalid(
            "too_many_vectors",
            format!(
                "`context_vectors` holds {n} vectors; give at most {most} (the model reads the last {c})"
            ),
        ));
    }
    let mut context = Vec::with_capacity(n * dim);
    for (i, v) in req.context_vectors.iter().enumerate() {
        if v.len() != dim {
            return Err(ApiError::invalid(
                "wrong_dimension",
                format!(
                    "context_vectors[{i}] has {} numbers; model {:?} takes {dim}-D vectors",
                    v.len(),
                    info.models[model].name
                ),
            ));
        }
        for (j, x) in v.iter().enumerate() {
            let f = *x as f32;
            if !f.is_finite() {
                return Err(ApiError::invalid(
                    "non_finite",
                    format!("context_vectors[{i}][{j}] is {x}, beyond float32"),
                ));
            }
            context.push(f);
        }
    }
    let a = submit(&s, |reply| Job::Infer {
        context,
        model,
        queued: Instant::now(),
        reply,
    })
    .await?;
    Ok(Json(InferResponse {
        predicted_vector: a.predicted,
        model: info.models[model].name.clone(),
        ctx_fill_mode: a.ctx_fill_mode.into(),
        lvm_inference_ms: a.lvm_ms,
        total_latency_ms: ms(t),
    }))
}

/// One row of features: an array in the model's feature order, or an
/// object with every feature by name (other keys are ignored and named in
/// `ignored`; the time column's value is returned).
fn row_values(
    v: &serde_json::Value,
    at: &str,
    c: &crate::engine::ClassifierInfo,
    out: &mut Vec<f64>,
    ignored: &mut std::collections::BTreeSet<String>,
) -> Result<Option<serde_json::Value>, ApiError> {
    let features = &c.features;
    let f = features.len();
    let num = |x: &serde_json::Value, key: String| {
        x.as_f64().ok_or_else(|| {
            ApiError::invalid("invalid_field", format!("{key} is {x}; expected a number"))
        })
    };
    match v {
        serde_json::Value::Array(a) => {
            if a.len() != f {
                return Err(ApiError::invalid(
                    "wrong_dimension",
                    format!(
                        "{at} has {} values; the classifier takes {f}: {}",
                        a.len(),
                        features.join(", ")
                    ),
                ));
            }
            for (j, x) in a.iter().enumerate() {
                out.push(num(x, format!("{at}[{j}] ({})", features[j]))?);
            }
            Ok(None)
        }
        serde_json::Value::Object(o) => {
            for name in features {
                let x = o.get(name).ok_or_else(|| {
                    ApiError::invalid(
                        "missing_feature",
                        format!(
                            "{at} has no {name:?}; every row needs {}",
                            features.join(", ")
                        ),
                    )
                })?;
                out.push(num(x, format!("{at}.{name}"))?);
            }
            // `null` is a missing time, as an empty cell of a file is.
            let time = c
                .time_column
                .as_ref()
                .and_then(|t| o.get(t))
                .filter(|v| !v.is_null())
                .cloned();
            for k in o.keys() {
                // The time column is read (its order checked, the last
                // echoed), not ignored.
                if !features.contains(k)
                    && c.time_column.as_ref() != Some(k)
                    && !ignored.contains(k)
                {
                    ignored.insert(k.clone());
                }
            }
            Ok(time)
        }
        other => Err(ApiError::invalid(
            "invalid_field",
            format!("{at} is {other}; expected an array or object of features"),
        )),
    }
}

/// Refuses a window whose rows' times (the model's time column, where
/// rows send it) go backwards or repeat, as `recur predict` refuses such
/// a file: the window was scored as if in order (30 rows newest first
/// came back 200 with the oldest row's time).
fn check_time_order(
    c: &crate::engine::ClassifierInfo,
    at: &str,
    times: &[Option<serde_json::Value>],
) -> Result<(), ApiError> {
    let Some(tc) = &c.time_column else {
        return Ok(());
    };
    if times.iter().flatten().count() < 2 {
        return Ok(());
    }
    use recur_data::table::{column_of, Table};
    // As a file's column is read (`5` or `"5"` a number); a missing time
    // is blank.
    let text: Vec<String> = times
        .iter()
        .map(|t| match t {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect();
    let column = column_of(&text);
    let data = recur_core::config::DataConfig {
        time_column: Some(tc.clone()),
        ..Default::default()
    };
    Table::from_columns(at, vec![tc.clone()], vec![column])
        .and_then(|t| recur_data::prepare::check_scored_time_order(&t, &data))
        .map_err(|e| ApiError::invalid("time_order", e.to_string()))
}

/// A window as sent: its rows and optional id.
fn window_parts<'a>(
    v: &'a serde_json::Value,
    at: &str,
) -> Result<(&'a [serde_json::Value], Option<serde_json::Value>), ApiError> {
    match v {
        serde_json::Value::Array(rows) => Ok((rows, None)),
        serde_json::Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "id" && *k != "rows") {
                return Err(ApiError::invalid(
                    "unknown_field",
                    format!("{at} has {k:?}; a window is a list of rows or {{\"id\", \"rows\"}}"),
                ));
            }
            match o.get("rows") {
                Some(serde_json::Value::Array(rows)) => Ok((rows, o.get("id").cloned())),
                _ => Err(ApiError::invalid(
                    "invalid_field",
                    format!("{at}.rows must be a list of rows, oldest first"),
                )),
            }
        }
        other => Err(ApiError::invalid(
            "invalid_field",
            format!("{at} is {other}; expected a list of rows or {{\"id\", \"rows\"}}"),
        )),
    }
}

async fn classify(
    State(s): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let t = Instant::now();
    let req: ClassifyRequest = request(body)?;
    let info = ready(&s)?;
    let c = info.classifier.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_classifier",
            "this server has no classifier (set `classifier:` in the serve config)",
        )
    })?;
    if c.layout == Layout::Sequences {
        return classify_sequences(&s, c, req, t).await;
    }
    let other = req.sequence.is_some() || req.sequences.is_some();
    let (windows, name) = one_or_many(
        (req.window, req.windows),
        other,
        &WINDOWS,
        s.cfg.limits.max_windows,
    )?;
    let f = c.features.len();
    let mut ignored = std::collections::BTreeSet::new();
    let mut series = Vec::with_capacity(windows.len());
    let mut tags = Vec::with_capacity(windows.len());
    // Kept for drift once the request is answered: a refused one (a bad
    // value in its last window) counted its earlier windows before.
    let mut own_rows = Vec::new();
    for (wi, w) in windows.iter().enumerate() {
        let at = if name == "window" {
            "window".to_string()
        } else {
            format!("windows[{wi}]")
        };
        let (rows, id) = window_parts(w, &at)?;
        if rows.len() < c.min_rows {
            return Err(ApiError::invalid(
                "too_few_rows",
                format!(
                    "{at} has {} rows; the classifier needs at least {} (model.sequence_length {}{}), oldest first",
                    rows.len(),
                    c.min_rows,
                    c.sequence_length,
                    if c.min_rows > c.sequence_length {
                        ", plus earlier rows for the trees' lags and the smoothing's warm-up"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let limit = s.cfg.limits.max_windows * c.min_rows.max(1) * 4;
        if rows.len() > limit {
            return Err(ApiError::invalid(
                "too_many_rows",
                format!("{at} has {} rows; at most {limit}", rows.len()),
            ));
        }
        let mut values = Vec::with_capacity(rows.len() * f);
        let mut times = Vec::with_capacity(rows.len());
        for (ri, row) in rows.iter().enumerate() {
            times.push(row_values(
                row,
                &format!("{at}[{ri}]"),
                c,
                &mut values,
                &mut ignored,
            )?);
        }
        check_time_order(c, &at, &times)?;
        if let Some(k) = c.scaler.beyond_f32(&values) {
            return Err(ApiError::invalid(
                "non_finite",
                format!(
                    "{at}[{}] {:?} is {:e}, beyond float32 (or once scaled)",
                    k / f,
                    c.features[k % f],
                    values[k]
                ),
            ));
        }
        if c.drift_monitored {
            own_rows.extend(crate::drift_rows::window_rows(
                &values,
                f,
                &times,
                c.ewma_span,
                c.warmup_rows,
            ));
        }
        series.push(values);
        tags.push((id, times.pop().flatten()));
    }
    // The parsed JSON (a map per row: some 19 times the body's size) is
    // not held while the request waits for the models, only the numbers.
    drop(windows);
    let a = submit(&s, |reply| Job::Classify {
        series,
        queued: Instant::now(),
        reply,
    })
    .await?;
    if !own_rows.is_empty() {
        s.seen.lock().expect("seen lock").extend(own_rows);
    }
    let results: Vec<ClassifyResult> = a
        .predictions
        .into_iter()
        .zip(tags)
        .map(|(p, (id, time))| result(p, id, time))
        .collect();
    Ok(Json(response(
        c,
        results,
        ignored.into_iter().collect(),
        a.ms,
        t,
    )))
}

/// The two keys a `/v1/classify` request may send its items under (the
/// windows of a rows model or the series of a whole-series one), their
/// error codes and what the errors say.
struct Keys {
    single: &'static str,
    plural: &'static str,
    /// Neither or both keys, or the other model kind's keys.
    either: &'static str,
    empty: &'static str,
    too_many: &'static str,
    /// Neither or both keys were sent.
    either_msg: &'static str,
    /// The other model kind's keys were sent.
    wrong_msg: &'static str,
}

const WINDOWS: Keys = Keys {
    single: "window",
    plural: "windows",
    either: "window_or_windows",
    empty: "empty_windows",
    too_many: "too_many_windows",
    either_msg: "give either `window` (rows of features) or `windows` (a list of them)",
    wrong_msg: "this classifier reads windows of a time series (data.layout: rows): send `window` (rows of features) or `windows`, not `sequence`",
};

const SEQUENCES: Keys = Keys {
    single: "sequence",
    plural: "sequences",
    either: "sequence_or_sequences",
    empty: "empty_sequences",
    too_many: "too_many_sequences",
    either_msg: "give either `sequence` (one series: a list of steps) or `sequences` (a list of them)",
    wrong_msg: "this classifier reads whole series (data.layout: sequences): send `sequence` (a list of steps, each a list of one value per channel) or `sequences`, not `window`",
};

/// A request's one item or its list of them (exactly one of the two
/// keys, and none of the other model kind's: `other`), as a non-empty list
/// of at most `limit` (`limits.max_windows`), with the key it came under.
fn one_or_many(
    (one, many): (Option<serde_json::Value>, Option<Vec<serde_json::Value>>),
    other: bool,
    k: &Keys,
    limit: usize,
) -> Result<(Vec<serde_json::Value>, &'static str), ApiError> {
    if other {
        return Err(ApiError::invalid(k.either, k.wrong_msg));
    }
    let (items, name) = match (one, many) {
        (Some(v), None) => (vec![v], k.single),
        (None, Some(vs)) => (vs, k.plural),
        _ => return Err(ApiError::invalid(k.either, k.either_msg)),
    };
    if items.is_empty() {
        return Err(ApiError::invalid(
            k.empty,
            format!("`{}` is empty", k.plural),
        ));
    }
    if items.len() > limit {
        return Err(ApiError::invalid(
            k.too_many,
            format!(
                "{} {}; at most {limit} (limits.max_windows)",
                items.len(),
                k.plural
            ),
        ));
    }
    Ok((items, name))
}

/// What the models said about one window or series, with its id (and,
/// for a window, the time column's value in its last row).
fn result(
    p: recur_deploy::Prediction,
    id: Option<serde_json::Value>,
    time: Option<serde_json::Value>,
) -> ClassifyResult {
    ClassifyResult {
        id,
        time,
        p_lstm: p.p_lstm,
        p_trees: p.p_trees,
        p_ensemble: p.p_ensemble,
        probability: p.probability,
        decision: p.decision,
        class_probabilities: p.class_probabilities,
        class: p.class,
    }
}

/// The reply to `/v1/classify`: the results and what the classifier is.
fn response(
    c: &crate::engine::ClassifierInfo,
    results: Vec<ClassifyResult>,
    ignored_columns: Vec<String>,
    inference_ms: f64,
    t: Instant,
) -> ClassifyResponse {
    ClassifyResponse {
        probabilities: results.iter().map(|r| r.probability).collect(),
        results,
        layout: c.layout,
        classes: c.classes.clone(),
        deployed: c.deployed.clone(),
        threshold: c.threshold,
        features: c.features.clone(),
        sequence_length: c.sequence_length,
        min_rows: c.min_rows,
        ignored_columns,
        inference_ms,
        total_latency_ms: ms(t),
    }
}

/// `/v1/classify` for a whole-series model: each series checked
/// ([`crate::series::parse`]) and scored whole, with a probability per
/// class when there are more than two.
async fn classify_sequences(
    s: &AppState,
    c: &crate::engine::ClassifierInfo,
    req: ClassifyRequest,
    t: Instant,
) -> Result<Json<ClassifyResponse>, ApiError> {
    let other = req.window.is_some() || req.windows.is_some();
    let (items, name) = one_or_many(
        (req.sequence, req.sequences),
        other,
        &SEQUENCES,
        s.cfg.limits.max_windows,
    )?;
    let mut series = Vec::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let at = if name == "sequence" {
            "sequence".to_string()
        } else {
            format!("sequences[{i}]")
        };
        let (values, id) = crate::series::parse(v, &at, c)?;
        series.push(values);
        ids.push(id);
    }
    // Only the numbers wait for the models, not the parsed JSON.
    drop(items);
    let a = submit(s, |reply| Job::Classify {
        series,
        queued: Instant::now(),
        reply,
    })
    .await?;
    let results: Vec<ClassifyResult> = a
        .predictions
        .into_iter()
        .zip(ids)
        .map(|(p, id)| result(p, id, None))
        .collect();
    Ok(Json(response(c, results, Vec::new(), a.ms, t)))
}

/// Liveness: the process answers. Readiness is `/health`.
async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

/// Readiness, from the latest check: it never runs the models itself, so
/// health checks cannot slow the requests, and a full queue is `busy`.
async fn health(State(s): State<Shared>) -> Response {
    let status = s.status.read().expect("status lock").clone();
    // `status` is the answer's status and the error code `/metrics`
    // counts it under.
    let unavailable = |status: &'static str, mut body: serde_json::Value| {
        body["status"] = status.into();
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        r.extensions_mut().insert(crate::api::ErrorCode(status));
        r
    };
    let info = match status {
        Status::Ready(i) => i,
        Status::Loading => {
            return unavailable("loading", serde_json::json!({"model_loaded": false}))
        }
        Status::Failed(why) => {
            return unavailable(
                "failed",
                serde_json::json!({"model_loaded": false, "reason": why}),
            )
        }
    };
    let check = s.checked.read().expect("check lock").clone();
    if let Some(Check {
        result: Err(why), ..
    }) = &check
    {
        return unavailable(
            "unhealthy",
            serde_json::json!({"model_loaded": true, "reason": why}),
        );
    }
    if s.busy() {
        return unavailable(
            "busy",
            serde_json::json!({
                "model_loaded": true,
                "reason": format!("{} requests are waiting for the models (limits.queue_capacity {})", s.waiting(), s.cfg.limits.queue_capacity),
            }),
        );
    }
    let kind = info
        .models
        .iter()
        .find(|m| m.name == info.default_model)
        .map(|m| m.kind.clone());
    Json(serde_json::json!({
        "status": "ok",
        "model_type": kind,
        "model_loaded": true,
        "device": info.device,
        "models": info.models.iter().map(|m| &m.name).collect::<Vec<_>>(),
        "classifier_loaded": info.classifier.is_some(),
        "lvm_loaded": !info.models.is_empty(),
        "encoder_loaded": info.encoder.is_some(),
        "check_ms": check.as_ref().map(|c| c.ms),
        "checked_ms_ago": check.as_ref().map(|c| ms(c.at)),
        "checks": check.as_ref().map_or(0, |c| c.count),
        "changed_on_disk": *s.changed_on_disk.read().expect("changed lock"),
    }))
    .into_response()
}

async fn info(State(s): State<Shared>) -> Result<Json<Info>, ApiError> {
    Ok(Json((*ready(&s)?).clone()))
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let info = match &*s.status.read().expect("status lock") {
        Status::Ready(i) => Some(i.clone()),
        _ => None,
    };
    if let Some(c) = info.as_ref().and_then(|i| i.classifier.as_ref()) {
        if let Some(r) = &c.reference {
            let (rows, n) = s.seen.lock().expect("seen lock").values();
            s.metrics.drift_rows.set(n as i64);
            if n >= 30 {
                if let Ok(table) = recur_data::drift::compare(r, &rows, &c.drift_thresholds) {
                    s.metrics.set_drift(&table);
                }
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
