//! The accept loop of `recur serve`, in place of `axum::serve`, for what
//! that lacks: a limit on open connections, a deadline for each request's
//! headers (which also closes idle keep-alive connections, since hyper
//! times the wait for the next request's head the same way), one for each
//! write (`tokio-io-timeout`: a client that pipelines requests and never
//! reads the answers fills its socket and would hold its connection for
//! ever), and a deadline for shutting down. Request bodies are timed by the router's
//! guard (`http.rs`), which sees the declared length first.
//!
//! Past `max_connections`, a few more connections are served by a small
//! router that answers `/health` and `/live` and gives every other path a
//! JSON 503, one request each; past those, a connection is closed at once.
//! So a flood of idle sockets cannot use up the descriptors, and a
//! monitor can still ask whether the server is alive. hyper's own
//! answers to requests it cannot parse get JSON bodies (`parse_errors.rs`).

use crate::parse_errors::JsonParseErrors;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connections served past `max_connections` by the overflow router.
pub const SPARE_CONNECTIONS: usize = 32;

/// The connection limits, from `limits:`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    /// A request's headers must arrive within this, and an idle
    /// keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// A write that makes no progress for this long fails, and the
    /// connection closes.
    pub write_timeout: Duration,
    /// After the shutdown signal, requests in flight may take this long.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting, lets the requests in flight finish for up to `grace`, and
/// closes what is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    overflow: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let spare = Arc::new(Semaphore::new(SPARE_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of descriptors or a reset before accept: wait a
                // moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        let (router, permit, keep_alive) = match permits.clone().try_acquire_owned() {
            Ok(p) => (app.clone(), p, true),
            Err(_) => match spare.clone().try_acquire_owned() {
                Ok(p) => (overflow.clone(), p, false),
                Err(_) => continue,
            },
        };
        let mut stop = stop_rx.clone();
        let (header_timeout, write_timeout) = (limits.header_timeout, limits.write_timeout);
        tasks.spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let mut io = tokio_io_timeout::TimeoutStream::new(JsonParseErrors::new(stream));
            io.set_write_timeout(Some(write_timeout));
            let conn =
                b.serve_connection(TokioIo::new(Box::pin(io)), TowerToHyperService::new(router));
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connections still open after the {:?} grace period: closed",
            tasks.len(),
            limits.grace
        );
        tasks.abort_all();
    }
}
