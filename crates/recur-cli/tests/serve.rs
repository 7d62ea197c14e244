//! `recur serve` and `recur bench serve` as a user runs them: the binary
//! on the fixture's tiny models, stopped by SIGTERM.

mod common;

use common::{err, ok, recur};
use std::process::Command;

#[cfg(unix)]
#[test]
fn serve_answers_until_sigterm_then_exits_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let cfg = recur_dev::fixture::write(d.path(), 1).unwrap();
    let (mut child, url, lines) = common::serve(&cfg);
    recur_dev::load::wait_ready(&url, 60).unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent
        .post(format!("{url}/chat"))
        .header("content-type", "application/json")
        .send(r#"{"messages": ["the cat sat on the mat"]}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(recur_dev::fixture::SENTENCES.contains(&body["response"].as_str().unwrap()));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.iter().any(|l| l.contains("ready on")), "{rest:?}");
    assert_eq!(rest.last().unwrap(), "recur serve: stopped", "{rest:?}");
}

#[test]
fn bench_serve_reports_latency_errors_and_memory_per_thousand() {
    let d = tempfile::tempdir().unwrap();
    let cfg = recur_dev::fixture::write(d.path(), 2).unwrap();
    let json = d.path().join("load.json");
    let out = ok(&recur(&[
        "bench",
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--clients",
        "4",
        "--requests",
        "1500",
        "--fresh",
        "--json",
        json.to_str().unwrap(),
    ]));
    assert!(out.contains("errors 0"), "{out}");
    assert!(out.contains("p50"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["ok"], 1500);
    assert_eq!(r["errors"], 0);
    let (p50, p99) = (r["p50_ms"].as_f64().unwrap(), r["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{r}");
    // After the first thousand and after the last request.
    assert_eq!(r["rss_by_thousand"].as_array().unwrap().len(), 2, "{r}");
}

#[test]
fn serve_without_the_demo_or_a_config_says_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["-q", "serve"])
        .current_dir(d.path())
        .output()
        .unwrap();
    let e = err(&out);
    assert!(e.contains("recur demo") && e.contains("--config"), "{e}");
    let bad = d.path().join("serve.yaml");
    std::fs::write(&bad, "models: []\nport: 80800\n").unwrap();
    let e = err(&recur(&["serve", "--config", bad.to_str().unwrap()]));
    assert!(e.contains("serve.yaml") && e.contains("port"), "{e}");
    std::fs::write(&bad, "models: []\n").unwrap();
    let e = err(&recur(&["serve", "--config", bad.to_str().unwrap()]));
    assert!(e.contains("models") && e.contains("at least one"), "{e}");
}
