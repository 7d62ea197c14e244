//! The load test of `recur bench serve`: a bounded client (one thread and
//! one connection per simulated user) that sends `/chat` requests to a
//! running server and reports latency percentiles, errors, throughput and
//! the server's resident memory after each thousand requests (read from
//! its `/metrics`, so it works against any server, local or not).
//!
//! Each request is a short conversation: `turns` consecutive messages from
//! the message list, as a chat client resends its history. In `fresh` mode
//! the newest message of each request is made unique, so every request
//! runs the encoder once; otherwise the messages repeat and the server's
//! embedding cache answers them, which measures the rest of the pipeline.

use recur_core::stats::percentile;
use recur_core::{Error, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Chat-like messages used when the load test is given none.
pub const MESSAGES: &[&str] = &[
    "What do you know about the history of Rome?",
    "The city was founded on seven hills.",
    "Tell me more about its emperors.",
    "Augustus was the first of them.",
    "How did the republic end?",
    "I read that Caesar crossed the Rubicon.",
    "What happened to the economy afterwards?",
    "Trade across the Mediterranean grew quickly.",
    "Which languages were spoken there?",
    "Latin in the west and Greek in the east.",
    "How large was the army?",
    "Roads connected the provinces to the capital.",
    "Why did the western empire fall?",
    "Historians still argue about the causes.",
    "What is the weather like in Paris today?",
    "It rained all morning near the river.",
    "The election results were announced last night.",
    "The president spoke about jobs and taxes.",
    "Our team won the match in the final minute.",
    "The coach praised the young striker.",
];

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub clients: usize,
    pub requests: usize,
    /// Messages per request.
    pub turns: usize,
    /// Make each request's newest message unique (one encoder pass each).
    pub fresh: bool,
    pub messages: Vec<String>,
    /// Seconds to wait for `/health` to answer 200 before starting.
    pub wait_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub clients: usize,
    pub requests: usize,
    pub turns: usize,
    pub fresh: bool,
    pub ok: usize,
    pub errors: usize,
    /// The first few error answers, for the reader.
    pub error_samples: Vec<String>,
    pub seconds: f64,
    pub requests_per_s: f64,
    /// Client-side latency, request sent to answer read.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The server's own `total_latency_ms` (its handler, queue included).
    pub server_p50_ms: f64,
    pub server_p99_ms: f64,
    /// Mean batch size the server reported.
    pub mean_batch: f64,
    /// Server resident memory (bytes) after each thousand requests.
    pub rss_by_thousand: Vec<u64>,
}

impl LoadReport {
    /// Growth of resident memory from the first thousand to the last, in %.
    pub fn rss_growth_pct(&self) -> Option<f64> {
        let (a, b) = (
            *self.rss_by_thousand.first()?,
            *self.rss_by_thousand.last()?,
        );
        Some((b as f64 - a as f64) / a as f64 * 100.0)
    }
}

/// Requests, latency, errors and the server's memory, a few lines.
impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let r = self;
        writeln!(
            f,
            "{} /chat requests, {} clients, {} messages each ({}), against {}",
            r.requests,
            r.clients,
            r.turns,
            if r.fresh {
                "the newest unique: one encoder pass each"
            } else {
                "repeated: embeddings from the cache"
            },
            r.url
        )?;
        writeln!(
            f,
            "ok {}  errors {}  {:.1} s  {:.0} requests/s  mean batch {:.1}",
            r.ok, r.errors, r.seconds, r.requests_per_s, r.mean_batch
        )?;
        writeln!(
            f,
            "latency (client) p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
        )?;
        writeln!(
            f,
            "latency (server total_latency_ms) p50 {:.2} ms  p99 {:.2} ms",
            r.server_p50_ms, r.server_p99_ms
        )?;
        if !r.rss_by_thousand.is_empty() {
            let mib: Vec<String> = r
                .rss_by_thousand
                .iter()
                .map(|b| format!("{:.0}", *b as f64 / 1048576.0))
                .collect();
            writeln!(
                f,
                "server memory (MiB) after each thousand: {}  (first to last {:+.1}%)",
                mib.join(" "),
                r.rss_growth_pct().unwrap_or(0.0)
            )?;
        }
        for e in &r.error_samples {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

/// The clients' messages: one per non-empty line of `file`, or the
/// built-in chat lines without one.
pub fn read_messages(file: Option<&Path>) -> Result<Vec<String>> {
    let Some(f) = file else {
        return Ok(MESSAGES.iter().map(|s| s.to_string()).collect());
    };
    let m: Vec<String> = recur_core::fsx::read_text(f)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if m.is_empty() {
        return Err(Error::Msg(format!(
            "{} holds no message (one per line)",
            f.display()
        )));
    }
    Ok(m)
}

/// `recur serve` run as a child process on a free loopback port, so that
/// the memory the load test reads from its `/metrics` is the server's
/// alone, not the load generator's too. Dropping it stops the server with
/// SIGTERM (it finishes what is in flight) and waits for it.
pub struct ChildServer {
    child: std::process::Child,
    pub url: String,
    /// The end of what the server wrote to stderr, for the error when it
    /// exits before it is ready.
    stderr: Arc<std::sync::Mutex<String>>,
}

impl ChildServer {
    /// Starts `exe serve` (the `recur` binary) quietly, with `--threads`,
    /// `--precision` and `--config` when given. On Linux the server is
    /// sent SIGTERM when the thread that started it ends (the kernel's
    /// parent-death signal follows the thread): start it from a thread
    /// that lives as long as the server should.
    pub fn start(
        exe: &Path,
        threads: Option<usize>,
        precision: Option<&str>,
        config: Option<&Path>,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Msg(format!("cannot find a free loopback port: {e}")))?
            .port();
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--quiet");
        if let Some(p) = precision {
            cmd.args(["--precision", p]);
        }
        cmd.args(["serve", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(threads) = threads {
            cmd.args(["--threads", &threads.to_string()]);
        }
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        // The server goes with the load test however it ends: a signal to
        // the bench alone (a supervisor's SIGTERM, a SIGKILL) left it
        // running, listening, with no parent.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: getpid, prctl and getppid are async-signal-safe, as
            // what runs between fork and exec must be.
            let parent = unsafe { libc::getpid() };
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent died before the call: no signal will come.
                    if libc::getppid() != parent {
                        libc::raise(libc::SIGTERM);
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Msg(format!("cannot start `{} serve`: {e}", exe.display())))?;
        // Read on, so the server never blocks on a full pipe; the last
        // few kilobytes are kept.
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    let mut k = keep.lock().expect("stderr lock");
                    k.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if k.len() > 8192 {
                        let cut = k.len() - 4096;
                        let cut = (cut..k.len()).find(|&i| k.is_char_boundary(i)).unwrap_or(0);
                        k.drain(..cut);
                    }
                }
            });
        }
        Ok(ChildServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stderr,
        })
    }

    /// Waits up to `wait_s` for the server's `/health` to answer 200; an
    /// error at once, with what it wrote, if it exits first (a config it
    /// refuses), where the load test waited out the whole time.
    pub fn wait_ready(&mut self, wait_s: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(wait_s);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader take the last of the pipe.
                std::thread::sleep(Duration::from_millis(100));
                let said = self.stderr.lock().expect("stderr lock").trim().to_string();
                return Err(Error::Msg(format!(
                    "`recur serve` exited ({status}) before it was ready:\n{said}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Msg(format!(
                    "{}/health did not answer 200 within {wait_s} s",
                    self.url
                )));
            }
            // A server whose models failed to load answers 503 `failed`
            // for good: said at once, with its reason.
            if let Ok(mut r) = agent().get(format!("{}/health", self.url)).call() {
                let body = r.body_mut().read_to_string().unwrap_or_default();
                if r.status() == 200 {
                    return Ok(());
                }
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if v["status"] == "failed" {
                    return Err(Error::Msg(format!(
                        "`recur serve` could not load its models: {}",
                        v["reason"].as_str().unwrap_or(&body)
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// The server's resident memory, from its `/metrics`.
pub fn server_rss(agent: &ureq::Agent, url: &str) -> Option<u64> {
    let mut r = agent.get(format!("{url}/metrics")).call().ok()?;
    let text = r.body_mut().read_to_string().ok()?;
    text.lines()
        .find(|l| l.starts_with("process_resident_memory_bytes "))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|v| v as u64)
}

/// Waits for `/health` to answer 200.
pub fn wait_ready(url: &str, wait_s: u64) -> Result<()> {
    let a = agent();
    let deadline = Instant::now() + Duration::from_secs(wait_s);
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match a.get(format!("{url}/health")).call() {
            Ok(r) if r.status() == 200 => return Ok(()),
            Ok(mut r) => last = r.body_mut().read_to_string().unwrap_or_default(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(Error::Msg(format!(
        "{url}/health did not answer 200 within {wait_s} s (last: {last}); is `recur serve` running?"
    )))
}

struct Sample {
    ms: f64,
    server_ms: Option<f64>,
    batch: Option<f64>,
    error: Option<String>,
}

/// Runs the load test.
pub fn run(o: &LoadOptions, progress: bool) -> Result<LoadReport> {
    if o.clients == 0 || o.requests == 0 || o.turns == 0 || o.messages.is_empty() {
        return Err(Error::Msg(
            "clients, requests, turns and the message list must all be at least 1".into(),
        ));
    }
    let url = o.url.trim_end_matches('/').to_string();
    // A URL that cannot name a server is an error at once, not after the
    // wait for its /health.
    let uri = ureq::http::Uri::try_from(url.as_str()).ok();
    let good = uri.as_ref().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
    });
    if !good {
        return Err(Error::Msg(format!(
            "--url {url:?} is not an http:// address of a server; give one such as http://127.0.0.1:8080"
        )));
    }
    if progress {
        eprintln!(
            "waiting for {url}/health to answer 200 (up to {} s)",
            o.wait_s
        );
    }
    wait_ready(&url, o.wait_s)?;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(o.requests)));
    let bar = if progress {
        indicatif::ProgressBar::new(o.requests as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    let monitor = {
        let (done, url, total) = (done.clone(), url.clone(), o.requests);
        std::thread::spawn(move || {
            let a = agent();
            let mut rss = Vec::new();
            let mut mark = 1000.min(total);
            loop {
                let d = done.load(Ordering::Relaxed);
                if d >= mark {
                    if let Some(b) = server_rss(&a, &url) {
                        rss.push(b);
                    }
                    if mark >= total {
                        break;
                    }
                    mark = (mark + 1000).min(total);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            rss
        })
    };
    let threads: Vec<_> = (0..o.clients)
        .map(|_| {
            let (next, done, samples, o, url, bar) = (
                next.clone(),
                done.clone(),
                samples.clone(),
                o.clone(),
                url.clone(),
                bar.clone(),
            );
            std::thread::spawn(move || {
                let a = agent();
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= o.requests {
                        break;
                    }
                    let n = o.messages.len();
                    let mut msgs: Vec<String> = (0..o.turns)
                        .map(|j| o.messages[(i + j) % n].clone())
                        .collect();
                    if o.fresh {
                        if let Some(last) = msgs.last_mut() {
                            last.push_str(&format!(" (request {i})"));
                        }
                    }
                    let body = serde_json::json!({ "messages": msgs });
                    let t = Instant::now();
                    let r = a
                        .post(format!("{url}/chat"))
                        .header("content-type", "application/json")
                        .send(body.to_string());
                    let s = match r {
                        Ok(mut resp) => {
                            let status = resp.status().as_u16();
                            let text = resp.body_mut().read_to_string().unwrap_or_default();
                            let ms = t.elapsed().as_secs_f64() * 1000.0;
                            if status == 200 {
                                let v: serde_json::Value =
                                    serde_json::from_str(&text).unwrap_or_default();
                                Sample {
                                    ms,
                                    server_ms: v["total_latency_ms"].as_f64(),
                                    batch: v["batch_size"].as_f64(),
                                    error: None,
                                }
                            } else {
                                Sample {
                                    ms,
                                    server_ms: None,
                                    batch: None,
                                    error: Some(format!("{status}: {text}")),
                                }
                            }
                        }
                        Err(e) => Sample {
                            ms: t.elapsed().as_secs_f64() * 1000.0,
                            server_ms: None,
                            batch: None,
                            error: Some(e.to_string()),
                        },
                    };
                    mine.push(s);
                    done.fetch_add(1, Ordering::Relaxed);
                    bar.inc(1);
                }
                samples.lock().expect("samples lock").extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| Error::Msg("a load-test client thread panicked".into()))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let rss_by_thousand = monitor.join().unwrap_or_default();
    let samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
    let mut lat: Vec<f64> = samples
        .iter()
        .filter(|s| s.error.is_none())
        .map(|s| s.ms)
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut server: Vec<f64> = samples.iter().filter_map(|s| s.server_ms).collect();
    server.sort_by(f64::total_cmp);
    let batches: Vec<f64> = samples.iter().filter_map(|s| s.batch).collect();
    let errors: Vec<&String> = samples.iter().filter_map(|s| s.error.as_ref()).collect();
    let pct = |v: &[f64], q: f64| {
        if v.is_empty() {
            f64::NAN
        } else {
            percentile(v, q)
        }
    };
    Ok(LoadReport {
        url,
        clients: o.clients,
        requests: o.requests,
        turns: o.turns,
        fresh: o.fresh,
        ok: lat.len(),
        errors: errors.len(),
        error_samples: errors.iter().take(5).map(|s| s.to_string()).collect(),
        seconds,
        requests_per_s: samples.len() as f64 / seconds,
        p50_ms: pct(&lat, 50.0),
        p90_ms: pct(&lat, 90.0),
        p99_ms: pct(&lat, 99.0),
        max_ms: lat.last().copied().unwrap_or(f64::NAN),
        server_p50_ms: pct(&server, 50.0),
        server_p99_ms: pct(&server, 99.0),
        mean_batch: batches.iter().sum::<f64>() / batches.len().max(1) as f64,
        rss_by_thousand,
    })
}
