//! `recur drift` as a cron job runs it: exit 0 without drift, 1 with it,
//! 2 on an error; thresholds from the model's config, or given for one
//! check.

mod common;

use common::{err, recur};
use std::path::Path;

/// The rainfall rows `idx` as a CSV with its header.
fn subset(dir: &Path, name: &str, keep: impl Fn(usize, usize) -> bool) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/rainfall.csv"),
    )
    .unwrap();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let n = rows.len();
    let mut out = String::from(head) + "\n";
    for (i, r) in rows.iter().enumerate() {
        if keep(i, n) {
            out += r;
            out.push('\n');
        }
    }
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p.display().to_string()
}

#[test]
fn drift_exits_1_on_the_later_years_0_on_earlier_blocks_and_2_on_errors() {
    let d = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/rainfall.csv");
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data:\n  path: {}\n  target:\n    column: rain\n    horizon: 1\n\
             model:\n  sequence_length: 4\n  hidden_size: 4\ntraining:\n  epochs: 1\n",
            data.display()
        ),
    )
    .unwrap();
    let model = d.path().join("m");
    let m = model.to_str().unwrap();
    common::ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m,
    ]));
    assert!(model.join("reference.json").exists());
    // The training part is the first 70% of rows.
    let later = subset(d.path(), "later.csv", |i, n| i >= n * 7 / 10);
    let blocks = subset(d.path(), "blocks.csv", |i, n| {
        i < n * 7 / 10 && (i / 30) % 2 == 0
    });
    let out = recur(&["drift", "--model", m, "--input", &later]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dew point") && text.contains("DRIFT: PSI"),
        "{text}"
    );
    let j = d.path().join("d.json");
    let out = recur(&[
        "drift",
        "--model",
        m,
        "--input",
        &blocks,
        "--json",
        j.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    // The default features: every numeric column but the target (rain) and the row number.
    assert_eq!(v.as_array().unwrap().len(), 8);
    // Thresholds come from the model's config.
    let yaml = model.join("config.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let loose = text
        .replace(
            "drift:\n  psi: 0.2\n  ks: 0.1\n",
            "drift:\n  psi: 100.0\n  ks: 1.0\n",
        )
        .replace("autocorr_shift: 0.2", "autocorr_shift: 1.0");
    assert_ne!(loose, text, "config.yaml spells out the drift thresholds");
    // Edited there, they break the model for every command (the manifest
    // no longer matches), so drift refuses it too and names the flags...
    std::fs::write(&yaml, loose).unwrap();
    let e = err(&recur(&["drift", "--model", m, "--input", &later]));
    assert!(e.contains("config.yaml (changed)"), "{e}");
    std::fs::write(&yaml, &text).unwrap();
    // ...which give other thresholds for one check.
    let out = recur(&[
        "drift",
        "--model",
        m,
        "--input",
        &later,
        "--psi",
        "100",
        "--ks",
        "1",
        "--autocorr-shift",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = err(&recur(&[
        "drift", "--model", m, "--input", &later, "--psi=-1",
    ]));
    assert!(
        e.contains("--psi -1: a threshold is a finite number above 0"),
        "{e}"
    );
    // Errors: exit 2 with the reason.
    let e = err(&recur(&["drift", "--model", m, "--input", "nope.csv"]));
    assert!(e.contains("nope.csv"), "{e}");
    // A value beyond float32, as training and eval refuse it (drift
    // printed a 300-digit mean shift and a NaN autocorrelation shift).
    let text = std::fs::read_to_string(&later).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = header.iter().position(|h| *h == "temperature").unwrap();
    let mut cells: Vec<String> = lines[5].split(',').map(str::to_string).collect();
    cells[col] = "1e308".into();
    lines[5] = cells.join(",");
    let huge = d.path().join("huge.csv");
    std::fs::write(&huge, lines.join("\n") + "\n").unwrap();
    let e = err(&recur(&[
        "drift",
        "--model",
        m,
        "--input",
        huge.to_str().unwrap(),
    ]));
    assert!(
        e.contains("feature `temperature` is 1e308, beyond float32"),
        "{e}"
    );
    // An edited reference (its quantiles emptied, which indexed out of
    // bounds) is refused as changed, before anything reads it.
    let r = model.join("reference.json");
    let text = std::fs::read_to_string(&r).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["features"][0]["quantiles"] = serde_json::json!([]);
    std::fs::write(&r, v.to_string()).unwrap();
    let e = err(&recur(&["drift", "--model", m, "--input", &later]));
    assert!(
        e.contains("reference.json (changed)") && !e.contains("panicked"),
        "{e}"
    );
    // With the manifest rewritten to match, a reference of other features
    // than the model reads is refused, naming both lists.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["features"][0]["feature"] = serde_json::json!("bogus");
    std::fs::write(&r, v.to_string()).unwrap();
    recur_core::dirwrite::reseal(&model).unwrap();
    let e = err(&recur(&["drift", "--model", m, "--input", &later]));
    assert!(
        e.contains("reference.json") && e.contains("bogus") && e.contains("features.json"),
        "{e}"
    );
    std::fs::remove_file(model.join("reference.json")).unwrap();
    let e = err(&recur(&["drift", "--model", m, "--input", &later]));
    assert!(e.contains("reference.json"), "{e}");
}

/// A feature of tiny values (a quantity in other units) and a constant
/// one: the model trained on them loads, and the training rows themselves
/// show no drift (the constant's std is its sums' rounding, not a spread
/// to measure shifts in).
#[test]
fn tiny_and_constant_features_load_and_do_not_drift_on_their_own_rows() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/rainfall.csv"),
    )
    .unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().take(3001).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        if i == 0 {
            out += &format!("{line},tiny,flat\n");
        } else {
            let tiny = cells[1].parse::<f64>().unwrap() * 1e-13;
            out += &format!("{line},{tiny:e},0.1\n");
        }
    }
    let data = d.path().join("data.csv");
    std::fs::write(&data, out).unwrap();
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "data:\n  path: {}\n  features: [tiny, flat, rain]\n  target:\n    column: rain\n    horizon: 1\n\
             model:\n  sequence_length: 4\n  hidden_size: 4\ntraining:\n  epochs: 1\n",
            data.display()
        ),
    )
    .unwrap();
    let model = d.path().join("m");
    let (m, input) = (model.to_str().unwrap(), data.to_str().unwrap());
    common::ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        m,
    ]));
    let scaler = std::fs::read_to_string(model.join("scaler.json")).unwrap();
    assert!(
        scaler.contains("e-13") || scaler.contains("e-14"),
        "{scaler}"
    );
    let pred = d.path().join("p.csv");
    common::ok(&recur(&[
        "predict",
        "--model",
        m,
        "--input",
        input,
        "--output",
        pred.to_str().unwrap(),
    ]));
    // The whole file against the training rows' reference (the
    // constant's mean rounds otherwise over more rows): nothing drifted.
    let o = recur(&["drift", "--model", m, "--input", input]);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{shown}");
}
