//! `recur bench serve`: its arguments, the server it starts and the
//! load-test report; the work is in recur_dev::load.

use anyhow::{bail, Context, Result};
use recur_dev::load::{self, ChildServer, LoadOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A running server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Serve config of the server it starts (default: the demo's models).
    #[arg(long, conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 64, value_parser = crate::at_least_one)]
    pub clients: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000, value_parser = crate::at_least_one)]
    pub requests: usize,
    /// Messages per request (a conversation's history).
    #[arg(long, default_value_t = 3, value_parser = crate::at_least_one)]
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

/// Runs the load test against `--url`, or against `recur serve` started as
/// a child process on a free loopback port.
pub fn bench(
    a: BenchArgs,
    threads: Option<usize>,
    precision: Option<&str>,
    progress: bool,
) -> Result<()> {
    let messages = load::read_messages(a.messages.as_deref())?;
    // A server given by --url is up already or soon (30 s); the child
    // started here loads its models first (up to 300 s).
    let opts = |url: String, wait_s: u64| LoadOptions {
        url,
        clients: a.clients,
        requests: a.requests,
        turns: a.turns,
        fresh: a.fresh,
        messages: messages.clone(),
        wait_s,
    };
    let report = match &a.url {
        Some(_) if precision.is_some() => bail!(
            "--precision sets the server bench starts; a server at --url runs at its own \
             (its config's `precision`)"
        ),
        Some(u) => load::run(&opts(u.clone(), 30), progress)?,
        None => {
            // Refuse a bad config here, before a silent child fails on it.
            recur_serve::config::ServeConfig::resolve(a.config.as_deref(), None, None)?;
            let exe = std::env::current_exe().context("cannot find the recur binary")?;
            let mut server = ChildServer::start(&exe, threads, precision, a.config.as_deref())?;
            errln!(
                "started `recur serve` on {} (pid {}{}); give --url to test another server",
                server.url,
                server.pid(),
                precision.map_or(String::new(), |p| format!(", --precision {p}"))
            );
            if progress {
                errln!("waiting for the server to load its models (up to 300 s)");
            }
            server.wait_ready(300)?;
            load::run(&opts(server.url.clone(), 300), progress)?
        }
    };
    if let Some(j) = a.json {
        recur_core::fsx::write_json(&j, &report)?;
    }
    out!("{report}");
    if report.errors > 0 {
        bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}
