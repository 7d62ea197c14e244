//! Whole-series classification as a user runs it from the command line:
//! a `.ts` file of three classes, two channels, lengths that differ and
//! missing values; `recur train`, `recur eval` (the metrics and the
//! confusion matrix), `recur predict` (a probability per class), and
//! `recur serve`, which refuses such a model with a clear message.

mod common;

use common::{ok, recur};
use std::path::Path;

/// `n` series: `up` rises in channel 0, `down` falls, `flat` rises in
/// channel 1; lengths 8 to 19; every 5th value of channel 1 missing.
fn write_ts(path: &Path, n: usize, seed: u64) {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut s = String::from("@problemName Three\n@missing true\n@equalLength false\n@data\n");
    for i in 0..n {
        let class = ["up", "down", "up", "flat"][i % 4];
        let (a, b) = match class {
            "up" => (0.1, 0.0),
            "down" => (-0.1, 0.0),
            _ => (0.0, 0.1),
        };
        let len = 8 + (next() * 12.0) as usize;
        let c0: Vec<String> = (0..len)
            .map(|t| format!("{:.4}", a * t as f64 + next() - 0.5))
            .collect();
        let c1: Vec<String> = (0..len)
            .map(|t| {
                let v = format!("{:.4}", b * t as f64 + next() - 0.5);
                if t % 5 == 2 {
                    "?".into()
                } else {
                    v
                }
            })
            .collect();
        s += &format!("{}:{}:{class}\n", c0.join(","), c1.join(","));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn three_classes_of_several_lengths_from_train_to_predict() {
    let d = tempfile::tempdir().unwrap();
    let train = d.path().join("three_TRAIN.ts");
    let test = d.path().join("three_TEST.ts");
    write_ts(&train, 200, 1);
    write_ts(&test, 80, 2);
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "data:\n  path: three_TRAIN.ts\n  layout: sequences\n  split: {train: 0.8, val: 0.2, test: 0.0, shuffle: true}\n\
         model: {hidden_size: 12}\ntraining: {epochs: 20, learning_rate: 0.01, batch_size: 16}\n",
    )
    .unwrap();
    let m = d.path().join("m");
    let m = m.to_str().unwrap();
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m,
    ]));
    assert!(
        text.contains("macro F1") && text.contains("temperature"),
        "{text}"
    );
    let text = ok(&recur(&[
        "eval",
        "--model",
        m,
        "--input",
        test.to_str().unwrap(),
    ]));
    assert!(
        text.contains("80 series, 3 classes") && text.contains("confusion on this file"),
        "{text}"
    );
    let acc: f64 = text
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 0.85, "{text}");
    let out = d.path().join("p.csv");
    let text = ok(&recur(&[
        "predict",
        "--model",
        m,
        "--input",
        test.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    assert!(text.contains("80 series scored (3 classes"), "{text}");
    let table = std::fs::read_to_string(&out).unwrap();
    assert!(
        table.starts_with("row,label,p_down,p_flat,p_up,class,probability\n0,up,"),
        "{table}"
    );
    // /v1/classify serves windows of a time series: a whole-series model is
    // refused at start, naming the key and what to use instead. The service
    // keeps listening and its /health answers 503 with that reason.
    let serve_cfg = d.path().join("serve.yaml");
    std::fs::write(&serve_cfg, format!("classifier: {m}\n")).unwrap();
    let (mut child, url, mut lines) = common::serve(&serve_cfg);
    let line = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("failed to load"))
        .expect("a load failure on standard error");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut r = agent.get(format!("{url}/health")).call().unwrap();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        line.contains("classifier")
            && line.contains("whole series")
            && line.contains("recur predict"),
        "{line}"
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("whole series"), "{body}");
}
