//! `recur serve`: the LVMs, the classifier, the sentence encoder and the
//! retrieval decoder behind one HTTP server (axum on tokio), in place of
//! the original's one Python process per model and port.
//!
//! - [`config`]: what to load, the limits, with defaults that serve what
//!   `recur demo` trained.
//! - [`engine`]: the models on one compute thread, fed by a bounded queue
//!   and run in batches; [`bank`]: the retrieval decoder.
//! - [`http`]: routes, request checks, metrics middleware; [`api`]: wire
//!   types and JSON errors; [`metrics`]: Prometheus.
//! - [`listen`]: the accept loop (connection limits, deadlines, shutdown).
//!
//! The load-test client, the test fixture and the end-to-end HTTP tests
//! live in `recur-dev`, so that the service depends only on what it serves.
//!
//! The server binds and answers `/health` (503, loading) at once; the
//! models load on the compute thread, and `/health` turns 200 only after a
//! real forward pass of each has succeeded.

/// A line on standard error that never fails the server: `eprintln!`
/// panics when the stream cannot be written (a log reader that exited, a
/// full disk), which in the middle of a graceful stop dropped the requests
/// in flight. Each starts with `recur serve:`. (The server's only log: it
/// keeps no access log, and what it reports at run time is a failed batch
/// and connections cut at the end of the grace period.)
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

pub mod api;
pub mod bank;
pub mod config;
pub mod drift_rows;
pub mod engine;
pub mod hosts;
pub mod http;
pub mod listen;
pub mod metrics;
mod parse_errors;
pub mod series;

use candle_core::Device;
use config::ServeConfig;
use engine::Engine;
use http::{AppState, Status};
use recur_core::{Error, Result};
use std::future::Future;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// Serves on `listener` until `shutdown` resolves, then finishes the
/// requests in flight and returns. `ready` is called once the models have
/// loaded and passed their check (or with the error when they failed).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    cfg: ServeConfig,
    dev: Device,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(std::result::Result<&engine::Info, &Error>) + Send + 'static,
) -> Result<()> {
    let prec: recur_kernels::precision::Precision = cfg
        .precision
        .parse()
        .map_err(|e: String| Error::config("precision", e))?;
    let metrics = Arc::new(metrics::Metrics::new());
    // The engine holds a window of queued jobs to choose batches from;
    // `queue_capacity` bounds the two together (`AppState::waiting`).
    let (tx, rx) = mpsc::channel(cfg.limits.queue_capacity.max(1));
    let state = Arc::new(AppState {
        cfg: cfg.clone(),
        status: RwLock::new(Status::Loading),
        queue: tx,
        metrics: metrics.clone(),
        seen: Default::default(),
        checked: RwLock::new(None),
        loaded_from: RwLock::new(Vec::new()),
        changed_on_disk: RwLock::new(Vec::new()),
    });
    let st = state.clone();
    let worker = std::thread::Builder::new()
        .name("recur-compute".into())
        .spawn(move || {
            // What the folders hold as they are loaded.
            *st.loaded_from.write().expect("paths lock") = http::served_paths(&cfg);
            // A panic while loading (a crafted file) is a failed load with
            // its reason, not a server that says "loading" forever.
            // The check's own time is what `/health` reports as
            // `check_ms`, as for every later check (the load's took in an
            // index build: 322 s).
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Engine::load(&cfg, &dev).and_then(|(e, info)| {
                    let t = std::time::Instant::now();
                    recur_kernels::precision::scoped(prec, || e.health_check())?;
                    Ok((e, info, t.elapsed().as_secs_f64() * 1000.0))
                })
            }))
            .unwrap_or_else(|p| {
                let why = recur_core::contain::panic_message(p.as_ref());
                Err(Error::Msg(format!("loading the models failed: {why}")))
            });
            match loaded {
                Ok((engine, info, check_ms)) => {
                    ready(Ok(&info));
                    st.record_check(Ok(()), check_ms);
                    *st.status.write().expect("status lock") = Status::Ready(Arc::new(info));
                    // The queue closes when the last sender goes, which
                    // must not be this thread's.
                    drop(st);
                    // Run on a worker of a thread pool of our own, so the
                    // tensor work's parallel parts start on this thread
                    // and wake one other, instead of waking the global
                    // pool's threads and sleeping until they finish.
                    match rayon::ThreadPoolBuilder::new()
                        .num_threads(candle_core::utils::get_num_threads())
                        .thread_name(|i| format!("recur-compute-{i}"))
                        .build()
                    {
                        Ok(pool) => pool.install(|| {
                            recur_kernels::precision::scoped(prec, || engine.run(rx, metrics))
                        }),
                        Err(_) => {
                            recur_kernels::precision::scoped(prec, || engine.run(rx, metrics))
                        }
                    }
                }
                Err(e) => {
                    ready(Err(&e));
                    *st.status.write().expect("status lock") = Status::Failed(e.to_string());
                }
            }
        })
        .map_err(|e| Error::Msg(format!("cannot start the compute thread: {e}")))?;
    let checker = tokio::spawn(http::check_periodically(
        state.clone(),
        std::time::Duration::from_millis(state.cfg.limits.health_check_interval_ms),
    ));
    let l = &state.cfg.limits;
    let limits = listen::ConnLimits {
        max_connections: l.max_connections,
        header_timeout: std::time::Duration::from_millis(l.header_timeout_ms),
        write_timeout: std::time::Duration::from_millis(l.write_timeout_ms),
        grace: std::time::Duration::from_millis(l.shutdown_grace_ms),
    };
    let errors = state.metrics.errors.clone();
    let status = state.clone();
    let (app, overflow) = (http::router(state.clone()), http::overflow_router(state));
    listen::serve(listener, app, overflow, limits, errors, shutdown).await;
    // The checker holds a sender of the queue, which must close for the
    // compute thread to end.
    checker.abort();
    let _ = checker.await;
    // Stopped while the models load: nothing is in flight, and the load
    // cannot be cut short, so it is left to end with the process (a
    // SIGTERM waited out a 145 s index build, then logged "ready").
    if matches!(
        *status.status.read().expect("status lock"),
        http::Status::Loading
    ) {
        say!("recur serve: stopped before the models had loaded");
        return Ok(());
    }
    drop(status);
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .ok();
    Ok(())
}

/// The signals ignored when the process started (`nohup` ignores SIGHUP; a
/// shell ignores SIGINT in its background jobs), from the `SigIgn` mask of
/// /proc/self/status, read once before any handler is installed.
fn ignored_at_start() -> u64 {
    static MASK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MASK.get_or_init(|| {
        recur_core::fsx::proc_status("SigIgn")
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .unwrap_or(0)
    })
}

/// Whether signal number `sig` was ignored when the process started: a
/// handler would override what `nohup recur serve &` asked for.
fn ignored(sig: u32) -> bool {
    ignored_at_start() & (1 << (sig - 1)) != 0
}

/// Resolves on Ctrl-C, SIGTERM or SIGHUP (a closed terminal: it killed
/// the server at once, dropping the requests in flight), except for
/// SIGHUP and SIGINT where the process started with them ignored (`nohup`,
/// a background job), which stay ignored.
pub async fn shutdown_signal() {
    StopSignals::register().recv().await
}

/// The stop signals of [`shutdown_signal`], registered when made: a
/// SIGTERM sent after `/health` answered but before the server first
/// waited for one had killed it by the default action (a failed load's
/// exit code 2 lost to signal 15), since the handlers were installed only
/// when the wait began. Made inside the runtime.
pub struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the handlers now.
    pub fn register() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            const SIGINT: u32 = 2;
            const SIGHUP: u32 = 1;
            let unless = |sig: u32, kind: SignalKind| {
                if ignored(sig) {
                    None
                } else {
                    signal(kind).ok()
                }
            };
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: unless(SIGINT, SignalKind::interrupt()),
                hup: unless(SIGHUP, SignalKind::hangup()),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves on the next of them.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {},
                _ = next(&mut self.int) => {},
                _ = next(&mut self.hup) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Descriptors `recur serve` keeps beside its connections: the listener,
/// the runtime's, model and bank files while they load, `/metrics`' reads
/// of /proc, and the spare connections that answer 503 past the limit.
#[cfg(unix)]
const SERVE_OWN_FILES: u64 = 32 + listen::SPARE_CONNECTIONS as u64;

/// Raises the soft limit on open files to the hard one, as servers do (a
/// shell's default soft limit of 1024 is below `limits.max_connections`'
/// default room), then lowers `limits.max_connections` to what the limit
/// leaves room for, saying so. Past the limit accept fails: no newcomer is
/// answered, and no idle connection is closed to make room for it.
#[cfg(unix)]
fn fit_connections_to_open_files(cfg: &mut ServeConfig) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    let open = lim.rlim_cur as u64;
    let room = open.saturating_sub(SERVE_OWN_FILES);
    if room < 8 {
        return Err(Error::Msg(format!(
            "the open-file limit (ulimit -n) is {open}: recur serve needs {} or more (its own files and \
             at least 8 connections); raise it, e.g. `ulimit -n 4096`",
            SERVE_OWN_FILES + 8
        )));
    }
    let max = &mut cfg.limits.max_connections;
    if *max as u64 > room {
        say!(
            "recur serve: note: limits.max_connections lowered from {max} to {room}: the open-file limit (ulimit -n) \
             is {open}; raise it to serve more connections at once"
        );
        *max = room as usize;
    }
    Ok(())
}

/// `recur serve`: binds `host:port`, serves until Ctrl-C or SIGTERM.
pub fn run(mut cfg: ServeConfig, dev: Device) -> Result<()> {
    // Before any handler is installed: what the process started with.
    ignored_at_start();
    #[cfg(unix)]
    fit_connections_to_open_files(&mut cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Msg(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => "another server there? choose a port with --port",
                std::io::ErrorKind::PermissionDenied if cfg.port < 1024 => {
                    "ports below 1024 need privileges: choose one above with --port"
                }
                std::io::ErrorKind::PermissionDenied => "this system does not let recur listen there",
                _ => "is --host an address of this machine (127.0.0.1, 0.0.0.0, or its name)?",
            };
            Error::Msg(format!("cannot listen on {addr}: {e} ({hint})"))
        })?;
        let local = listener.local_addr().map_err(|e| Error::Msg(e.to_string()))?;
        say!("recur serve: listening on http://{local} (loading the models; GET /health says when ready)");
        if !local.ip().is_loopback() {
            say!(
                "recur serve: note: {} is reachable from other machines, and the service asks no one for \
                 credentials (`/info` shows its file paths): put it behind a proxy or a firewall, or set \
                 `allowed_hosts`",
                local.ip()
            );
        }
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed_at_load = failed.clone();
        let grace = cfg.limits.shutdown_grace_ms;
        let precision = if cfg.precision == "bf16" {
            let units = recur_kernels::precision::bf16_units().unwrap_or("f32 units");
            format!("; the models' products in bf16 ({units})")
        } else {
            String::new()
        };
        // The first signal starts the graceful stop; a second ends the
        // process at once. Registered before the server answers anyone.
        let mut signals = StopSignals::register();
        let shutdown = async move {
            signals.recv().await;
            say!(
                "recur serve: stopping: finishing the requests in flight (up to {grace} ms, limits.shutdown_grace_ms; again to stop now)"
            );
            tokio::spawn(async move {
                signals.recv().await;
                say!("recur serve: stopped at once");
                std::process::exit(130);
            });
        };
        serve_on(listener, cfg, dev, shutdown, move |r| match r {
            // Names from the model folders and data files: escaped for the
            // terminal (recur_core::terminal).
            Ok(info) => say!(
                "recur serve: ready on http://{local}: {}{precision}",
                recur_core::terminal::inline(&loaded(info))
            ),
            Err(e) => {
                failed_at_load.store(true, std::sync::atomic::Ordering::SeqCst);
                say!(
                    "recur serve: the models failed to load: {}\n(GET /health answers 503 with this reason; stop with Ctrl-C)",
                    recur_core::terminal::printable(&e.to_string())
                )
            }
        })
        .await?;
        say!("recur serve: stopped");
        if failed.load(std::sync::atomic::Ordering::SeqCst) {
            // A supervisor (systemd's Restart=on-failure) sees the failure.
            return Err(Error::Msg(
                "the models had failed to load (the reason is above): fix the config and start again".into(),
            ));
        }
        Ok(())
    })
}

/// What a server loaded, in words, for its start-up line.
fn loaded(info: &engine::Info) -> String {
    let mut parts = Vec::new();
    if let (Some(e), Some(b)) = (&info.encoder, &info.bank) {
        parts.push(format!(
            "model(s) {} ({}), encoder {} ({}-D), bank {} sentences ({} search)",
            info.models
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            info.models
                .iter()
                .map(|m| m.kind.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            e.path,
            e.dim,
            b.sentences,
            b.search
        ));
    }
    if let Some(c) = info
        .classifier
        .as_ref()
        .filter(|c| c.layout == recur_core::config::Layout::Sequences)
    {
        parts.push(format!(
            "classifier {} (whole series of {} channel(s), {}, {}; POST /v1/classify with `sequences`)",
            c.path,
            c.features.len(),
            match c.classes.len() {
                0 => "2 classes".to_string(),
                k => format!("{k} classes"),
            },
            match c.fixed_length {
                Some(l) => format!("exactly {l} steps"),
                None => "any length".to_string(),
            }
        ));
    } else if let Some(c) = &info.classifier {
        parts.push(format!(
            "classifier {} ({} deployed, {} features, windows of {} rows)",
            c.path,
            c.deployed,
            c.features.len(),
            c.min_rows
        ));
    }
    parts.join("; ")
}
