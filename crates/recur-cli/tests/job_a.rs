//! Job A complete, as a user runs it: selection, trees, calibration and
//! the ensemble from one config, the report and its HTML page; an XGBoost
//! model in the trees' place; and the errors for bad settings.

mod common;

use common::{err, ok, recur};
use std::path::{Path, PathBuf};

/// `n` rows: `a` (autocorrelated), `b` (white noise), `flat` (constant 2)
/// and `y[t] = 1` when `a[t-3] > 1`, so memory of three rows predicts it.
fn write_series(dir: &Path, n: usize) -> PathBuf {
    let mut g = recur_core::rng::Rng::new(9);
    let mut a = vec![1.0f64; n];
    for t in 1..n {
        a[t] = 1.0 + 0.6 * (a[t - 1] - 1.0) + g.normal() as f64;
    }
    let mut s = String::from("t,a,b,flat,y\n");
    for r in 0..n {
        let y = (r >= 3 && a[r - 3] > 1.0) as u8;
        s += &format!("{r},{:.5},{:.5},2.0,{y}\n", a[r], 1.0 + g.unit() as f64);
    }
    let p = dir.join("series.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let data = write_series(dir, 1500);
    let yaml = format!(
        "data:\n  path: {}\n  time_column: t\n  target:\n    column: y\n\
         model:\n  sequence_length: 8\n  hidden_size: 8\n\
         training:\n  epochs: 3\n  batch_size: 64\n  learning_rate: 0.01\n{extra}",
        data.display()
    );
    let p = dir.join("job_a.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn one_config_trains_selects_blends_calibrates_and_reports() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(
        d.path(),
        "selection:\n  max_noise_ratio: .inf\n  min_abs_autocorr: -1\n  ewma_span: 1\n\
         trees:\n  lags: [1, 2, 3]\n  iterations: 200\n  learning_rate: 0.2\n  max_depth: 3\n\
         calibration: isotonic\nensemble:\n  weights: dynamic\n",
    );
    let out = d.path().join("m");
    let html = d.path().join("report.html");
    let text = ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--report-html",
        html.to_str().unwrap(),
    ]));
    for want in [
        "lstm (raw)",
        "trees (calibrated)",
        "ensemble (raw)",
        "dropped: constant",
        "ensemble weights",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    let r = json(&out.join("report.json"));
    // The constant column was dropped; a and b kept.
    assert_eq!(r["features"], serde_json::json!(["a", "b"]));
    let w = &r["weights"];
    let sum = w["trees"].as_f64().unwrap() + w["lstm"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-12, "{w}");
    let models = r["models"].as_object().unwrap();
    assert_eq!(models.len(), 3);
    for (name, m) in models {
        for v in ["raw", "calibrated"] {
            let t = &m[v]["test"];
            assert!(t["auc"].as_f64().unwrap() > 0.5, "{name} {v}: {t}");
            let th = m[v]["threshold"].as_f64().unwrap();
            assert!((0.01..=0.99).contains(&th));
        }
    }
    // The trees read the lag-3 copy, which carries the label exactly.
    let trees_auc = models["trees"]["raw"]["test"]["auc"].as_f64().unwrap();
    assert!(trees_auc > 0.95, "{trees_auc}");
    assert_eq!(r["trees"]["importance"][0][0], "a_lag3");
    assert_eq!(r["trees"]["source"], "forust");
    // Isotonic calibration, fit on validation, is calibrated there.
    for (name, m) in models {
        let cal = m["calibrated"]["val"]["ece"].as_f64().unwrap();
        assert!(cal < 0.03, "{name}: validation ECE after isotonic {cal}");
        assert_eq!(m["calibrator"]["kind"], "isotonic");
    }
    for f in [
        "trees.json",
        "ensemble.json",
        "selection.json",
        "report.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.matches("<svg").count() >= 5,
        "ROC, 3 reliability diagrams, training curves"
    );
    assert!(page.contains("reliability: ensemble"));
    // The model still predicts (the LSTM with the selected features).
    let preds = d.path().join("p.csv");
    let data = d.path().join("series.csv");
    ok(&recur(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--input",
        data.to_str().unwrap(),
        "--output",
        preds.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read_to_string(&preds).unwrap().lines().count(),
        1500 - 8 + 2
    );
}

#[test]
fn an_xgboost_model_can_take_the_trees_place() {
    let d = tempfile::tempdir().unwrap();
    // The fixture model reads features a, b and c.
    let mut g = recur_core::rng::Rng::new(2);
    let mut s = String::from("a,b,c,y\n");
    for r in 0..600 {
        let (a, b, c) = (g.normal(), g.normal(), g.normal());
        s += &format!(
            "{a:.4},{b:.4},{c:.4},{}\n",
            (a + 0.5 * b * c > 0.0 || r % 7 == 0) as u8
        );
    }
    std::fs::write(d.path().join("abc.csv"), s).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recur-models/tests/fixtures");
    let yaml = |model: &str| {
        format!(
            "data:\n  path: abc.csv\n  features: [a, b, c]\n  target:\n    column: y\n\
             model:\n  sequence_length: 4\n  hidden_size: 4\ntraining:\n  epochs: 1\n\
             trees:\n  xgboost_model: {}\nensemble: {{}}\n",
            fixture.join(model).display()
        )
    };
    let cfg = d.path().join("x.yaml");
    std::fs::write(&cfg, yaml("xgb_binary.json")).unwrap();
    let out = d.path().join("m");
    ok(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let r = json(&out.join("report.json"));
    assert_eq!(r["trees"]["source"], "xgboost");
    assert_eq!(r["trees"]["trees"], 6);
    // The model was trained on this rule: it ranks well here.
    assert!(
        r["models"]["trees"]["raw"]["test"]["auc"].as_f64().unwrap() > 0.8,
        "{}",
        r["models"]["trees"]
    );
    std::fs::write(&cfg, yaml("xgb_regression.json")).unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        e.contains("xgb_regression.json") && e.contains("reg:squarederror"),
        "{e}"
    );
}

#[test]
fn select_features_prints_every_statistic_and_bad_settings_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "selection:\n  max_noise_ratio: .inf\n");
    let j = d.path().join("sel.json");
    let text = ok(&recur(&[
        "select-features",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        j.to_str().unwrap(),
    ]));
    assert!(
        text.contains("flat") && text.contains("dropped: constant"),
        "{text}"
    );
    assert!(
        text.contains("b") && text.contains("dropped: autocorrelation"),
        "{text}"
    );
    let s = json(&j);
    assert_eq!(s["kept"], serde_json::json!(["a"]));
    assert_eq!(s["train_rows"][0], 0);
    // Everything dropped: each feature and the filter that dropped it.
    let cfg = config(d.path(), "selection:\n  min_abs_autocorr: 0.95\n");
    let e = err(&recur(&[
        "select-features",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    for want in [
        "dropped every feature",
        "a: autocorrelation",
        "b: autocorrelation",
        "flat: constant",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    // A feature list naming a missing column.
    let cfg = config(d.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  time_column: t\n",
        "  time_column: t\n  features: [a, wind]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let e = err(&recur(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d.path().join("x").to_str().unwrap(),
    ]));
    assert!(e.contains("wind"), "{e}");
    // An ensemble without trees.
    let cfg = config(d.path(), "ensemble: {}\n");
    let e = err(&recur(&["train", "--config", cfg.to_str().unwrap()]));
    assert!(e.contains("ensemble") && e.contains("trees:"), "{e}");
}
