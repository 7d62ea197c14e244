//! The accept loop of `recur serve`, in place of `axum::serve`, for what
//! that lacks: a limit on open connections, a deadline for each request's
//! headers (which also closes idle keep-alive connections, since hyper
//! times the wait for the next request's head the same way), one for each
//! write (`tokio-io-timeout`: a client that pipelines requests and never
//! reads the answers fills its socket and would hold its connection for
//! ever), and a deadline for shutting down. Request bodies are timed by the router's
//! guard (`http.rs`), which sees the declared length first.
//!
//! At `max_connections`, a new connection takes the place of the one that
//! has been idle longest (no request in progress: connected and silent,
//! sending its headers slowly, or kept alive between requests), which is
//! closed. Without that, a thousand silent sockets, reopened as the header
//! deadline closed them, kept every client out. Only when every connection
//! is busy are a few more served by a small router that answers `/health`
//! and `/live` and gives every other path a JSON 503, one request each,
//! with a short header deadline; past those, a connection is closed at
//! once. So a flood of sockets cannot use up the descriptors or the
//! slots, and a monitor can still ask whether the server is alive. hyper's
//! own answers to requests it cannot parse get JSON bodies
//! (`parse_errors.rs`).

use crate::parse_errors::JsonParseErrors;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

/// Connections served past `max_connections` by the overflow router.
pub const SPARE_CONNECTIONS: usize = 32;

/// The header deadline of those (they answer one short request).
const SPARE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// The connections holding a slot, in the order they were accepted: how
/// many requests each has in progress, and how to close it.
type Open = Arc<Mutex<BTreeMap<u64, (Arc<AtomicUsize>, Arc<Notify>)>>>;

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
    let open: Open = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    for id in 0u64.. {
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
        let slot = match permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => make_room(&open, &permits).await,
        };
        let (router, permit, keep_alive, header_timeout) = match slot {
            Some(p) => (app.clone(), p, true, limits.header_timeout),
            None => match spare.clone().try_acquire_owned() {
                Ok(p) => (
                    overflow.clone(),
                    p,
                    false,
                    limits.header_timeout.min(SPARE_HEADER_TIMEOUT),
                ),
                Err(_) => continue,
            },
        };
        // Spare connections are never closed to make room: they are not in
        // `open`.
        let (busy, close) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        if keep_alive {
            let entry = (busy.clone(), close.clone());
            open.lock().expect("not poisoned").insert(id, entry);
        }
        let open = open.clone();
        let mut stop = stop_rx.clone();
        let write_timeout = limits.write_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let mut io = tokio_io_timeout::TimeoutStream::new(JsonParseErrors::new(stream));
            io.set_write_timeout(Some(write_timeout));
            // The router, counting the requests in progress: a connection
            // with none may be closed to make room.
            let inner = TowerToHyperService::new(router);
            let counted = busy.clone();
            let service = hyper::service::service_fn(move |req| {
                use hyper::service::Service;
                counted.fetch_add(1, Ordering::SeqCst);
                let (answer, counted) = (inner.call(req), counted.clone());
                async move {
                    let r = answer.await;
                    counted.fetch_sub(1, Ordering::SeqCst);
                    r
                }
            });
            let conn = b.serve_connection(TokioIo::new(Box::pin(io)), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                _ = close.notified() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            open.lock().expect("not poisoned").remove(&id);
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

/// With every slot taken: closes the connection idle longest, if there is
/// one, and takes its slot once it is free (at once, as closing an idle
/// connection is; a moment at most). `None` when every connection is busy.
async fn make_room(
    open: &Open,
    permits: &Arc<Semaphore>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let idlest = {
        let mut open = open.lock().expect("not poisoned");
        let id = open
            .iter()
            .find(|(_, (busy, _))| busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id)?;
        // Out of the list now, so that the next newcomer picks another.
        open.remove(&id).map(|(_, close)| close)?
    };
    idlest.notify_one();
    tokio::time::timeout(Duration::from_millis(200), permits.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}
