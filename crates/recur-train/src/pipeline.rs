//! The three things a user does with a classifier, each from files to
//! files: train a config into a model directory, evaluate a model on a
//! labelled file, and write per-row probabilities for a file.

use crate::artifact::{save_model_dir, ModelDir, Report};
use crate::metrics::Metrics;
use crate::trainer::{fit, predict_logits, probabilities, FitOptions};
use candle_core::Device;
use recur_core::config::Config;
use recur_core::fsx::write_atomic;
use recur_core::{Error, Result};
use recur_data::{prepare_training, WindowSet};
use std::path::Path;

fn metrics_of(
    model: &recur_models::LstmClassifier,
    set: &WindowSet,
    dev: &Device,
) -> Result<Metrics> {
    let logits = predict_logits(model, set, dev)?;
    Ok(Metrics::compute(&probabilities(&logits), &set.labels()))
}

/// Trains `cfg` and writes the model directory `out`; returns the report.
pub fn train_to_dir(cfg: &Config, out: &Path, dev: &Device, opts: &FitOptions) -> Result<Report> {
    let prep = prepare_training(cfg)?;
    if opts.progress {
        eprintln!(
            "data: {} windows of {} rows x {} features (train {}, val {}, test {})",
            prep.train.len() + prep.val.len() + prep.test.len(),
            prep.seq_len,
            prep.features.len(),
            prep.train.len(),
            prep.val.len(),
            prep.test.len()
        );
    }
    if opts.progress && !prep.ignored_columns.is_empty() {
        eprintln!(
            "note: text columns left out of the features: {}",
            prep.ignored_columns.join(", ")
        );
    }
    let result = fit(&prep, cfg, dev, opts)?;
    // The LSTM's validation and test probabilities, once: the metrics, the
    // ROC curve and the ensemble all read them.
    let probs = |set: &WindowSet| -> Result<Vec<f64>> {
        Ok(probabilities(&predict_logits(&result.model, set, dev)?))
    };
    let val_p = probs(&prep.val)?;
    let test_p = if prep.test.is_empty() {
        None
    } else {
        Some(probs(&prep.test)?)
    };
    let report = Report {
        val: Metrics::compute(&val_p, &prep.val.labels()),
        test: test_p
            .as_ref()
            .map(|p| Metrics::compute(p, &prep.test.labels())),
        best_epoch: result.best_epoch,
        epochs_run: result.epochs_run,
        pos_weight: result.pos_weight,
        n_train: prep.train.len(),
        n_val: prep.val.len(),
        n_test: prep.test.len(),
        features: prep.features.clone(),
        sequence_length: prep.seq_len,
        params: result.model.n_params(),
        seed: cfg.training.seed,
        selection: prep.selection.as_ref().map(|s| s.table.clone()),
        models: None,
        weights: None,
        trees: None,
        ensemble_auc_lift: None,
        roc: Default::default(),
    };
    let mut report = report;
    let (shown, shown_p) = match &test_p {
        Some(p) => (&prep.test, p),
        None => (&prep.val, &val_p),
    };
    report.roc.insert(
        "lstm".into(),
        crate::metrics::roc_curve(shown_p, &shown.labels(), 300),
    );
    let mut extra: Vec<(&str, String)> = Vec::new();
    if cfg.trees.is_some() {
        if opts.progress {
            eprintln!(
                "trees: training, then calibration, thresholds and the ensemble on validation"
            );
        }
        let (a, trees) = crate::job_a::run(&prep, &val_p, test_p.as_deref(), cfg)?;
        if let Some(j) = trees.to_json() {
            extra.push(("trees.json", j));
        }
        let decisions: std::collections::BTreeMap<&String, serde_json::Value> = a
            .models
            .iter()
            .map(|(k, m)| {
                (
                    k,
                    serde_json::json!({
                        "calibrator": m.calibrator,
                        "threshold_raw": m.raw.threshold,
                        "threshold_calibrated": m.calibrated.threshold,
                    }),
                )
            })
            .collect();
        let ensemble = serde_json::json!({"weights": a.weights, "models": decisions});
        extra.push((
            "ensemble.json",
            serde_json::to_string_pretty(&ensemble).expect("JSON values serialise"),
        ));
        report.models = Some(a.models);
        report.weights = Some(a.weights);
        report.trees = Some(a.trees);
        report.ensemble_auc_lift = a.ensemble_auc_lift;
        report.roc.extend(a.roc);
    }
    if let Some(split) = prep.info.time_split {
        // The training rows' feature distribution, for `recur drift`.
        let reference = recur_data::drift::Reference::of(
            &prep.features,
            &prep.raw,
            split.train.start..split.train.end,
        );
        extra.push((
            recur_data::drift::REFERENCE_FILE,
            serde_json::to_string(&reference).expect("reference serialises"),
        ));
    }
    if let Some(sel) = &prep.selection {
        extra.push((
            "selection.json",
            serde_json::to_string_pretty(sel).expect("selection serialises"),
        ));
    }
    save_model_dir(out, cfg, &result, &prep.scaler, &prep.info, &report)?;
    for (name, text) in extra {
        write_atomic(&out.join(name), text.as_bytes())?;
    }
    Ok(report)
}

/// Metrics of a saved model on every labelled window of `input`.
pub fn evaluate_file(md: &ModelDir, input: &Path, dev: &Device) -> Result<Metrics> {
    let data = md.windows_of(input, true)?;
    if data.windows.is_empty() {
        return Err(Error::data(
            input.display().to_string(),
            "no labelled window to evaluate",
        ));
    }
    metrics_of(&md.model, &data.windows, dev)
}

/// Writes `row[,time],probability` for every window of `input` to `output`
/// (CSV, atomically); returns the number of predictions.
pub fn predict_file(md: &ModelDir, input: &Path, output: &Path, dev: &Device) -> Result<usize> {
    let data = md.windows_of(input, false)?;
    let probs = probabilities(&predict_logits(&md.model, &data.windows, dev)?);
    let mut w = csv::Writer::from_writer(Vec::new());
    let time_name = md.config.data.time_column.clone();
    let header: Vec<&str> = match (&data.times, &time_name) {
        (Some(_), Some(t)) => vec!["row", t.as_str(), "probability"],
        _ => vec!["row", "probability"],
    };
    let csv_err = |e: csv::Error| Error::Msg(format!("cannot format predictions: {e}"));
    w.write_record(&header).map_err(csv_err)?;
    for (k, (win, p)) in data.windows.windows.iter().zip(&probs).enumerate() {
        let mut rec = vec![win.row.to_string()];
        if let Some(times) = &data.times {
            rec.push(times[k].clone());
        }
        rec.push(format!("{p:.6}"));
        w.write_record(&rec).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Msg(e.to_string()))?;
    write_atomic(output, &bytes)?;
    Ok(probs.len())
}
