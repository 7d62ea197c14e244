//! recur's multi-class metrics against scikit-learn's on the fixture that
//! `scripts/make_multiclass_fixture.py` writes: accuracy, macro F1,
//! one-vs-rest macro ROC AUC, log loss and the confusion matrix.

use recur_deploy::Metrics;

#[test]
fn multiclass_metrics_equal_scikit_learns() {
    let text = include_str!("fixtures/multiclass_metrics.json");
    let fx: serde_json::Value = serde_json::from_str(text).unwrap();
    for case in ["a", "b", "c"] {
        let c = &fx[case];
        let k = c["k"].as_u64().unwrap() as usize;
        let p: Vec<f64> = serde_json::from_value(c["p"].clone()).unwrap();
        let y: Vec<f32> = serde_json::from_value::<Vec<f64>>(c["y"].clone())
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let m = Metrics::compute_multi(&p, &y, k);
        let close = |got: f64, key: &str| {
            let want = c[key].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "case {case} {key}: recur {got}, scikit-learn {want}"
            );
        };
        close(m.accuracy, "accuracy");
        close(m.macro_f1.unwrap(), "macro_f1");
        close(m.auc.unwrap(), "macro_auc");
        close(m.logloss, "log_loss");
        let conf: Vec<Vec<usize>> = serde_json::from_value(c["confusion"].clone()).unwrap();
        assert_eq!(m.confusion.unwrap(), conf, "case {case}");
        assert_eq!(m.n, y.len());
    }
}
