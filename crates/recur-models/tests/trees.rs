//! The trees: XGBoost models read from JSON predict what XGBoost predicts;
//! forust trees learn a lagged signal and stop early; unsupported models
//! are refused with the reason.

use recur_core::config::TreesConfig;
use recur_models::trees::{Design, TreeModel};
use recur_models::xgboost::XgbModel;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn an_xgboost_model_read_from_json_predicts_as_xgboost_does() {
    let m = XgbModel::load(&fixture("xgb_binary.json")).unwrap();
    assert_eq!((m.n_trees(), m.n_features), (6, 3));
    assert_eq!(m.feature_names, vec!["a", "b", "c"]);
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("xgb_binary_expected.json")).unwrap(),
    )
    .unwrap();
    let rows = want["rows"].as_array().unwrap();
    let mut missing = 0;
    for (r, p) in rows.iter().zip(want["probabilities"].as_array().unwrap()) {
        let x: Vec<f64> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        missing += x.iter().filter(|v| v.is_nan()).count();
        let got = m.predict(&x)[0];
        let p = p.as_f64().unwrap();
        assert!((got - p).abs() < 1e-6, "{x:?}: recur {got}, XGBoost {p}");
    }
    assert!(missing > 5, "the fixture must exercise default directions");
}

#[test]
fn unsupported_and_broken_models_are_refused_with_the_reason() {
    let e = XgbModel::load(&fixture("xgb_regression.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("reg:squarederror") && e.contains("binary:logistic"),
        "{e}"
    );
    assert!(e.contains("xgb_regression.json"), "{e}");
    let e = XgbModel::from_json("{\"a\": 1}", "m.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.json") && e.contains("save_model"), "{e}");
    let text = std::fs::read_to_string(fixture("xgb_binary.json")).unwrap();
    let e = XgbModel::from_json(&text.replace("\"gbtree\"", "\"gblinear\""), "m.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("gblinear"), "{e}");
    // A model whose features recur's inputs lack.
    let m = XgbModel::load(&fixture("xgb_binary.json")).unwrap();
    let d = Design::new(&["a".into(), "b".into()], &[0.0; 8], &[]);
    let e = TreeModel::xgboost(m, &d, "m.json")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`c`"), "{e}");
}

#[test]
fn the_design_has_lags_and_scores_every_row_from_the_largest() {
    let f = vec!["x".to_string(), "y".to_string()];
    let raw: Vec<f64> = (0..10).flat_map(|r| [r as f64, 100.0 + r as f64]).collect();
    let d = Design::new(&f, &raw, &[1, 3]);
    assert_eq!(
        d.names,
        vec!["x", "y", "x_lag1", "y_lag1", "x_lag3", "y_lag3"]
    );
    assert_eq!(d.rows, (3..10).collect::<Vec<_>>());
    // Row 5: x 5, y 105, lag 1: 4, 104, lag 3: 2, 102.
    assert_eq!(&d.x[2 * 6..3 * 6], &[5.0, 105.0, 4.0, 104.0, 2.0, 102.0]);
}

#[test]
fn forust_trees_learn_a_lagged_signal_and_stop_early() {
    // y[t] = 1 when a[t-2] > 0.5: only the lag-2 copy carries it.
    let mut g = recur_core::rng::Rng::new(4);
    let n = 1500;
    let a: Vec<f64> = (0..n).map(|_| g.unit() as f64).collect();
    let raw: Vec<f64> = a.iter().flat_map(|&v| [v, g.unit() as f64]).collect();
    let labels: Vec<Option<f32>> = (0..n)
        .map(|t| (t >= 2).then(|| (a[t - 2] > 0.5) as u8 as f32))
        .collect();
    let d = Design::new(&["a".into(), "noise".into()], &raw, &[1, 2]);
    let cfg = TreesConfig {
        iterations: 400,
        learning_rate: 0.3,
        max_depth: 3,
        early_stopping_rounds: 10,
        ..Default::default()
    };
    let m = TreeModel::fit(&d, &labels, 0..1000, 1000..1250, &cfg, 1).unwrap();
    assert!(
        m.n_trees() < 400,
        "early stopping never stopped: {}",
        m.n_trees()
    );
    let p = m.predict(&d);
    let test: Vec<usize> = (0..d.rows.len()).filter(|&i| d.rows[i] >= 1250).collect();
    let correct = test
        .iter()
        .filter(|&&i| (p[i] > 0.5) == (labels[d.rows[i]].unwrap() > 0.5))
        .count();
    assert!(
        correct as f64 / test.len() as f64 > 0.95,
        "{correct}/{}",
        test.len()
    );
    assert_eq!(m.importance()[0].0, "a_lag2");
    // Deterministic for a seed.
    let again = TreeModel::fit(&d, &labels, 0..1000, 1000..1250, &cfg, 1).unwrap();
    assert_eq!(again.predict(&d), p);
}
