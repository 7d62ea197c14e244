//! `recur serve` and `recur bench serve`: the config from a file or the
//! demo's defaults, the flags over it, and the load-test report.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use recur_dev::load::{self, LoadOptions, LoadReport};
use recur_serve::config::ServeConfig;
use std::path::{Path, PathBuf};

/// The config file, or what `recur demo` trained when there is none.
pub fn config(file: Option<&Path>, host: Option<String>, port: Option<u16>) -> Result<ServeConfig> {
    let mut cfg = match file {
        Some(f) => ServeConfig::from_file(f)?,
        None => ServeConfig::demo_defaults()?,
    };
    if let Some(h) = host {
        cfg.host = h;
    }
    if let Some(p) = port {
        cfg.port = p;
    }
    Ok(cfg)
}

pub fn serve(cfg: ServeConfig, dev: &Device) -> Result<()> {
    recur_serve::run(cfg, dev.clone())?;
    Ok(())
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A running server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Serve config of the server it starts (default: the demo's models).
    #[arg(long, conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub requests: usize,
    /// Messages per request (a conversation's history).
    #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub turns: usize,
    /// Make each request's newest message unique, so every request
    /// runs the encoder (default: messages repeat and come from the
    /// server's embedding cache).
    #[arg(long)]
    pub fresh: bool,
    /// Messages, one per line (default: 20 built-in chat lines).
    #[arg(long)]
    pub messages: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn messages(file: Option<&Path>) -> Result<Vec<String>> {
    let Some(f) = file else {
        return Ok(load::MESSAGES.iter().map(|s| s.to_string()).collect());
    };
    let text = recur_core::fsx::read_text(f)?;
    let m: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if m.is_empty() {
        bail!("{} holds no message (one per line)", f.display());
    }
    Ok(m)
}

/// Runs the load test against `--url`, or against a server started in
/// this process on a free loopback port.
pub fn bench(a: BenchArgs, threads: Option<usize>, progress: bool) -> Result<()> {
    let msgs = messages(a.messages.as_deref())?;
    let opts = |url: String| LoadOptions {
        url,
        clients: a.clients,
        requests: a.requests,
        turns: a.turns,
        fresh: a.fresh,
        messages: msgs.clone(),
        wait_s: 300,
    };
    let report = match &a.url {
        Some(u) => load::run(&opts(u.clone()), progress)?,
        None => {
            // The server runs as a child process so that the memory it
            // reports is its own, not the load generator's as well.
            config(a.config.as_deref(), None, None)?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let exe = std::env::current_exe().context("cannot find the recur binary")?;
            let mut cmd = std::process::Command::new(exe);
            cmd.args(["--quiet", "serve", "--host", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if let Some(threads) = threads {
                cmd.args(["--threads", &threads.to_string()]);
            }
            if let Some(c) = &a.config {
                cmd.arg("--config").arg(c);
            }
            let mut child = cmd.spawn().context("cannot start `recur serve`")?;
            let url = format!("http://127.0.0.1:{port}");
            eprintln!(
                "started `recur serve` on {url} (pid {}); give --url to test another server",
                child.id()
            );
            let r = load::run(&opts(url), progress);
            stop(&mut child);
            r?
        }
    };
    print(&report);
    if let Some(j) = a.json {
        recur_core::fsx::write_json(&j, &report)?;
    }
    if report.errors > 0 {
        bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}

fn print(r: &LoadReport) {
    println!(
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
    );
    println!(
        "ok {}  errors {}  {:.1} s  {:.0} requests/s  mean batch {:.1}",
        r.ok, r.errors, r.seconds, r.requests_per_s, r.mean_batch
    );
    println!(
        "latency (client) p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
    );
    println!(
        "latency (server total_latency_ms) p50 {:.2} ms  p99 {:.2} ms",
        r.server_p50_ms, r.server_p99_ms
    );
    if !r.rss_by_thousand.is_empty() {
        let mib: Vec<String> = r
            .rss_by_thousand
            .iter()
            .map(|b| format!("{:.0}", *b as f64 / 1048576.0))
            .collect();
        println!(
            "server memory (MiB) after each thousand: {}  (first to last {:+.1}%)",
            mib.join(" "),
            r.rss_growth_pct().unwrap_or(0.0)
        );
    }
    for e in &r.error_samples {
        println!("error: {e}");
    }
}

/// Stops the server: SIGTERM (it finishes what is in flight), then waits.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    #[cfg(not(unix))]
    let _ = child.kill();
    let _ = child.wait();
}
