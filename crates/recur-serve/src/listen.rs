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
//! closed; with none idle, of the request waiting for its body whose body
//! has come slowest (bytes a second since its head; past `MIN_IDLE`).
//! Without that, a thousand silent sockets, reopened as the header
//! deadline closed them, kept every client out; and with a fixed wait
//! before a body-waiter could be closed (two seconds), new connections
//! dripping bodies, opened faster than they aged, kept every slot too young
//! to close. A body sent with its head, as clients send them, is read
//! before it could be chosen; a large one uploading fast is chosen last. Only when every connection
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};

/// Connections served past `max_connections` by the overflow router.
pub const SPARE_CONNECTIONS: usize = 32;

/// The header deadline of those (they answer one short request).
const SPARE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection may be closed to make room once it has been idle this
/// long: a keep-alive client between two quick requests, or one whose
/// request is still in the socket's buffer, keeps its slot.
const MIN_IDLE: Duration = Duration::from_millis(250);

/// A connection holding a slot: requests in progress (counted until the
/// answer's body is written), when it last finished or began one (ms
/// since the server started), and how to close it.
struct Slot {
    busy: AtomicUsize,
    since_ms: AtomicU64,
    close: Notify,
    /// Its request has its head read but not yet its body.
    receiving: Arc<AtomicBool>,
    /// The bytes of that body read so far.
    got: Arc<AtomicU64>,
}

/// Put in each request's extensions: the router's body reader marks the
/// body read (`done`), after which the request is in progress proper.
#[derive(Clone)]
pub struct Receiving(Arc<AtomicBool>, Arc<AtomicU64>);

impl Receiving {
    /// The body has been read (or will not be).
    pub fn done(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// `n` more bytes of the body have come.
    pub fn add(&self, n: usize) {
        self.1.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// The connections holding a slot, by the order they were accepted.
type Open = Arc<Mutex<BTreeMap<u64, Arc<Slot>>>>;

/// Takes a connection out of `open` when its task ends, however it ends.
struct Leave(Open, u64);

impl Drop for Leave {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.lock() {
            open.remove(&self.1);
        }
    }
}

/// One request in progress on a slot; on drop (the answer's body written,
/// or the request dropped) the slot is idle again from now.
struct Busy(Arc<Slot>, Instant);

impl Busy {
    fn begin(slot: &Arc<Slot>, start: Instant) -> Busy {
        slot.busy.fetch_add(1, Ordering::SeqCst);
        slot.since_ms.store(ms(start), Ordering::SeqCst);
        Busy(slot.clone(), start)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.since_ms.store(ms(self.1), Ordering::SeqCst);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

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
    errors: prometheus::IntCounterVec,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let spare = Arc::new(Semaphore::new(SPARE_CONNECTIONS));
    let open: Open = Arc::default();
    let start = Instant::now();
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
        // Idle since it was accepted: taken here, not when its task first
        // runs, so that connections are ranked in the order they came.
        let accepted = ms(start);
        // A slot, or the promise of one: the connection idle longest is
        // told to close, and this one waits for its slot in its own task
        // (never in this loop, which must keep accepting).
        let (permit, room) = match permits.clone().try_acquire_owned() {
            Ok(p) => (Some(p), false),
            Err(_) => (None, make_room(&open, start)),
        };
        let (app, overflow, spare, permits) = (
            app.clone(),
            overflow.clone(),
            spare.clone(),
            permits.clone(),
        );
        let open = open.clone();
        let errors = errors.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let permit = match permit {
                Some(p) => Some(p),
                None if room => {
                    tokio::time::timeout(Duration::from_millis(500), permits.acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                None => None,
            };
            // Spare connections are never closed to make room: they are
            // not in `open`.
            let (router, _permit, keep_alive, header_timeout) = match permit {
                Some(p) => (app, p, true, limits.header_timeout),
                None => match spare.try_acquire_owned() {
                    Ok(p) => (
                        overflow,
                        p,
                        false,
                        limits.header_timeout.min(SPARE_HEADER_TIMEOUT),
                    ),
                    Err(_) => return,
                },
            };
            let slot = Arc::new(Slot {
                busy: AtomicUsize::new(0),
                since_ms: AtomicU64::new(accepted),
                close: Notify::new(),
                receiving: Arc::new(AtomicBool::new(false)),
                got: Arc::new(AtomicU64::new(0)),
            });
            let _leave = keep_alive.then(|| {
                open.lock().expect("not poisoned").insert(id, slot.clone());
                Leave(open.clone(), id)
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(keep_alive);
            let mut io = tokio_io_timeout::TimeoutStream::new(JsonParseErrors::new(stream, errors));
            io.set_write_timeout(Some(limits.write_timeout));
            // The router, each request counted as in progress until its
            // answer's body has been written (the guard rides in the body).
            let inner = TowerToHyperService::new(router);
            let counted = slot.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    use http_body_util::BodyExt;
                    use hyper::service::Service;
                    let busy = Busy::begin(&counted, start);
                    counted.got.store(0, Ordering::SeqCst);
                    counted.receiving.store(true, Ordering::SeqCst);
                    req.extensions_mut()
                        .insert(Receiving(counted.receiving.clone(), counted.got.clone()));
                    let answer = inner.call(req);
                    async move {
                        let r = answer.await?;
                        Ok::<_, std::convert::Infallible>(r.map(|body| {
                            body.map_frame(move |f| {
                                let _ = &busy;
                                f
                            })
                        }))
                    }
                },
            );
            let conn = b.serve_connection(TokioIo::new(Box::pin(io)), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Shutting down: a request in progress is answered (within
                // the grace period); a connection with none, idle or still
                // sending a head, is closed after a moment to flush
                // (hyper's graceful shutdown would wait for a slow head,
                // adding the header deadline to every restart).
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    // A head that completes within the moment is a request
                    // in progress after all: answered, not dropped.
                    finish(conn, || slot.busy.load(Ordering::SeqCst) > 0).await;
                }
                // Told to make room: a request begun meanwhile is answered
                // first; an idle connection gets a moment to flush what it
                // was sending, then is dropped (hyper's graceful shutdown
                // would wait for a head being sent slowly).
                _ = slot.close.notified() => {
                    conn.as_mut().graceful_shutdown();
                    // Chosen idle, a request it begins in the moment is
                    // answered; chosen as the slowest body, it is not.
                    let idle = slot.busy.load(Ordering::SeqCst) == 0;
                    finish(conn, || {
                        slot.busy.load(Ordering::SeqCst) > 0
                            && (idle || !slot.receiving.load(Ordering::SeqCst))
                    })
                    .await;
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
        say!(
            "recur serve: {} connection(s) still open after the grace period ({} ms, limits.shutdown_grace_ms): closed",
            tasks.len(),
            limits.grace.as_millis()
        );
        tasks.abort_all();
    }
}

/// A connection told to shut down: awaited to its end while `answering`
/// (a request it must answer), else given a moment to flush and dropped,
/// unless a request it began in that moment is to be answered.
async fn finish<F: Future>(mut conn: std::pin::Pin<&mut F>, answering: impl Fn() -> bool) {
    if answering()
        || tokio::time::timeout(Duration::from_millis(100), conn.as_mut())
            .await
            .is_err()
            && answering()
    {
        let _ = conn.await;
    }
}

/// With every slot taken: tells the connection idle longest (and for at
/// least [`MIN_IDLE`]) to close, taking it out of `open` so that the next
/// newcomer picks another. `false` when every connection is busy or
/// active just now.
fn make_room(open: &Open, start: Instant) -> bool {
    let mut open = open.lock().expect("not poisoned");
    let now = ms(start);
    let waited = |min: Duration| {
        move |(since, _): &(u64, u64)| now.saturating_sub(*since) >= min.as_millis() as u64
    };
    let idlest = open
        .iter()
        .filter(|(_, s)| s.busy.load(Ordering::SeqCst) == 0)
        .map(|(id, s)| (s.since_ms.load(Ordering::SeqCst), *id))
        .filter(waited(MIN_IDLE))
        .min();
    // Else the request whose body comes slowest (bytes a second since its
    // head), the oldest of equals, once past MIN_IDLE: a request whose
    // body is all there is never closed.
    let slowest = || {
        open.iter()
            .filter(|(_, s)| {
                s.busy.load(Ordering::SeqCst) == 1 && s.receiving.load(Ordering::SeqCst)
            })
            .map(|(id, s)| (s.since_ms.load(Ordering::SeqCst), *id, &s.got))
            .filter(|(since, _, _)| now.saturating_sub(*since) >= MIN_IDLE.as_millis() as u64)
            .map(|(since, id, got)| {
                let age = now.saturating_sub(since).max(1);
                (got.load(Ordering::SeqCst) * 1000 / age, since, id)
            })
            .min()
            .map(|(_, since, id)| (since, id))
    };
    match idlest.or_else(slowest).and_then(|(_, id)| open.remove(&id)) {
        Some(slot) => {
            slot.close.notify_one();
            true
        }
        None => false,
    }
}
