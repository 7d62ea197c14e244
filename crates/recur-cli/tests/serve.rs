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
    // SIGHUP (a closed terminal) stops it as gracefully; it killed it.
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        answers_until(&cfg, signal);
    }
}

#[cfg(unix)]
fn answers_until(cfg: &std::path::Path, signal: libc::c_int) {
    let (mut child, url, lines) = common::serve(cfg);
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
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "signal {signal}: {status:?}");
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
    // bench serve with a --url that names no server says so at once (it
    // waited 300 s for its /health).
    let t = std::time::Instant::now();
    let e = err(&recur(&[
        "bench",
        "serve",
        "--url",
        "notaurl",
        "--requests",
        "1",
    ]));
    assert!(e.contains("notaurl") && e.contains("http://"), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
}

/// A short window (`min_context`) is the context `/chat` builds from as
/// many sentences: `recur lvm predict --min-context` on a chunks file of
/// two sentences and a target, and `/chat` given the two, rank the bank
/// alike with the same cosines.
#[cfg(unix)]
#[test]
fn a_padded_short_window_predicts_what_chat_predicts() {
    use recur_dev::fixture::{CONTEXT, SENTENCES};
    let d = tempfile::tempdir().unwrap();
    let cfg = recur_dev::fixture::write(d.path(), 3).unwrap();
    let dev = candle_core::Device::Cpu;
    let enc = recur_text::SentenceEncoder::load(&d.path().join("encoder"), &dev).unwrap();
    let said = [SENTENCES[2], SENTENCES[3]];
    let v = enc.encode(&[said[0], said[1], SENTENCES[4]], 8).unwrap();
    let chunks = d.path().join("short.npz");
    recur_data::npz::write_chunks(&chunks, &v, enc.dim, &[0, 0, 0], &[0, 1, 2]).unwrap();
    let npy = d.path().join("next.npy");
    let data = chunks.to_str().unwrap();
    let model = d.path().join("lvm");
    let model = model.to_str().unwrap();
    // Without --min-context three chunks give no window of CONTEXT plus a target.
    assert_eq!(CONTEXT, 3);
    let e = err(&recur(&[
        "lvm", "predict", "--model", model, "--data", data, "--output", "x.npy",
    ]));
    assert!(e.contains("no windows"), "{e}");
    let out = ok(&recur(&[
        "lvm",
        "predict",
        "--model",
        model,
        "--data",
        data,
        "--output",
        npy.to_str().unwrap(),
        "--min-context",
        "2",
    ]));
    assert!(out.contains("1 predicted vectors"), "{out}");
    let pred: Vec<f32> = candle_core::Tensor::read_npy(&npy)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want = recur_dev::fixture::ranked(&enc, &pred).unwrap();

    let (mut child, url, _lines) = common::serve(&cfg);
    recur_dev::load::wait_ready(&url, 60).unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let ask = |exclude: Option<bool>| {
        let mut body = serde_json::json!({"messages": said, "model": "tiny", "top_k": 5});
        if let Some(x) = exclude {
            body["exclude_context"] = x.into();
        }
        let mut r = agent
            .post(format!("{url}/chat"))
            .header("content-type", "application/json")
            .send(body.to_string().as_str())
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap())
    };
    let (whole, without) = (ask(Some(false)), ask(None));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait().unwrap();
    // With the request's own sentences: the bank ranked as lvm predict's
    // vector ranks it.
    assert_eq!(whole.0, 200, "{}", whole.1);
    let r: serde_json::Value = serde_json::from_str(&whole.1).unwrap();
    assert_eq!(r["ctx_fill_mode"], "padded");
    let got = r["neighbours"].as_array().unwrap();
    assert_eq!(got.len(), 5);
    for (g, (s, c)) in got.iter().zip(&want) {
        assert_eq!(g["text"], s.as_str());
        let gc = g["cosine"].as_f64().unwrap() as f32;
        assert!((gc - c).abs() < 1e-5, "{s}: /chat {gc}, lvm predict {c}");
    }
    // By default (`decoder.exclude_context`) the same ranking less the two
    // sentences the request said, the answer its first.
    assert_eq!(without.0, 200, "{}", without.1);
    let r: serde_json::Value = serde_json::from_str(&without.1).unwrap();
    let others: Vec<&(String, f32)> = want
        .iter()
        .filter(|(s, _)| !said.contains(&s.as_str()))
        .collect();
    // Here the nearest sentence is one the request said (why the default
    // leaves them out).
    assert!(said.contains(&want[0].0.as_str()), "{want:?}");
    let got = r["neighbours"].as_array().unwrap();
    assert_eq!(got.len(), 5.min(others.len()));
    for (g, (s, _)) in got.iter().zip(&others) {
        assert_eq!(g["text"], s.as_str());
    }
    assert_eq!(r["response"], others[0].0.as_str());
}

#[test]
fn a_bank_another_encoder_built_is_refused_and_the_failed_server_exits_non_zero() {
    let d = tempfile::tempdir().unwrap();
    let cfg = recur_dev::fixture::write(d.path(), 3).unwrap();
    // The bank's build record names an encoder other than the one served
    // (same dimension: only the identity tells them apart).
    std::fs::write(
        d.path().join("bank.build.json"),
        r#"{"encoder": "/elsewhere/paraphrase-MiniLM", "encoder_identity": "0123abcd"}"#,
    )
    .unwrap();
    let (mut child, url, lines) = common::serve(&cfg);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut body = serde_json::Value::Null;
    for _ in 0..600 {
        let mut r = agent.get(format!("{url}/health")).call().unwrap();
        body = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        if body["status"] != "loading" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body["status"], "failed", "{body}");
    let why = body["reason"].as_str().unwrap();
    assert!(
        why.contains("built with another encoder") && why.contains("paraphrase-MiniLM"),
        "{why}"
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(
        rest.iter().any(|l| l.contains("had failed to load")),
        "{rest:?}"
    );
}
