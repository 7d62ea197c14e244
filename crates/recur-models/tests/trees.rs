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

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// A fixture row: `null` is a missing value.
fn row(r: &serde_json::Value) -> Vec<f64> {
    r.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect()
}

#[test]
fn an_early_stopped_xgboost_model_scores_its_best_rounds_as_predict_proba_does() {
    let m = XgbModel::load(&fixture("xgb_early_stopped.json")).unwrap();
    let want = expected("xgb_early_stopped_expected.json");
    let best = want["best_iteration"].as_u64().unwrap() as usize;
    let n_rounds = want["n_rounds"].as_u64().unwrap() as usize;
    assert_eq!(m.best_iteration, Some(best));
    assert_eq!(m.n_rounds_in_file(), n_rounds);
    assert!(best + 10 < n_rounds, "best_iteration {best} of {n_rounds}");
    assert_eq!(
        (m.n_trees(), m.n_rounds(), m.trees_per_round),
        (best + 1, best + 1, 1)
    );
    assert_eq!(m.feature_names, vec!["a", "b", "a_lag1", "b_lag1"]);
    let all = want["probabilities_all_trees"].as_array().unwrap();
    let (mut missing, mut apart) = (0, 0.0f64);
    for ((r, p), q) in want["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["probabilities"].as_array().unwrap())
        .zip(all)
    {
        let x = row(r);
        missing += x.iter().filter(|v| v.is_nan()).count();
        let got = m.predict(&x)[0];
        let p = p.as_f64().unwrap();
        assert!((got - p).abs() < 1e-6, "{x:?}: recur {got}, XGBoost {p}");
        apart = apart.max((got - q.as_f64().unwrap()).abs());
    }
    assert!(missing > 5, "the fixture must exercise default directions");
    assert!(
        apart > 1e-3,
        "all the trees score like the best rounds: {apart}"
    );
}

#[test]
fn an_early_stopped_xgboost_models_importance_is_its_total_gain() {
    let m = XgbModel::load(&fixture("xgb_early_stopped.json")).unwrap();
    let want = expected("xgb_early_stopped_expected.json");
    let gain = want["total_gain"].as_object().unwrap();
    let gain_of = |n: &str| gain.get(n).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let sum: f64 = gain.values().map(|v| v.as_f64().unwrap()).sum();
    for (i, g) in m.total_gain().into_iter().enumerate() {
        let w = gain_of(m.feature_names[i].as_str());
        assert!(
            (g - w).abs() <= 1e-6 * w,
            "{}: recur {g}, XGBoost {w}",
            m.feature_names[i]
        );
    }
    let imp = m.importance();
    assert_eq!(imp.len(), 4);
    for (name, share) in &imp {
        let w = gain_of(name.as_str()) / sum;
        assert!(
            (share - w).abs() <= 1e-6 * w,
            "{name}: recur {share}, XGBoost {w}"
        );
    }
    assert!(imp.windows(2).all(|p| p[0].1 >= p[1].1), "{imp:?}");
    assert!((imp.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(imp[0].0, "a");
    // Through the trees, whose inputs are in another order.
    let d = Design::new(&["b".into(), "a".into()], &[0.0; 20], &[1]);
    let t = TreeModel::xgboost(m.clone(), &d, "m.json").unwrap();
    assert_eq!(t.importance(), imp);
    assert_eq!(t.n_trees(), m.n_trees());
}

#[test]
fn a_best_iteration_beyond_the_trees_is_refused() {
    let text = std::fs::read_to_string(fixture("xgb_early_stopped.json")).unwrap();
    let want = expected("xgb_early_stopped_expected.json");
    let (best, n_rounds) = (
        want["best_iteration"].as_u64().unwrap(),
        want["n_rounds"].as_u64().unwrap(),
    );
    let at = |b: &str| {
        text.replace(
            &format!("\"best_iteration\":\"{best}\""),
            &format!("\"best_iteration\":\"{b}\""),
        )
    };
    assert_ne!(at("x"), text);
    let e = XgbModel::from_json(&at(n_rounds.to_string().as_str()), "m.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.json")
            && e.contains("best_iteration")
            && e.contains(&format!("{n_rounds} rounds")),
        "{e}"
    );
    let e = XgbModel::from_json(&at("-1"), "m.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.json") && e.contains("best_iteration"), "{e}");
    // The last round is one the file holds: all its trees score.
    let m = XgbModel::from_json(&at((n_rounds - 1).to_string().as_str()), "m.json").unwrap();
    assert_eq!(m.n_trees(), n_rounds as usize);
    // Without best_iteration too.
    let m = XgbModel::from_json(
        &text.replace("\"best_iteration\"", "\"best_round\""),
        "m.json",
    )
    .unwrap();
    assert_eq!((m.best_iteration, m.n_trees()), (None, n_rounds as usize));
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
    // A tree with no nodes (scoring read its root and panicked).
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tree = &mut v["learner"]["gradient_booster"]["model"]["trees"][1];
    for key in [
        "left_children",
        "right_children",
        "split_indices",
        "split_conditions",
        "default_left",
        "loss_changes",
    ] {
        tree[key] = serde_json::json!([]);
    }
    let e = XgbModel::from_json(&v.to_string(), "m.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("m.json") && e.contains("tree 1 has no nodes"),
        "{e}"
    );
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
    let values: Vec<f64> = (0..10).flat_map(|r| [r as f64, 100.0 + r as f64]).collect();
    let d = Design::new(&f, &values, &[1, 3]);
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
    let values: Vec<f64> = a.iter().flat_map(|&v| [v, g.unit() as f64]).collect();
    let labels: Vec<Option<f32>> = (0..n)
        .map(|t| (t >= 2).then(|| (a[t - 2] > 0.5) as u8 as f32))
        .collect();
    let d = Design::new(&["a".into(), "noise".into()], &values, &[1, 2]);
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

/// `binary:logitraw` scores the sigmoid of its margin, a probability (its
/// margin was deployed as one, below 0 and above 1); its base_score is a
/// margin already. A gblinear model is refused by its booster's name.
#[test]
fn a_logitraw_model_scores_probabilities_and_gblinear_is_named() {
    let text = std::fs::read_to_string(fixture("xgb_binary.json")).unwrap();
    let logistic = XgbModel::from_json(&text, "t").unwrap();
    let raw =
        XgbModel::from_json(&text.replace("binary:logistic", "binary:logitraw"), "t").unwrap();
    let want = expected("xgb_binary_expected.json");
    let base: f64 = {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let b = v["learner"]["learner_model_param"]["base_score"]
            .as_str()
            .unwrap();
        b.trim_matches(|c| c == '[' || c == ']').parse().unwrap()
    };
    for r in want["rows"].as_array().unwrap() {
        let x = row(r);
        let margin = logistic.margin(&x) - (base / (1.0 - base)).ln() + base;
        let p = raw.predict(&x)[0];
        assert!((0.0..=1.0).contains(&p));
        assert!(
            (p - 1.0 / (1.0 + (-margin).exp())).abs() < 1e-12,
            "{p} vs margin {margin}"
        );
    }
    let linear = r#"{"learner": {"gradient_booster": {"name": "gblinear", "model": {"weights": [0.1, 0.2]}},
        "objective": {"name": "binary:logistic"}, "learner_model_param": {"num_feature": "1", "base_score": "5E-1"}}}"#;
    let e = XgbModel::from_json(linear, "lin.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("booster `gblinear` is not supported"), "{e}");
}
