//! `recur serve` over real HTTP on loopback, on the fixture's tiny models:
//! every endpoint's answer checked against the models run directly, and
//! every kind of bad request answered with a JSON 4xx, never a 500.

use candle_core::{Device, Tensor};
use recur_dev::fixture::{self, CONTEXT, FEATURES, SENTENCES, WINDOW};
use recur_serve::config::ServeConfig;
use recur_serve::engine::{Engine, Job};
use recur_serve::http::{router, AppState, Status};
use recur_serve::metrics::Metrics;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

struct Server {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    cfg: ServeConfig,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    )
}

/// Status and JSON body of a request.
fn call(url: &str, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
    let a = agent();
    let full = format!("{url}{path}");
    let r = match (method, body) {
        ("GET", _) => a.get(&full).call(),
        ("POST", Some(b)) => a
            .post(&full)
            .header("content-type", "application/json")
            .send(b),
        ("POST", None) => a.post(&full).send_empty(),
        ("DELETE", _) => a.delete(&full).call(),
        _ => unreachable!(),
    };
    let mut r = r.unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn post(url: &str, path: &str, body: &Value) -> (u16, Value) {
    call(url, "POST", path, Some(body.to_string().as_bytes()))
}

fn text(url: &str, path: &str) -> String {
    let mut r = agent().get(format!("{url}{path}")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.body_mut().read_to_string().unwrap()
}

/// Serves the fixture (with `edit` applied to its config) on a free port
/// and waits for `/health` to answer 200.
fn start(edit: impl FnOnce(&mut ServeConfig)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture::write(dir.path(), 11).unwrap();
    let mut cfg = ServeConfig::from_file(&path).unwrap();
    edit(&mut cfg);
    let s = spawn(cfg, dir);
    recur_dev::load::wait_ready(&s.url, 60).unwrap();
    s
}

/// Serves `cfg` on a free port from a thread of its own, without waiting
/// for the models.
fn spawn(cfg: ServeConfig, dir: tempfile::TempDir) -> Server {
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let c = cfg.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            recur_serve::serve_on(
                l,
                c,
                Device::Cpu,
                async move {
                    let _ = stopped.await;
                },
                |_| {},
            )
            .await
            .unwrap();
        });
    });
    Server {
        url: format!("http://{}", rx.recv().unwrap()),
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
        cfg,
    }
}

/// The fixture's first `CONTEXT` sentences encoded (`[CONTEXT * dim]`, and
/// dim), and what `/v1/infer` predicts from them, with its whole answer.
fn infer_first_context(s: &Server) -> (Vec<f32>, usize, Vec<f32>, Value) {
    let enc = recur_text::SentenceEncoder::load(Path::new(&s.cfg.encoder), &Device::Cpu).unwrap();
    let v = enc.encode(&SENTENCES[..CONTEXT], 8).unwrap();
    let rows: Vec<Vec<f32>> = v.chunks(enc.dim).map(<[f32]>::to_vec).collect();
    let (status, r) = post(&s.url, "/v1/infer", &json!({"context_vectors": rows}));
    assert_eq!(status, 200, "{r}");
    let got: Vec<f32> = r["predicted_vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    (v, enc.dim, got, r)
}

/// What /chat must answer, computed from the models directly: the bank
/// ranked against the prediction, less the request's own sentences.
fn expected_chat(cfg: &ServeConfig, messages: &[&str]) -> (Vec<f32>, Vec<(String, f32)>) {
    expected_with(cfg, 0, messages)
}

/// The same through the config's `model`-th model.
fn expected_with(
    cfg: &ServeConfig,
    model: usize,
    messages: &[&str],
) -> (Vec<f32>, Vec<(String, f32)>) {
    let dev = Device::Cpu;
    let enc = recur_text::SentenceEncoder::load(Path::new(&cfg.encoder), &dev).unwrap();
    let lvm = recur_deploy::model_dir::load_lvm(&cfg.models[model].path, &dev).unwrap();
    let c = lvm.arch.context;
    let keep = &messages[messages.len().saturating_sub(c)..];
    let v = enc.encode(keep, 8).unwrap();
    let d = enc.dim;
    let mut ctx = Vec::new();
    for _ in keep.len()..c {
        ctx.extend_from_slice(&v[..d]);
    }
    ctx.extend_from_slice(&v);
    let x = Tensor::from_vec(ctx, (1, c, d), &dev).unwrap();
    let pred: Vec<f32> = lvm
        .predict(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // As /chat answers by default: the request's own sentences left out
    // (compared by their words, in any case).
    let key = |t: &str| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let said: Vec<String> = messages.iter().map(|m| key(m)).collect();
    let scored = fixture::ranked(&enc, &pred)
        .unwrap()
        .into_iter()
        .filter(|(t, _)| !said.contains(&key(t)))
        .collect();
    (pred, scored)
}

#[test]
fn chat_answers_with_the_nearest_bank_sentence_and_measures_every_stage() {
    let s = start(|_| {});
    for (messages, mode) in [
        (vec!["a dog ran in the park"], "padded"),
        (
            vec!["the cat sat", "rain fell on the city", "the team won"],
            "full",
        ),
        (
            vec![
                "one",
                "two words",
                "the sun rose",
                "music filled the hall",
                "the ship sailed",
            ],
            "truncated",
        ),
    ] {
        let (status, r) = post(&s.url, "/chat", &json!({"messages": messages, "top_k": 3}));
        assert_eq!(status, 200, "{r}");
        let (_, want) = expected_chat(&s.cfg, &messages);
        assert_eq!(r["response"], want[0].0, "{r}");
        let conf = r["confidence"].as_f64().unwrap() as f32;
        assert!((conf - want[0].1).abs() < 1e-4, "{conf} vs {}", want[0].1);
        let nb = r["neighbours"].as_array().unwrap();
        assert_eq!(nb.len(), 3);
        for (n, w) in nb.iter().zip(&want) {
            assert_eq!(n["text"], w.0);
            assert!((n["cosine"].as_f64().unwrap() as f32 - w.1).abs() < 1e-4);
        }
        assert_eq!(r["ctx_fill_mode"], mode);
        assert_eq!(r["model"], "tiny");
        assert_eq!(r["sentences"], messages.len());
        let b = &r["latency_breakdown"];
        let stages = [
            "encoding_ms",
            "context_build_ms",
            "lvm_inference_ms",
            "decoding_ms",
        ];
        let mut sum = 0.0;
        for k in stages {
            let v = b[k].as_f64().unwrap();
            assert!(v > 0.0, "{k} = {v}: every stage is measured");
            sum += v;
        }
        let total = r["total_latency_ms"].as_f64().unwrap();
        assert!(total >= sum, "total {total} < stages {sum}");
    }
    // The same request gives the same answer; the cached embeddings give
    // the vectors the encoder gives.
    let body = json!({"messages": ["the cat sat", "rain fell on the city"]});
    let (_, a) = post(&s.url, "/chat", &body);
    let (_, b) = post(&s.url, "/chat", &body);
    assert_eq!(a["response"], b["response"]);
    assert_eq!(a["confidence"], b["confidence"]);
    // A paragraph is split into sentences.
    let (status, r) = post(
        &s.url,
        "/chat",
        &json!({"paragraph": "The cat sat. Rain fell on the city. The team won!"}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["sentences"], 3);
    assert_eq!(r["ctx_fill_mode"], "full");
    assert_eq!(
        r["neighbours"].as_array().unwrap().len(),
        5,
        "default top_k"
    );
    // A sentence longer than a chunk goes on in a second one, not cut off.
    let long = format!(
        "{}and then the end of it.",
        "rain fell on the old city walls ".repeat(20)
    );
    let (status, r) = post(&s.url, "/chat", &json!({ "paragraph": long }));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["sentences"], 2, "{r}");
}

#[test]
fn concurrent_requests_to_two_models_are_batched_and_answered_alike() {
    let s = start(|_| {});
    let convs: Vec<Vec<&str>> = (0..24)
        .map(|i| {
            (0..1 + i % 4)
                .map(|j| SENTENCES[(i * 3 + j) % SENTENCES.len()])
                .collect()
        })
        .collect();
    let threads: Vec<_> = convs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (url, m) = (s.url.clone(), m.clone());
            let model = if i % 2 == 0 { "tiny" } else { "tiny-gru" };
            std::thread::spawn(move || {
                post(
                    &url,
                    "/chat",
                    &json!({"messages": m, "model": model, "top_k": 2}),
                )
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (status, r) = t.join().unwrap();
        assert_eq!(status, 200, "{r}");
        let model = i % 2;
        assert_eq!(r["model"], ["tiny", "tiny-gru"][model]);
        let (_, want) = expected_with(&s.cfg, model, &convs[i]);
        assert_eq!(r["response"], want[0].0, "request {i}: {r}");
        let conf = r["confidence"].as_f64().unwrap() as f32;
        assert!(
            (conf - want[0].1).abs() < 1e-4,
            "request {i}: {conf} vs {}",
            want[0].1
        );
        let c = [CONTEXT, fixture::GRU_CONTEXT][model];
        let n = convs[i].len();
        let mode = if n < c {
            "padded"
        } else if n == c {
            "full"
        } else {
            "truncated"
        };
        assert_eq!(r["ctx_fill_mode"], mode, "request {i}");
        assert!(r["batch_size"].as_u64().unwrap() >= 1);
    }
    let (_, i) = call(&s.url, "GET", "/info", None);
    assert_eq!(i["models"][1]["kind"], "gru");
    assert_eq!(i["models"][1]["context"], fixture::GRU_CONTEXT);
}

#[test]
fn infer_and_classify_give_what_the_models_compute() {
    let s = start(|_| {});
    let dev = Device::Cpu;
    let (v, dim, got, r) = infer_first_context(&s);
    assert_eq!(r["ctx_fill_mode"], "full");
    let lvm = recur_deploy::model_dir::load_lvm(&s.cfg.models[0].path, &dev).unwrap();
    let x = Tensor::from_vec(v.clone(), (1, CONTEXT, dim), &dev).unwrap();
    let want: Vec<f32> = lvm
        .predict(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6);
    }
    let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-4,
        "the prediction is unit length: {norm}"
    );

    // Classify: rows as arrays or by name; several windows at once.
    let md = recur_deploy::load_model_dir(s.cfg.classifier.as_ref().unwrap(), &dev).unwrap();
    let window: Vec<Vec<f64>> = (0..WINDOW)
        .map(|r| vec![0.1 * r as f64, 1.0 - 0.15 * r as f64])
        .collect();
    // Extra columns (a date, a price) are ignored and named once.
    let named: Vec<Value> = window
        .iter()
        .enumerate()
        .map(|(i, r)| json!({FEATURES[0]: r[0], FEATURES[1]: r[1], "close": 3.5, "note": i}))
        .collect();
    let values: Vec<f64> = window.iter().flatten().copied().collect();
    let x = Tensor::from_vec(md.scaler.transform(&values), (1, WINDOW, 2), &dev).unwrap();
    let logit: Vec<f32> = md.model.forward(&x, None).unwrap().to_vec1().unwrap();
    let want = 1.0 / (1.0 + (-(logit[0] as f64)).exp());
    let (status, r) = post(&s.url, "/v1/classify", &json!({"window": window}));
    assert_eq!(status, 200, "{r}");
    let got = r["results"][0]["p_lstm"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // The deployed probability and decision are the predictor's.
    let p = recur_deploy::Predictor::load(s.cfg.classifier.as_ref().unwrap(), &dev).unwrap();
    let mine = &p
        .score(&[(
            recur_deploy::Series {
                values: values.clone(),
                labels: vec![],
            },
            vec![WINDOW - 1],
        )])
        .unwrap()[0][0];
    let prob = r["results"][0]["probability"].as_f64().unwrap();
    assert!((prob - mine.probability.unwrap()).abs() < 1e-12);
    assert_eq!(r["probabilities"][0].as_f64(), Some(prob));
    assert_eq!(
        r["results"][0]["decision"].as_u64(),
        mine.decision.map(u64::from)
    );
    assert_eq!(r["deployed"], "lstm");
    assert_eq!(r["features"], json!(FEATURES));
    assert_eq!(r["min_rows"], WINDOW);
    let other: Vec<Vec<f64>> = window.iter().rev().cloned().collect();
    let (status, r) = post(
        &s.url,
        "/v1/classify",
        &json!({"windows": [{"id": "w1", "rows": named}, other]}),
    );
    assert_eq!(status, 200, "{r}");
    let ps = r["probabilities"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(r["results"][0]["id"], "w1");
    assert!(r["results"][1].get("id").is_none());
    assert_eq!(r["ignored_columns"], json!(["close", "note"]));
    assert!(
        (r["results"][0]["p_lstm"].as_f64().unwrap() - want).abs() < 1e-6,
        "named rows read alike"
    );
    assert_ne!(ps[0], ps[1]);
}

/// `precision: bf16` serves the LVM's products in bf16: /v1/infer answers
/// what the model computes in bf16 on this thread, which is not the f32
/// answer; a precision that does not exist stops the server with its name.
#[test]
fn a_bf16_server_answers_what_the_model_computes_in_bf16() {
    use recur_kernels::precision::{scoped, Precision};
    let s = start(|c| c.precision = "bf16".into());
    let dev = Device::Cpu;
    let (v, dim, got, _) = infer_first_context(&s);
    let (_, info) = call(&s.url, "GET", "/info", None);
    let said = info["precision"].as_str().unwrap();
    assert!(said.starts_with("bf16 ("), "{info}");
    let lvm = recur_deploy::model_dir::load_lvm(&s.cfg.models[0].path, &dev).unwrap();
    let x = Tensor::from_vec(v.clone(), (1, CONTEXT, dim), &dev).unwrap();
    let run = || -> Vec<f32> {
        lvm.predict(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (half, full) = (scoped(Precision::Bf16, run), run());
    let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        gap(&got, &half) < 1e-6,
        "bf16 server against bf16 model: {}",
        gap(&got, &half)
    );
    assert!(gap(&got, &full) > 1e-6, "the bf16 answer is the f32 one");
    assert!(
        gap(&got, &full) < 0.05,
        "bf16 is far from f32: {}",
        gap(&got, &full)
    );

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServeConfig::from_file(&fixture::write(dir.path(), 11).unwrap()).unwrap();
    cfg.precision = "fp16".into();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            recur_serve::serve_on(l, cfg, Device::Cpu, async {}, |_| {}).await
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("precision") && e.contains("f32 or bf16"), "{e}");
}

#[test]
fn health_info_metrics_and_the_chat_page() {
    let s = start(|_| {});
    let (status, h) = call(&s.url, "GET", "/health", None);
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["model_type"], "lstm");
    assert_eq!(h["model_loaded"], true);
    assert_eq!(h["device"], "cpu");
    let (_, i) = call(&s.url, "GET", "/info", None);
    assert_eq!(i["precision"], "f32");
    assert_eq!(i["models"][0]["name"], "tiny");
    assert_eq!(i["models"][0]["context"], CONTEXT);
    assert_eq!(i["encoder"]["dim"], recur_text::tiny::BERT_HIDDEN);
    assert_eq!(i["bank"]["sentences"], SENTENCES.len());
    assert_eq!(i["bank"]["search"], "exact");
    assert_eq!(i["classifier"]["sequence_length"], WINDOW);
    assert_eq!(i["limits"]["max_messages"], 5);
    post(&s.url, "/chat", &json!({"messages": ["the cat sat"]}));
    post(&s.url, "/chat", &json!({"messages": []}));
    let m = text(&s.url, "/metrics");
    for want in [
        "recur_requests_total{endpoint=\"/chat\",status=\"200\"} 1",
        "recur_requests_total{endpoint=\"/chat\",status=\"422\"} 1",
        "recur_errors_total{code=\"empty_messages\",endpoint=\"/chat\"} 1",
        "recur_request_duration_seconds_count{endpoint=\"/chat\"} 2",
        "recur_stage_duration_seconds_count{stage=\"encoding\"} 1",
        "recur_stage_duration_seconds_count{stage=\"decoding\"} 1",
        "recur_encoder_cache_misses_total 1",
        "recur_encoder_cache_entries 1",
        "process_resident_memory_bytes ",
    ] {
        assert!(m.contains(want), "/metrics lacks {want}:\n{m}");
    }
    let page = text(&s.url, "/");
    // Relative fetches: the page works behind a proxy's path prefix too.
    assert!(page.contains("<form id=\"form\">") && page.contains("fetch('chat'"));
    // Other sites cannot frame it, and its script talks to this server only.
    let r = agent().get(format!("{}/", s.url)).call().unwrap();
    let h = |name: &str| r.headers().get(name).unwrap().to_str().unwrap().to_string();
    assert_eq!(h("x-frame-options"), "DENY");
    assert_eq!(h("x-content-type-options"), "nosniff");
    let csp = h("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
}

#[test]
fn every_bad_request_gets_a_json_4xx_naming_the_problem() {
    let s = start(|c| c.limits.max_body_bytes = 4096);
    let d = recur_text::tiny::BERT_HIDDEN;
    let ok_row = vec![0.0f32; d];
    let long = "word ".repeat(500);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/chat", vec![b' '; 5000], 413, "body_too_large"),
        (
            "POST",
            "/chat",
            b"{\"messages\": [".to_vec(),
            400,
            "invalid_json",
        ),
        ("POST", "/chat", b"".to_vec(), 400, "empty_body"),
        (
            "POST",
            "/chat",
            json!({"messages": []}).to_string().into(),
            422,
            "empty_messages",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": vec!["a"; 6]}).to_string().into(),
            422,
            "too_many_messages",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["ok", "  "]}).to_string().into(),
            422,
            "empty_text",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": [long]}).to_string().into(),
            422,
            "text_too_long",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "paragraph": "b"})
                .to_string()
                .into(),
            422,
            "messages_or_paragraph",
        ),
        (
            "POST",
            "/chat",
            json!({"paragraph": "  \n  "}).to_string().into(),
            422,
            "empty_text",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "colour": 1}).to_string().into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": "a"}).to_string().into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "model": "gpt"})
                .to_string()
                .into(),
            422,
            "unknown_model",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "top_k": 0}).to_string().into(),
            422,
            "bad_top_k",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "top_k": 51}).to_string().into(),
            422,
            "bad_top_k",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["a"], "top_k": -1}).to_string().into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/infer",
            json!({"context_vectors": [[0.1, 0.2]]}).to_string().into(),
            422,
            "wrong_dimension",
        ),
        (
            "POST",
            "/v1/infer",
            json!({"context_vectors": []}).to_string().into(),
            422,
            "empty_context",
        ),
        (
            "POST",
            "/v1/infer",
            format!("{{\"context_vectors\": [[NaN{}]]}}", ",0.0".repeat(d - 1)).into_bytes(),
            422,
            "non_finite",
        ),
        (
            "POST",
            "/v1/infer",
            format!("{{\"context_vectors\": [[1e39{}]]}}", ",0.0".repeat(d - 1)).into_bytes(),
            422,
            "non_finite",
        ),
        (
            "POST",
            "/v1/infer",
            json!({"context_vectors": [ok_row, [1.0]]})
                .to_string()
                .into(),
            422,
            "wrong_dimension",
        ),
        (
            "POST",
            "/v1/infer",
            json!({"context_vectors": [[null]]}).to_string().into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": [[1.0, 2.0]]}).to_string().into(),
            422,
            "too_few_rows",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": {"id": 1, "rows": vec![vec![1.0, 2.0]; WINDOW], "colour": 2}})
                .to_string()
                .into(),
            422,
            "unknown_field",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![vec![3.0e38, 2.0]; WINDOW]})
                .to_string()
                .into(),
            422,
            "non_finite",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![vec![1.0e39, 2.0]; WINDOW]})
                .to_string()
                .into(),
            422,
            "non_finite",
        ),
        (
            "POST",
            "/v1/classify",
            format!(
                "{} trailing",
                json!({"window": vec![vec![1.0, 2.0]; WINDOW]})
            )
            .into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![vec![1.0]; WINDOW]})
                .to_string()
                .into(),
            422,
            "wrong_dimension",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![json!({"a": 1.0}); WINDOW]})
                .to_string()
                .into(),
            422,
            "missing_feature",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![json!([1.0, "x"]); WINDOW]})
                .to_string()
                .into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"window": vec![json!([1.0, null]); WINDOW]})
                .to_string()
                .into(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/classify",
            json!({}).to_string().into(),
            422,
            "window_or_windows",
        ),
        (
            "POST",
            "/v1/classify",
            json!({"windows": []}).to_string().into(),
            422,
            "empty_windows",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["\u{0}\u{200B}\u{FEFF}\u{301}\u{2060} "]})
                .to_string()
                .into(),
            422,
            "empty_text",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["\u{202E}\u{202E}", "\u{FE0F}\u{180E}\u{61C}\u{E0020}\u{FFFD}"]})
                .to_string()
                .into(),
            422,
            "empty_text",
        ),
        (
            "POST",
            "/chat",
            json!({"messages": ["ok", "\u{FE0F}\u{FE0F}\u{FE0F}"]})
                .to_string()
                .into(),
            422,
            "empty_text",
        ),
        ("GET", "/nowhere", vec![], 404, "not_found"),
        ("GET", "/chat", vec![], 405, "method_not_allowed"),
        ("DELETE", "/health", vec![], 501, "not_implemented"),
    ];
    for (method, path, body, want, code) in cases {
        let (status, r) = call(&s.url, method, path, Some(&body));
        assert_eq!(
            (status, r["code"].as_str()),
            (want, Some(code)),
            "{method} {path} {}: {r}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let msg = r["error"].as_str().unwrap();
        assert!(msg.len() > 10, "{msg}");
    }
    // The messages name what is wrong.
    let (_, r) = call(&s.url, "GET", "/nowhere", None);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("no endpoint GET /nowhere"),
        "{r}"
    );
    {
        use std::io::Write;
        // A method recur implements nowhere is a 501 (RFC 9110 9.1), on a
        // route (it was 405) or off one (404), CONNECT too.
        for head in [
            "CONNECT 127.0.0.1:22 HTTP/1.1",
            "FOO /live HTTP/1.1",
            "FOO /nowhere HTTP/1.1",
            "PUT /chat HTTP/1.1",
        ] {
            let mut c = raw(&s.url);
            c.write_all(
                format!("{head}\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
            let got = read_all(&mut c);
            assert!(
                got.starts_with("HTTP/1.1 501")
                    && got.contains("\"code\":\"not_implemented\"")
                    && got.contains("take GET, HEAD and POST"),
                "{head}: {got}"
            );
        }
    }
    let (_, r) = post(&s.url, "/chat", &json!({"messages": ["ok", "  "]}));
    assert!(r["error"].as_str().unwrap().contains("messages[1]"), "{r}");
    let (_, r) = post(&s.url, "/v1/infer", &json!({"context_vectors": [[0.5]]}));
    assert!(
        r["error"].as_str().unwrap().contains(&format!("{d}-D")),
        "{r}"
    );
    // Nothing was a 500, and the server still answers.
    assert!(!text(&s.url, "/metrics").contains("status=\"500\""));
    assert_eq!(call(&s.url, "GET", "/health", None).0, 200);
}

/// A server whose queue nobody drains (or drains by hand): loading,
/// failure, queue-full, timeout and shutdown states, deterministically.
fn manual(
    status: Status,
    capacity: usize,
    timeout_ms: u64,
) -> (
    String,
    Arc<AppState>,
    mpsc::Receiver<Job>,
    oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let mut cfg = ServeConfig::default();
    cfg.limits.queue_capacity = capacity;
    cfg.limits.request_timeout_ms = timeout_ms;
    let (tx, rx) = mpsc::channel(capacity);
    let state = Arc::new(AppState {
        cfg,
        status: RwLock::new(status),
        queue: tx,
        metrics: Arc::new(Metrics::new()),
        seen: Default::default(),
        checked: RwLock::new(None),
        loaded_from: Default::default(),
        changed_on_disk: Default::default(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    let app = router(state.clone());
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    (
        format!("http://{}", arx.recv().unwrap()),
        state,
        rx,
        stop,
        thread,
    )
}

fn queue_depth(url: &str) -> i64 {
    text(url, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("recur_queue_depth "))
        .unwrap()
        .parse()
        .unwrap()
}

fn loaded_fixture() -> (tempfile::TempDir, Engine, recur_serve::engine::Info) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServeConfig::from_file(&fixture::write(dir.path(), 5).unwrap()).unwrap();
    let (e, info) = Engine::load(&cfg, &Device::Cpu).unwrap();
    (dir, e, info)
}

#[test]
fn loading_failure_full_queue_and_timeout_are_503_with_a_reason() {
    let (url, state, _rx, _stop, _t) = manual(Status::Loading, 1, 1500);
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!((status, h["status"].as_str()), (503, Some("loading")));
    let (status, r) = post(&url, "/chat", &json!({"messages": ["hi there"]}));
    assert_eq!((status, r["code"].as_str()), (503, Some("loading")));
    *state.status.write().unwrap() = Status::Failed("model.safetensors: truncated".into());
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!(status, 503);
    assert!(h["reason"].as_str().unwrap().contains("truncated"));

    // Ready, but nobody runs the queue: the first request waits and
    // times out; while it waits, the queue (capacity 1) is full.
    let (_dir, _engine, info) = loaded_fixture();
    *state.status.write().unwrap() = Status::Ready(Arc::new(info));
    let u = url.clone();
    let waiting =
        std::thread::spawn(move || post(&u, "/chat", &json!({"messages": ["the cat sat"]})));
    while queue_depth(&url) < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, r) = post(&url, "/chat", &json!({"messages": ["rain fell"]}));
    assert_eq!(
        (status, r["code"].as_str()),
        (503, Some("queue_full")),
        "{r}"
    );
    let (status, r) = waiting.join().unwrap();
    assert_eq!((status, r["code"].as_str()), (503, Some("timeout")), "{r}");
}

/// `limits.queue_capacity` counts every request waiting for the models:
/// those in the queue and those the engine holds to choose batches from.
/// (The queue alone was sized at the capacity less the engine's window,
/// which it fills only when idle, so under load about half the capacity
/// was refused, the message naming a count that was not waiting.)
#[test]
fn the_queue_capacity_counts_what_the_engine_holds_too() {
    let (url, state, _rx, _stop, _t) = manual(Status::Loading, 3, 1500);
    let (_dir, _engine, info) = loaded_fixture();
    *state.status.write().unwrap() = Status::Ready(Arc::new(info));
    let in_queue = |n: usize| {
        let t = std::time::Instant::now();
        while state.queue.max_capacity() - state.queue.capacity() < n {
            assert!(t.elapsed() < Duration::from_secs(10), "{n} never queued");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let ask = |i: usize| {
        let u = url.clone();
        std::thread::spawn(move || post(&u, "/chat", &json!({"messages": [format!("cat {i}")]})))
    };
    // The engine holds one job; two more may wait in the queue.
    state.metrics.waiting.store(1, SeqCst);
    let waiting: Vec<_> = (0..2).map(ask).collect();
    in_queue(2);
    let (status, r) = post(&url, "/chat", &json!({"messages": ["rain fell"]}));
    assert_eq!(
        (status, r["code"].as_str()),
        (503, Some("queue_full")),
        "{r}"
    );
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("3 requests are waiting") && msg.contains("queue_capacity 3"),
        "{r}"
    );
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!((status, h["status"].as_str()), (503, Some("busy")), "{h}");
    // The engine took its job into a batch: room for one more, which
    // waits (nobody runs the queue) until it times out.
    state.metrics.waiting.fetch_sub(1, SeqCst);
    let third = ask(3);
    in_queue(3);
    let (status, r) = third.join().unwrap();
    assert_eq!((status, r["code"].as_str()), (503, Some("timeout")), "{r}");
    for w in waiting {
        assert_eq!(w.join().unwrap().1["code"], "timeout");
    }
}

/// Requests that arrive together each take a place in one atomic step:
/// eight threads admitting and releasing as fast as they can never hold
/// more than `queue_capacity` places at once (a check followed by a later
/// count let concurrent handlers each pass the check), and every place
/// taken is given back.
#[test]
fn concurrent_admissions_never_pass_the_queue_capacity() {
    let (_url, state, _rx, _stop, _t) = manual(Status::Loading, 3, 1500);
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let go = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (state, inside, most, go) =
                (state.clone(), inside.clone(), most.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                let mut admitted = 0;
                for _ in 0..20_000 {
                    if state.admit() {
                        admitted += 1;
                        let now = inside.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        inside.fetch_sub(1, SeqCst);
                        state.release();
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(admitted > 0);
    let most = most.load(SeqCst);
    assert!(
        (1..=3).contains(&most),
        "{most} places held at once, capacity 3"
    );
    assert_eq!(state.waiting(), 0);
    // With the engine's window holding all three, nothing is admitted.
    for _ in 0..3 {
        assert!(state.admit());
    }
    assert!(!state.admit() && state.busy());
}

#[test]
fn a_failed_load_keeps_serving_503_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture::write(dir.path(), 3).unwrap();
    let mut cfg = ServeConfig::from_file(&path).unwrap();
    std::fs::write(
        cfg.models[0].path.join("model.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    cfg.models[0].name = "broken".into();
    let s = spawn(cfg, dir);
    let url = s.url.clone();
    let mut h = Value::Null;
    for _ in 0..500 {
        let (status, body) = call(&url, "GET", "/health", None);
        assert_eq!(status, 503);
        h = body;
        if h["status"] == "failed" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h["status"], "failed", "{h}");
    assert!(
        h["reason"].as_str().unwrap().contains("model.safetensors"),
        "{h}"
    );
    let (status, r) = post(&url, "/chat", &json!({"messages": ["hello there"]}));
    assert_eq!((status, r["code"].as_str()), (503, Some("failed")));
}

#[test]
fn shutdown_finishes_the_requests_in_flight() {
    let (_dir, engine, info) = loaded_fixture();
    let (url, state, rx, stop, server) = manual(Status::Ready(Arc::new(info)), 16, 30_000);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let u = url.clone();
            std::thread::spawn(move || post(&u, "/chat", &json!({"messages": [SENTENCES[i]]})))
        })
        .collect();
    while queue_depth(&url) < 4 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Shut down with four requests waiting, then let the models run.
    stop.send(()).unwrap();
    let metrics = state.metrics.clone();
    drop(state);
    let worker = std::thread::spawn(move || engine.run(rx, metrics));
    for c in clients {
        let (status, r) = c.join().unwrap();
        assert_eq!(status, 200, "{r}");
        assert!(SENTENCES.contains(&r["response"].as_str().unwrap()));
    }
    server.join().unwrap();
    worker.join().unwrap();
    // New connections are refused once it has stopped.
    assert!(agent().get(format!("{url}/health")).call().is_err());
}

/// A random JSON value, up to `depth` levels deep.
fn random_value(g: &mut recur_core::rng::Rng, depth: usize) -> Value {
    let pick = (g.unit() * if depth == 0 { 6.0 } else { 8.0 }) as usize;
    match pick {
        0 => Value::Null,
        1 => json!(g.unit() < 0.5),
        2 => json!((g.normal() * 1e3) as f64),
        3 => json!([1e38, -1e38, 3.4e38, 1e-45, 0.0, -0.0][(g.unit() * 6.0) as usize % 6]),
        4 => json!(
            [
                "",
                " ",
                "\u{0}",
                "é\u{301}",
                "\n\t",
                "🦀 rust",
                "a".repeat(3000).as_str()
            ][(g.unit() * 7.0) as usize % 7]
        ),
        5 => json!((g.unit() * 1e6) as i64 - 500_000),
        6 => Value::Array(
            (0..(g.unit() * 6.0) as usize)
                .map(|_| random_value(g, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "messages",
                "paragraph",
                "model",
                "top_k",
                "context_vectors",
                "window",
                "windows",
                "a",
                "b",
                "x",
            ];
            Value::Object(
                (0..(g.unit() * 4.0) as usize)
                    .map(|_| {
                        (
                            keys[(g.unit() * 10.0) as usize % 10].to_string(),
                            random_value(g, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

#[test]
fn random_and_mangled_requests_never_get_a_500() {
    let s = start(|_| {});
    let d = recur_text::tiny::BERT_HIDDEN;
    let valid = [
        (
            "/chat",
            json!({"messages": ["the cat sat", "rain fell"], "top_k": 2}),
        ),
        ("/chat", json!({"paragraph": "The cat sat. The dog ran."})),
        (
            "/v1/infer",
            json!({"context_vectors": vec![vec![0.1f32; d]; 2]}),
        ),
        (
            "/v1/classify",
            json!({"window": vec![vec![0.5, 0.5]; WINDOW]}),
        ),
    ];
    let mut g = recur_core::rng::Rng::new(2024);
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..240 {
        let (path, base) = &valid[round % valid.len()];
        let text = base.to_string();
        let body: Vec<u8> = match round % 4 {
            // A random value where one field was.
            0 => {
                let mut v = base.clone();
                let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                let k = &keys[(g.unit() * keys.len() as f32) as usize % keys.len()];
                v[k.as_str()] = random_value(&mut g, 3);
                v.to_string().into_bytes()
            }
            // The body cut short.
            1 => text.as_bytes()[..(g.unit() * text.len() as f32) as usize].to_vec(),
            // A few bytes changed.
            2 => {
                let mut b = text.into_bytes();
                for _ in 0..3 {
                    let i = (g.unit() * b.len() as f32) as usize % b.len();
                    b[i] = (g.unit() * 256.0) as u8;
                }
                b
            }
            // Something else entirely.
            _ => random_value(&mut g, 4).to_string().into_bytes(),
        };
        let (status, r) = call(&s.url, "POST", path, Some(&body));
        assert!(
            status < 500,
            "{path} answered {status} to {:?}: {r}",
            String::from_utf8_lossy(&body)
        );
        if status != 200 {
            assert!(
                r["error"].is_string() && r["code"].is_string(),
                "{status}: {r}"
            );
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    // The mangling reached both the parser and the checks behind it.
    assert!(
        statuses.contains_key(&400) && statuses.contains_key(&422),
        "{statuses:?}"
    );
    assert_eq!(call(&s.url, "GET", "/health", None).0, 200);
    assert!(!text(&s.url, "/metrics").contains("status=\"500\""));
}

#[test]
fn a_classifier_that_smooths_its_features_asks_for_its_warm_up_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServeConfig::from_file(&fixture::write(dir.path(), 6).unwrap()).unwrap();
    let yaml = cfg.classifier.as_ref().unwrap().join("config.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}selection:\n  ewma_span: 5\n")).unwrap();
    // The manifest refuses the edited config, naming it.
    let e = Engine::load(&cfg, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("config.yaml (changed)"), "{e}");
    // With the manifest rewritten to match (an edit by hand), it loads.
    recur_core::dirwrite::reseal(cfg.classifier.as_ref().unwrap()).unwrap();
    let (_, info) = Engine::load(&cfg, &Device::Cpu).unwrap();
    let c = info.classifier.unwrap();
    // span 5: a = 1/3, 12 rows until the first row weighs under 1%.
    assert_eq!(c.min_rows, WINDOW + 12);
    // An LVM given as the classifier is said to belong under `models:`
    // (the message named the commands that score it elsewhere).
    let mut wrong = cfg.clone();
    wrong.classifier = Some(cfg.models[0].path.clone());
    let e = Engine::load(&wrong, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("classifier") && e.contains("under `models:`"),
        "{e}"
    );
}

fn metric(url: &str, line_start: &str) -> f64 {
    let m = text(url, "/metrics");
    m.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in:\n{m}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_report_drift_of_the_rows_classify_has_seen() {
    let s = start(|_| {});
    let (_, i) = call(&s.url, "GET", "/info", None);
    assert_eq!(i["classifier"]["drift_monitored"], true);
    let mut g = recur_core::rng::Rng::new(21);
    let mut t = 0;
    const ROWS: usize = 1200;
    // A live feed: a window per new row, sharing all but one row with the
    // window before. Each row counts once (every row of every window
    // counted WINDOW times, and only the last WINDOW of a long one).
    let mut send = |shift: f64| {
        let rows: Vec<serde_json::Value> = (0..ROWS)
            .map(|_| {
                t += 1;
                json!({"t": t, "a": shift + g.unit() as f64, "b": g.unit() as f64})
            })
            .collect();
        let windows: Vec<&[serde_json::Value]> = rows.windows(WINDOW).collect();
        for some in windows.chunks(60) {
            let (status, r) = post(&s.url, "/v1/classify", &json!({ "windows": some }));
            assert_eq!(status, 200, "{r}");
            // The time column is read, not ignored.
            assert_eq!(r["ignored_columns"], json!([]), "{r}");
        }
    };
    // A refused request counts nothing, not even its good windows before
    // the bad one.
    let good: Vec<Vec<f64>> = (0..WINDOW).map(|_| vec![50.0, 50.0]).collect();
    let mut bad = json!(good.clone());
    bad[3][1] = json!("oops");
    let (status, r) = post(
        &s.url,
        "/v1/classify",
        &json!({ "windows": [good.clone(), good, bad] }),
    );
    assert_eq!(status, 422, "{r}");
    assert_eq!(metric(&s.url, "recur_drift_rows "), 0.0);
    // Rows like the training rows (uniform on [0, 1]): no drift.
    send(0.0);
    assert_eq!(metric(&s.url, "recur_drift_rows "), ROWS as f64);
    // Rows without times cannot be told apart: a window adds the row it
    // scores.
    let plain: Vec<Vec<f64>> = (0..WINDOW).map(|_| vec![0.5, 0.5]).collect();
    let (status, r) = post(
        &s.url,
        "/v1/classify",
        &json!({ "windows": [plain.clone(), plain] }),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(metric(&s.url, "recur_drift_rows "), (ROWS + 2) as f64);
    // Rows out of time order are refused, as `recur predict` refuses them
    // (they were scored as if in order).
    let back: Vec<serde_json::Value> = (0..WINDOW)
        .map(|i| json!({"t": 1000 - i, "a": 0.5, "b": 0.5}))
        .collect();
    let (status, r) = post(&s.url, "/v1/classify", &json!({ "window": back }));
    assert_eq!(
        (status, r["code"].as_str()),
        (422, Some("time_order")),
        "{r}"
    );
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("window") && msg.contains("row 1 (999) comes before row 0 (1000)"),
        "{msg}"
    );
    // A `null` time is a missing one, not a switch that turns the check
    // off; times sent as text that read as numbers are numbers, as in a
    // file.
    for times in [
        json!([5, null, 3, 2, 1, 0]),
        json!(["5", "4", "3", "2", "1", "0"]),
    ] {
        let rows: Vec<serde_json::Value> = (0..WINDOW)
            .map(|i| json!({"t": times[i], "a": 0.5, "b": 0.5}))
            .collect();
        let (status, r) = post(&s.url, "/v1/classify", &json!({ "window": rows }));
        assert_eq!(
            (status, r["code"].as_str()),
            (422, Some("time_order")),
            "{times}: {r}"
        );
    }
    let drifted = "recur_drift{feature=\"a\",statistic=\"drifted\"} ";
    assert_eq!(metric(&s.url, drifted), 0.0);
    assert_eq!(
        metric(&s.url, "recur_drift{feature=\"b\",statistic=\"drifted\"} "),
        0.0
    );
    // Then feature a moves up by 5: drift on a, not on b.
    send(5.0);
    assert_eq!(metric(&s.url, drifted), 1.0);
    assert!(metric(&s.url, "recur_drift{feature=\"a\",statistic=\"psi\"} ") > 0.2);
    assert_eq!(
        metric(&s.url, "recur_drift{feature=\"b\",statistic=\"drifted\"} "),
        0.0
    );
}

#[test]
fn a_classifier_alone_or_lvms_alone_are_served_and_say_so() {
    // The classifier alone: no encoder, no bank, no LVM loaded.
    let s = start(|c| {
        c.models.clear();
        c.bank.clear();
        c.encoder = "no-such-encoder".into();
    });
    let (status, h) = call(&s.url, "GET", "/health", None);
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (
            &h["classifier_loaded"],
            &h["lvm_loaded"],
            &h["encoder_loaded"]
        ),
        (&json!(true), &json!(false), &json!(false))
    );
    let (_, i) = call(&s.url, "GET", "/info", None);
    assert!(i["encoder"].is_null() && i["bank"].is_null(), "{i}");
    assert_eq!(i["classifier"]["min_rows"], WINDOW);
    let (status, r) = post(
        &s.url,
        "/v1/classify",
        &json!({"window": vec![vec![0.5, 0.5]; WINDOW]}),
    );
    assert_eq!(status, 200, "{r}");
    assert!(r["results"][0]["probability"].as_f64().is_some());
    let (status, r) = post(&s.url, "/chat", &json!({"messages": ["hello"]}));
    assert_eq!((status, r["code"].as_str()), (404, Some("no_lvm")), "{r}");
    let (status, r) = post(
        &s.url,
        "/v1/infer",
        &json!({"context_vectors": [[0.1, 0.2]]}),
    );
    assert_eq!((status, r["code"].as_str()), (404, Some("no_lvm")), "{r}");
    drop(s);

    // LVMs alone.
    let s = start(|c| c.classifier = None);
    let (status, h) = call(&s.url, "GET", "/health", None);
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (&h["classifier_loaded"], &h["lvm_loaded"]),
        (&json!(false), &json!(true))
    );
    let (status, r) = post(&s.url, "/chat", &json!({"messages": ["the cat sat"]}));
    assert_eq!(status, 200, "{r}");
    let (status, r) = post(
        &s.url,
        "/v1/classify",
        &json!({"window": vec![vec![0.5, 0.5]; WINDOW]}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (404, Some("no_classifier")),
        "{r}"
    );
}

#[test]
fn a_serve_file_that_names_only_one_side_serves_only_that_side() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.yaml");
    std::fs::write(&p, "classifier: m\n").unwrap();
    let c = ServeConfig::from_file(&p).unwrap();
    assert!(c.models.is_empty() && c.bank.is_empty());
    assert!(c.classifier.unwrap().ends_with("m"));
    std::fs::write(&p, "models:\n  - {name: a, path: x}\n").unwrap();
    let c = ServeConfig::from_file(&p).unwrap();
    assert!(c.classifier.is_none() && c.bank.len() == 2);
    std::fs::write(&p, "models: []\n").unwrap();
    let e = ServeConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("classifier"), "{e}");
}

#[test]
fn one_poisoned_request_never_fails_the_others_in_its_batch() {
    let (_dir, engine, info) = loaded_fixture();
    let d = info.models[0].dim;
    let (url, state, rx, stop, server) = manual(Status::Ready(Arc::new(info)), 64, 30_000);
    // A valid float32 so large that the LSTM's output overflows, among
    // valid requests that all wait in one batch.
    let poison = json!({"context_vectors": vec![vec![3.4e38f32; d]; 2]});
    let clients: Vec<_> = (0..9)
        .map(|i| {
            let u = url.clone();
            let body = if i == 4 {
                poison.clone()
            } else {
                // Vectors that vary, as embeddings do (a constant one
                // normalises to zero in the LayerNorm: no prediction).
                let v: Vec<f32> = (0..d)
                    .map(|j| ((j * 7 + i) % 11) as f32 / 11.0 - 0.5)
                    .collect();
                json!({"context_vectors": vec![v; 2]})
            };
            std::thread::spawn(move || post(&u, "/v1/infer", &body))
        })
        .collect();
    while queue_depth(&url) < 9 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = state.metrics.clone();
    let worker = std::thread::spawn(move || engine.run(rx, metrics));
    for (i, c) in clients.into_iter().enumerate() {
        let (status, r) = c.join().unwrap();
        if i == 4 {
            assert_eq!(
                (status, r["code"].as_str()),
                (422, Some("not_scorable")),
                "{r}"
            );
        } else {
            assert_eq!(status, 200, "request {i}: {r}");
            assert_eq!(r["predicted_vector"].as_array().unwrap().len(), d);
        }
    }
    stop.send(()).unwrap();
    drop(state);
    server.join().unwrap();
    worker.join().unwrap();
}

#[test]
fn health_answers_from_the_latest_check_and_a_full_queue_is_busy_not_failed() {
    let (_dir, _engine, info) = loaded_fixture();
    let (url, state, _rx, _stop, _t) = manual(Status::Ready(Arc::new(info)), 1, 1500);
    state.record_check(Ok(()), 3.0);
    // Nobody runs the models, yet /health answers at once: it reads the
    // latest check instead of running one through the queue.
    let t = std::time::Instant::now();
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")), "{h}");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        (h["checks"].as_u64(), h["check_ms"].as_f64()),
        (Some(1), Some(3.0))
    );
    assert_eq!(queue_depth(&url), 0, "health queued a job");
    assert_eq!(
        call(&url, "GET", "/live", None),
        (200, json!({"status": "alive"}))
    );
    // One request fills the queue (capacity 1): busy, never failed.
    let u = url.clone();
    let waiting = std::thread::spawn(move || post(&u, "/chat", &json!({"messages": ["hi there"]})));
    while queue_depth(&url) < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = agent().get(format!("{url}/health")).call().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let (_, h) = call(&url, "GET", "/health", None);
    assert_eq!(h["status"], "busy", "{h}");
    assert!(
        h["reason"].as_str().unwrap().contains("queue_capacity"),
        "{h}"
    );
    assert_eq!(call(&url, "GET", "/live", None).0, 200);
    waiting.join().unwrap();
    // A failed check: unhealthy, with its reason.
    state.record_check(Err("the lstm model produced NaN or infinity".into()), 1.0);
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!(
        (status, h["status"].as_str()),
        (503, Some("unhealthy")),
        "{h}"
    );
    assert!(h["reason"].as_str().unwrap().contains("NaN"), "{h}");
}

#[test]
fn the_readiness_check_runs_on_its_schedule() {
    let s = start(|c| c.limits.health_check_interval_ms = 50);
    let mut checks = 0;
    for _ in 0..100 {
        let (status, h) = call(&s.url, "GET", "/health", None);
        assert_eq!(status, 200, "{h}");
        checks = h["checks"].as_u64().unwrap();
        if checks >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(checks >= 4, "{checks} checks");
    // A model folder replaced under the server is named, and it goes on
    // serving what it loaded.
    assert_eq!(
        call(&s.url, "GET", "/health", None).1["changed_on_disk"],
        json!([])
    );
    let lvm = s.cfg.models[0].path.clone();
    let man = lvm.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&man).unwrap()).unwrap();
    m["run"] = json!("another run");
    std::fs::write(&man, m.to_string()).unwrap();
    let mut named = Value::Null;
    for _ in 0..100 {
        let (status, h) = call(&s.url, "GET", "/health", None);
        assert_eq!(status, 200, "{h}");
        named = h["changed_on_disk"].clone();
        if named != json!([]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(named, json!([lvm.display().to_string()]));
    let (status, _) = post(&s.url, "/chat", &json!({"messages": ["the cat sat"]}));
    assert_eq!(status, 200);
}

/// A raw connection to the server, for clients that misbehave.
fn raw(url: &str) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// One answer on a kept-alive connection: its head and as many bytes of
/// body as its `content-length` says.
fn answer(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Everything the server sends until it closes, or the read times out.
fn read_all(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn slow_idle_and_oversized_clients_are_cut_off_with_json() {
    use std::io::Write;
    let s = start(|c| {
        c.limits.header_timeout_ms = 300;
        c.limits.body_timeout_ms = 300;
    });
    // Slow headers: closed once the header deadline passes.
    let mut c = raw(&s.url);
    c.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let t = std::time::Instant::now();
    read_all(&mut c);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // An idle keep-alive connection is closed after the same deadline.
    let mut c = raw(&s.url);
    c.write_all(b"GET /live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let t = std::time::Instant::now();
    let got = read_all(&mut c);
    assert!(
        got.starts_with("HTTP/1.1 200") && got.contains("alive"),
        "{got}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A body that never arrives: 408 with JSON.
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess")
        .unwrap();
    let got = read_all(&mut c);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"code\":\"body_timeout\""), "{got}");
    // The server closes such a connection, and says so (a keep-alive
    // client reused it and met a reset).
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    // A malformed chunked body is a bad request, not a large one.
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        .unwrap();
    let got = read_all(&mut c);
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("\"code\":\"bad_body\""), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    // A body for a path that does not exist: 404 at once, no 100 Continue.
    let mut c = raw(&s.url);
    c.write_all(b"POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let got = read_all(&mut c);
    assert!(
        got.starts_with("HTTP/1.1 404") && !got.contains("100 Continue"),
        "{got}"
    );
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    // A body read to its end keeps the connection: two requests, two
    // answers, none saying close.
    let mut c = raw(&s.url);
    let one = "POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    c.write_all(
        format!("{one}{one}GET /live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let got = read_all(&mut c);
    assert_eq!(got.matches("HTTP/1.1 ").count(), 3, "{got}");
    assert_eq!(
        got.to_ascii_lowercase()
            .matches("connection: close")
            .count(),
        1,
        "{got}"
    );
    // A declared 50 MB: 413 at once, no 100 Continue.
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let got = read_all(&mut c);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(
        got.contains("body_too_large") && !got.contains("100 Continue"),
        "{got}"
    );
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    // A client that sends an oversized body at once (no Expect) reads the
    // 413: the body is read and dropped first, where a reset met its
    // writes before.
    let mut c = raw(&s.url);
    let big = 3 << 20;
    c.write_all(format!("POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n").as_bytes())
        .unwrap();
    // The head first, the body after (as Python's http.client sends them).
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&vec![b' '; big])
        .expect("the whole body is taken");
    let got = read_all(&mut c);
    assert!(
        got.starts_with("HTTP/1.1 413") && got.contains("body_too_large"),
        "{got}"
    );
    // A body that is not JSON by its type (a form a web page could post).
    let r = agent()
        .post(format!("{}/chat", s.url))
        .header("content-type", "text/plain")
        .send(r#"{"messages": ["hi"]}"#)
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    // Nor one with no type at all (what a page's fetch of a Blob sends).
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nOrigin: http://elsewhere.example\r\nContent-Length: 20\r\n\r\n{\"messages\": [\"hi\"]}")
        .unwrap();
    let got = read_all(&mut c);
    assert!(got.starts_with("HTTP/1.1 415"), "{got}");
    assert!(got.contains("no Content-Type"), "{got}");
    // A compressed body is refused, not read as plain JSON.
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n{\"messages\": [\"hi\"]}")
        .unwrap();
    let got = read_all(&mut c);
    assert!(
        got.starts_with("HTTP/1.1 415") && got.contains("unsupported_encoding"),
        "{got}"
    );
    // Every header counts, and an empty coding or `identity` is none.
    for (headers, status) in [
        (
            "Content-Encoding: identity\r\nContent-Encoding: gzip\r\n",
            "415",
        ),
        ("Content-Encoding: identity, br\r\n", "415"),
        ("Content-Encoding: \r\n", "200"),
        ("Content-Encoding: Identity \r\n", "200"),
    ] {
        let mut c = raw(&s.url);
        c.write_all(format!("POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}Content-Length: 20\r\nConnection: close\r\n\r\n{{\"messages\": [\"hi\"]}}").as_bytes())
            .unwrap();
        let got = read_all(&mut c);
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{headers:?}: {got}"
        );
    }
    // JSON in another charset would be read as UTF-8: refused.
    for (ct, status) in [
        ("application/json; charset=utf-16", "415"),
        ("application/json;charset=\"latin1\"", "415"),
        ("application/json; charset=\"UTF-8\"", "200"),
        ("application/json; Charset=utf8", "200"),
        ("application/json; charset=us-ascii", "200"),
        // JSON by a structured suffix (RFC 6839) is JSON; a bare suffix or
        // another top-level type is not.
        ("application/problem+json", "200"),
        ("Application/VND.API+JSON; charset=utf-8", "200"),
        ("application/+json", "415"),
        ("text/x+json", "415"),
        // Not JSON at all is said first.
        ("text/plain; charset=latin1", "415"),
        // A second header cannot slip a charset past.
        (
            "application/json\r\nContent-Type: application/json; charset=utf-16",
            "415",
        ),
    ] {
        let mut c = raw(&s.url);
        c.write_all(format!("POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: {ct}\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{{\"messages\": [\"hi\"]}}").as_bytes())
            .unwrap();
        let got = read_all(&mut c);
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{ct}: {got}"
        );
        if ct.starts_with("text/") || ct.contains("/+") {
            assert!(got.contains("send JSON with Content-Type"), "{got}");
        } else if ct.contains("\r\n") {
            assert!(got.contains("several Content-Type headers"), "{got}");
        } else if status == "415" {
            assert!(got.contains("charset"), "{got}");
        }
    }
    // A transfer coding besides `chunked` is refused as a content coding is.
    for (te, status) in [("gzip, chunked", "415"), ("chunked", "200")] {
        let mut c = raw(&s.url);
        c.write_all(format!("POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: {te}\r\nConnection: close\r\n\r\n14\r\n{{\"messages\": [\"hi\"]}}\r\n0\r\n\r\n").as_bytes())
            .unwrap();
        let got = read_all(&mut c);
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{te}: {got}"
        );
        if status == "415" {
            assert!(
                got.contains("unsupported_encoding") && got.contains("transfer-encoding"),
                "{got}"
            );
        }
    }
    // A UTF-8 byte order mark before the JSON is passed over (RFC 8259
    // lets a parser ignore it); one anywhere else is not JSON.
    for (body, status) in [
        ("\u{feff}{\"messages\": [\"hi\"]}", "200"),
        ("{\u{feff}\"messages\": [\"hi\"]}", "400"),
    ] {
        let mut c = raw(&s.url);
        c.write_all(format!("POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
            .unwrap();
        let got = read_all(&mut c);
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{body:?}: {got}"
        );
    }
    let (status, _) = post(&s.url, "/chat", &json!({"messages": ["the cat sat"]}));
    assert_eq!(status, 200);
}

/// DNS rebinding: a page whose name was pointed at 127.0.0.1 is
/// same-origin with a local server, so the JSON rule does not stop it, but
/// its requests carry its own name in Host. A loopback server answers
/// loopback names and `allowed_hosts` only.
#[test]
fn a_loopback_server_answers_only_its_own_names() {
    use std::io::Write;
    let s = start(|c| c.allowed_hosts = vec!["recur.internal".into()]);
    let ask = |host: &str| {
        let mut c = raw(&s.url);
        let port = s.url.rsplit(':').next().unwrap();
        let host = host.replace("PORT", port);
        c.write_all(
            format!("GET /info HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        read_all(&mut c)
    };
    for host in [
        "localhost:PORT",
        "localhost.",
        "[::ffff:127.0.0.1]:PORT",
        "LOCALHOST",
        "127.0.0.1:PORT",
        "127.3.4.5",
        "[::1]:PORT",
        "app.localhost:PORT",
        "recur.internal:PORT",
    ] {
        let got = ask(host);
        assert!(got.starts_with("HTTP/1.1 200"), "{host}: {got}");
    }
    for host in [
        "attacker.example:PORT",
        "10.0.0.7",
        "localhost.attacker.example",
        "[::2]:PORT",
        "[::1]evil.example",
        "[localhost]",
        "localhost..",
    ] {
        let got = ask(host);
        assert!(got.starts_with("HTTP/1.1 403"), "{host}: {got}");
        assert!(
            got.contains("\"code\":\"bad_host\"") && got.contains("allowed_hosts"),
            "{got}"
        );
        assert!(!got.contains("models"), "{got}");
    }
    // A POST is refused before its body is read or a model runs.
    let mut c = raw(&s.url);
    c.write_all(b"POST /chat HTTP/1.1\r\nHost: evil.test\r\nContent-Type: application/json\r\nContent-Length: 25\r\nConnection: close\r\n\r\n{\"messages\": [\"hi you\"]}")
        .unwrap();
    assert!(read_all(&mut c).starts_with("HTTP/1.1 403"));
    // Two Host lines (a proxy could route on one, the guard read the
    // other) are refused; so is a request line whose absolute form names
    // another host, which HTTP/1.1 puts over the Host header.
    let send = |head: &str| {
        let mut c = raw(&s.url);
        c.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
            .unwrap();
        read_all(&mut c)
    };
    let two = send("GET /info HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n");
    assert!(
        two.starts_with("HTTP/1.1 400") && two.contains("2 Host headers"),
        "{two}"
    );
    let absolute = send("GET http://evil.example/info HTTP/1.1\r\nHost: localhost\r\n");
    assert!(
        absolute.starts_with("HTTP/1.1 403") && absolute.contains("evil.example"),
        "{absolute}"
    );
    let fine = send("GET http://localhost/info HTTP/1.1\r\nHost: localhost\r\n");
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    // HTTP/1.1 requires Host (RFC 9112 3.2); HTTP/1.0 predates it.
    let none = send("GET /info HTTP/1.1\r\n");
    assert!(
        none.starts_with("HTTP/1.1 400") && none.contains("no Host header"),
        "{none}"
    );
    let old = send("GET /info HTTP/1.0\r\n");
    assert!(old.starts_with("HTTP/1.0 200"), "{old}");
    let m = text(&s.url, "/metrics");
    assert!(m.contains("code=\"bad_host\""), "{m}");
    drop(s);
    // On another address: any name without allowed_hosts; with it, its
    // names (given with a port, too) and the loopback ones.
    for (allowed, host, want) in [
        (vec![], "attacker.example", "200"),
        (
            vec!["Recur.Internal.".to_string()],
            "recur.internal:PORT",
            "200",
        ),
        (vec!["recur.internal".to_string()], "localhost:PORT", "200"),
        (
            vec!["recur.internal".to_string()],
            "attacker.example",
            "403",
        ),
    ] {
        let s = start(|c| {
            c.host = "0.0.0.0".into();
            c.allowed_hosts = allowed.clone();
        });
        let mut c = raw(&s.url);
        let port = s.url.rsplit(':').next().unwrap();
        let host = host.replace("PORT", port);
        c.write_all(
            format!("GET /live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let got = read_all(&mut c);
        assert!(
            got.starts_with(&format!("HTTP/1.1 {want}")),
            "{allowed:?} {host}: {got}"
        );
    }
}

#[test]
fn requests_hyper_cannot_parse_get_json_errors_too() {
    use std::io::Write;
    let s = start(|_| {});
    let ask = |req: &[u8]| {
        let mut c = raw(&s.url);
        // The server may answer and close before a huge request is sent.
        let _ = c.write_all(req);
        read_all(&mut c)
    };
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let huge_header = format!(
        "GET /live HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(600_000)
    );
    let many_headers = format!(
        "GET /live HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        (0..101)
            .map(|i| format!("X-{i}: {i}\r\n"))
            .collect::<String>()
    );
    for (req, status, code) in [
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "400", "bad_http"),
        (
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            "400",
            "bad_http",
        ),
        (long_uri.into_bytes(), "414", "uri_too_long"),
        (huge_header.into_bytes(), "431", "headers_too_large"),
        // Too many small headers are too large, and said to be so.
        (many_headers.into_bytes(), "431", "headers_too_large"),
        // HTTP/2 with prior knowledge: hyper closed it without a word.
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            "400",
            "bad_http",
        ),
    ] {
        let got = ask(&req);
        assert!(got.starts_with(&format!("HTTP/1.1 {status}")), "{got}");
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-type: application/json"), "{head}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], code, "{body}");
        if code == "headers_too_large" {
            assert!(v["error"].as_str().unwrap().contains("too many"), "{body}");
        }
        if req.starts_with(b"PRI") {
            assert!(body.contains("recur serves HTTP/1.1"), "{body}");
        }
    }
    assert_eq!(call(&s.url, "GET", "/live", None).0, 200);
    // Counted as the router's own errors are, under the endpoint `http`.
    let m = text(&s.url, "/metrics");
    for (code, n) in [
        ("bad_http", 3),
        ("uri_too_long", 1),
        ("headers_too_large", 2),
    ] {
        let want = format!("recur_errors_total{{code=\"{code}\",endpoint=\"http\"}} {n}");
        assert!(m.contains(&want), "/metrics lacks {want}:\n{m}");
    }
}

/// Silent sockets cannot lock anyone out: at the limit a new connection
/// takes the slot of the one idle longest, whatever the flood. Only when
/// every connection has a request in progress is a newcomer refused (a
/// JSON 503), while `/health` still answers.
#[test]
fn past_the_connection_limit_health_answers_and_the_rest_is_refused() {
    use std::io::Write;
    let s = start(|c| {
        c.limits.max_connections = 3;
        c.limits.header_timeout_ms = 20_000;
        c.limits.body_timeout_ms = 20_000;
    });
    let ask = |req: &str| {
        let mut c = raw(&s.url);
        c.write_all(req.as_bytes()).unwrap();
        read_all(&mut c)
    };
    // A connection that holds a slot through the flood and closes after
    // it, as the readiness check's may on a loaded machine (the server sees
    // its end late): its slot is then free, and a newcomer takes it
    // without closing anyone.
    let mut held = raw(&s.url);
    held.write_all(b"GET /live HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(answer(&mut held).starts_with("HTTP/1.1 200"));
    // Far more idle sockets than slots and spare ones together: silent,
    // or sending a request head slowly (hyper's graceful shutdown would
    // wait for those). A connection may be closed to make room once it has
    // been idle for a quarter of a second.
    let mut idle: Vec<_> = (0..60)
        .map(|i| {
            let mut c = raw(&s.url);
            if i % 2 == 0 {
                c.write_all(b"GET /info HTTP/1.1\r\nHo").unwrap();
            }
            c
        })
        .collect();
    drop(held);
    std::thread::sleep(Duration::from_millis(400));
    // Three newcomers that stay connected: with at most two slots free,
    // the last of them at least must make room.
    let t = std::time::Instant::now();
    let kept: Vec<_> = ["/info", "/health", "/info"]
        .iter()
        .map(|path| {
            let mut c = raw(&s.url);
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                .unwrap();
            let got = answer(&mut c);
            assert!(got.starts_with("HTTP/1.1 200"), "{path}: {got}");
            c
        })
        .collect();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "served only after {:?}",
        t.elapsed()
    );
    // The first socket (idle longest), a slow head, was closed to make
    // room, at once and without an answer.
    for mut c in idle.drain(..1) {
        use std::io::Read;
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let t = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let got = c.read(&mut buf);
        assert!(
            matches!(got, Ok(0)) && t.elapsed() < Duration::from_secs(3),
            "{got:?} after {:?}",
            t.elapsed()
        );
    }
    drop((idle, kept));
    // The kept connections were answered just now: too young to be closed
    // to make room until MIN_IDLE, should the server see their ends late.
    std::thread::sleep(Duration::from_millis(300));
    // Three requests in progress, waiting for their bodies, hold every
    // slot: a newcomer gets the overflow's answers while they are younger
    // than MIN_IDLE. A connection counts as busy once the server has read
    // its head, so on a loaded machine the newcomer may come first and
    // take a slot; then all is tried again, waiting longer. One of them has
    // sent half its body, the others nothing.
    let mut wait = Duration::from_millis(30);
    let (busy, got) = loop {
        let began = std::time::Instant::now();
        let busy: Vec<_> = (0..3)
            .map(|i| {
                let mut c = raw(&s.url);
                c.write_all(
                    b"POST /v1/infer HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n",
                )
                .unwrap();
                if i == 0 {
                    c.write_all(b"{\"cont").unwrap();
                }
                c
            })
            .collect();
        std::thread::sleep(wait);
        let got = ask("GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        if got.starts_with("HTTP/1.1 503") || wait > Duration::from_millis(100) {
            break ((busy, began), got);
        }
        drop(busy);
        wait *= 2;
    };
    let (mut busy, began) = busy;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("too_many_connections"), "{got}");
    let got = ask("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(
        got.starts_with("HTTP/1.1 200") && got.contains("\"status\":\"ok\""),
        "{got}"
    );
    // Past MIN_IDLE, the request whose body comes slowest makes room:
    // new connections dripping bodies faster than a fixed wait of two
    // seconds let them age kept every client out. One that sent nothing
    // goes, not the oldest (the one with half its body).
    std::thread::sleep(Duration::from_millis(400).saturating_sub(began.elapsed()));
    let got = ask("GET /info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let closed: Vec<bool> = busy
        .iter_mut()
        .map(|c| {
            use std::io::Read;
            c.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            match c.read(&mut [0u8; 64]) {
                Ok(0) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        })
        .collect();
    assert!(
        !closed[0] && closed.iter().filter(|&&c| c).count() == 1,
        "a stalled body makes room first: {closed:?}"
    );
    // Closed, they free their slots (as soon as the server sees it).
    drop(busy);
    let t = std::time::Instant::now();
    while call(&s.url, "GET", "/info", None).0 != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the slots stayed taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_batch_takes_a_bounded_amount_of_text() {
    let s = start(|c| {
        c.limits.max_text_chars = 2_000;
        c.limits.max_batch = 64;
    });
    // 24 requests of 5 x 2,000 characters at once: at most six of them
    // (65,536 characters) may share a batch, however many are waiting.
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let url = s.url.clone();
            std::thread::spawn(move || {
                let messages: Vec<String> = (0..5)
                    .map(|m| format!("{i} {m} {}", "word ".repeat(400))[..2_000].to_string())
                    .collect();
                post(&url, "/chat", &json!({ "messages": messages })).0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    let m = text(&s.url, "/metrics");
    let value = |name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("/metrics lacks {name}:\n{m}"))
    };
    let (batches, at_most_8) = (
        value("recur_batch_size_count"),
        value("recur_batch_size_bucket{le=\"8\"}"),
    );
    assert!(
        batches >= 4.0,
        "{batches} batches for 24 requests of 10,000 characters"
    );
    assert_eq!(at_most_8, batches, "a batch over 8 requests:\n{m}");
}

#[test]
fn clients_that_never_read_their_answers_lose_their_connections() {
    use std::io::Write;
    let s = start(|c| {
        c.limits.max_connections = 2;
        c.limits.header_timeout_ms = 60_000;
        c.limits.write_timeout_ms = 300;
    });
    // Both slots: thousands of pipelined requests for the 4 KB page, some
    // 80 MB of answers that are never read, far more than any socket
    // buffers (Linux lets them grow to a few MB).
    let requests = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(20_000);
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let mut c = raw(&s.url);
            c.write_all(requests.as_bytes()).unwrap();
            c
        })
        .collect();
    // Without a write deadline the two would hold their slots (503
    // too_many_connections) until they close; with it, the server drops
    // them once their writes stall.
    let t = std::time::Instant::now();
    loop {
        let (status, body) = call(&s.url, "GET", "/info", None);
        if status == 200 {
            break;
        }
        assert_eq!(body["code"], "too_many_connections", "{body}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the stalled connections kept their slots"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stalled);
}

/// A connection with no request in progress, still sending its head,
/// does not hold up shutdown (it waited for the header deadline, 10 s).
#[test]
fn shutdown_does_not_wait_for_a_head_sent_slowly() {
    let mut s = start(|c| {
        c.limits.shutdown_grace_ms = 20_000;
        c.limits.header_timeout_ms = 20_000;
    });
    let c = stop_beside(&mut s, b"GET /live HTTP/1.1\r\nHost: localhost\r\n", 3);
    drop(c);
}

/// Sends `bytes` on a connection of its own, stops the server 0.2 s later
/// and asserts it has stopped within `secs`; the connection, kept open.
fn stop_beside(s: &mut Server, bytes: &[u8], secs: u64) -> std::net::TcpStream {
    use std::io::Write;
    let mut c = raw(&s.url);
    c.write_all(bytes).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = s.stop.take().unwrap().send(());
    let server = s.thread.take().unwrap();
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(server.join().is_ok()));
    assert_eq!(stopped.recv_timeout(Duration::from_secs(secs)), Ok(true));
    c
}

#[test]
fn shutdown_ends_within_the_grace_period_despite_a_half_sent_request() {
    let mut s = start(|c| {
        c.limits.shutdown_grace_ms = 500;
        c.limits.body_timeout_ms = 60_000;
    });
    // The grace period is 0.5 s; without a deadline it would wait for the
    // client for ever.
    stop_beside(
        &mut s,
        b"POST /chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        5,
    );
}

/// A stop while the models load ends the server at once: nothing is in
/// flight, and a load (a large bank's index build) cannot be cut short. A
/// SIGTERM waited out a 145 s load, then logged "ready".
#[test]
fn a_stop_while_the_models_load_does_not_wait_for_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServeConfig::from_file(&fixture::write(dir.path(), 6).unwrap()).unwrap();
    // A bank whose index takes seconds to build: 6,000 random sentences.
    let (n, dim) = (6_000, 32);
    let mut g = recur_core::rng::Rng::new(5);
    let vectors: Vec<f32> = (0..n * dim).map(|_| g.normal()).collect();
    let ids: Vec<i64> = (0..n as i64).collect();
    recur_data::npz::write_chunks(&cfg.bank[0], &vectors, dim, &ids, &vec![0; n]).unwrap();
    let texts: String = (0..n)
        .map(|i| format!("{{\"text\": \"s{i}\"}}\n"))
        .collect();
    std::fs::write(cfg.bank[0].with_extension("texts.jsonl"), texts).unwrap();
    cfg.decoder.exact_max = 1000;
    let loaded = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = loaded.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let on_stop = async move {
                let _ = stopped.await;
            };
            recur_serve::serve_on(l, cfg, Device::Cpu, on_stop, move |_| {
                flag.store(true, SeqCst)
            })
            .await
            .unwrap();
        });
    });
    let url = format!("http://{}", rx.recv().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let (status, h) = call(&url, "GET", "/health", None);
    assert_eq!(
        (status, h["status"].as_str()),
        (503, Some("loading")),
        "{h}"
    );
    stop.send(()).unwrap();
    server.join().unwrap();
    // The server ended while the bank's index was still being built.
    assert!(!loaded.load(SeqCst), "the stop waited for the load");
    drop(dir);
}
