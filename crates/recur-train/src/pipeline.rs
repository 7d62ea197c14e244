//! A config trained into a model directory, from files to files: the
//! LSTM, the trees, the blend and calibration, the report and what the
//! predictor needs. Scoring and evaluating the result is recur-deploy's.

use crate::trainer::{fit, FitOptions};
use candle_core::Device;
use recur_core::config::Config;
use recur_core::Result;
use recur_data::{prepare_training, Prepared, Table, WindowSet};
use recur_deploy::metrics::Metrics;
use recur_deploy::model_dir::{save_model_dir, Report};
use recur_deploy::predictor::{predict_logits, probabilities};
use std::path::Path;

/// Trains `cfg` on its `data.path` and writes the model directory `out`;
/// returns the report.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// let cfg = recur_core::config::Config::from_file("configs/rainfall.yaml".as_ref())?;
/// let dev = candle_core::Device::Cpu;
/// let report = recur_train::train_to_dir(&cfg, "runs/rain".as_ref(), &dev, &Default::default())?;
/// println!("test AUC {:?}", report.test.and_then(|t| t.auc));
/// # Ok(())
/// # }
/// ```
pub fn train_to_dir(cfg: &Config, out: &Path, dev: &Device, opts: &FitOptions) -> Result<Report> {
    let _hold =
        recur_deploy::model_dir::begin_out_dir(out, recur_deploy::model_dir::DirKind::Classifier)?;
    let mut prep = prepare_training(cfg)?;
    if let Some(path) = &cfg.data.path {
        prep.info.data_sha256 = Some(recur_core::fsx::sha256_file(path)?);
    }
    train_prepared(cfg, prep, out, dev, opts)
}

/// Trains `cfg` on a table in memory (`data.path` is not read) and writes
/// the model directory `out`; as [`train_to_dir`] otherwise. The whole
/// program is `examples/train_in_memory.rs`.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// use recur_data::{Column, Table};
/// let (temp, rain): (Vec<f64>, Vec<f64>) = (vec![/* ... */], vec![/* ... */]);
/// let names = vec!["temp".to_string(), "rain".to_string()];
/// let table = Table::from_columns("my data", names, vec![Column::Numeric(temp), Column::Numeric(rain)])?;
/// let cfg = recur_core::config::Config::from_yaml("data: {target: {column: rain}}", "my config")?;
/// let dev = candle_core::Device::Cpu;
/// let report = recur_train::train_table_to_dir(&cfg, &table, "runs/mine".as_ref(), &dev, &Default::default())?;
/// print!("{report}");
/// # Ok(())
/// # }
/// ```
pub fn train_table_to_dir(
    cfg: &Config,
    table: &Table,
    out: &Path,
    dev: &Device,
    opts: &FitOptions,
) -> Result<Report> {
    let _hold =
        recur_deploy::model_dir::begin_out_dir(out, recur_deploy::model_dir::DirKind::Classifier)?;
    let prep = recur_data::prepare::prepare_training_table(table, cfg)?;
    train_prepared(cfg, prep, out, dev, opts)
}

/// Trains `cfg` (sequences layout) on whole series in memory (`data.path`
/// is not read) and writes the model directory `out`; as [`train_to_dir`]
/// otherwise. The Python package's `SequenceClassifier` calls it.
pub fn train_sequences_to_dir(
    cfg: &Config,
    series: &recur_data::ucr::Sequences,
    out: &Path,
    dev: &Device,
    opts: &FitOptions,
) -> Result<Report> {
    let _hold =
        recur_deploy::model_dir::begin_out_dir(out, recur_deploy::model_dir::DirKind::Classifier)?;
    let prep = recur_data::prepare_training_sequences(series, cfg)?;
    train_prepared(cfg, prep, out, dev, opts)
}

/// The data's notes for the user: what preparing it found and decided.
fn data_notes(prep: &Prepared) -> Vec<String> {
    let mut notes = prep.notes.clone();
    if !prep.ignored_columns.is_empty() {
        notes.push(format!(
            "text columns left out of the features: {}",
            prep.ignored_columns.join(", ")
        ));
    }
    notes
}

/// Stops with [`recur_core::progress::interrupted`] when the reporter asks.
fn stop_if_asked(opts: &FitOptions) -> Result<()> {
    if opts.progress.stop_requested() {
        return Err(recur_core::progress::interrupted());
    }
    Ok(())
}

fn train_prepared(
    cfg: &Config,
    prep: Prepared,
    out: &Path,
    dev: &Device,
    opts: &FitOptions,
) -> Result<Report> {
    opts.progress.note(&format!(
        "data: {} windows of {} rows x {} features (train {}, val {}, test {})",
        prep.train.len() + prep.val.len() + prep.test.len(),
        prep.sequence_length,
        prep.features.len(),
        prep.train.len(),
        prep.val.len(),
        prep.test.len()
    ));
    for n in data_notes(&prep) {
        opts.progress.note(&format!("note: {n}"));
    }
    let k = prep.info.outputs();
    if k > 1 && cfg.trees.is_some() {
        return Err(recur_core::Error::config(
            "trees",
            format!(
                "the label has {k} classes; the trees, the blend and the expected-value threshold are for two: remove `trees`"
            ),
        ));
    }
    crate::job_a::check_trees(&prep, cfg)?;
    let result = fit(&prep, cfg, dev, opts)?;
    // Asked between the stages too: a stop asked once the last batch was
    // done wrote the model all the same.
    stop_if_asked(opts)?;
    if k > 1 {
        return save_multiclass(cfg, &prep, result, out, dev);
    }
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
        sequence_length: prep.sequence_length,
        params: result.model.n_params(),
        seed: cfg.training.seed,
        label_rule: prep.info.label_rule.clone(),
        parts: prep.info.parts.clone(),
        constant_columns: prep.constant_columns.clone(),
        selection: prep.selection.as_ref().map(|s| s.table.clone()),
        models: None,
        weights: None,
        trees: None,
        ensemble_auc_lift: None,
        roc: Default::default(),
        classes: Vec::new(),
        temperature: None,
        warnings: [data_notes(&prep), result.notes.clone()].concat(),
    };
    let mut report = report;
    let (shown, shown_p) = match &test_p {
        Some(p) => (&prep.test, p),
        None => (&prep.val, &val_p),
    };
    report.roc.insert(
        "lstm".into(),
        recur_deploy::metrics::roc_curve(shown_p, &shown.labels(), 300),
    );
    let mut extra: Vec<(&str, String)> = Vec::new();
    if cfg.trees.is_some() {
        opts.progress
            .note("trees: training, then calibration, thresholds and the ensemble on validation");
    }
    let (a, art) = crate::job_a::run(&prep, &val_p, test_p.as_deref(), cfg)?;
    stop_if_asked(opts)?;
    if let Some((name, text)) = &art.trees_file {
        extra.push((name.as_str(), text.clone()));
    }
    extra.push((
        recur_deploy::predictor::DEPLOYMENT_FILE,
        serde_json::to_string_pretty(&art.deployment).expect("the deployment serialises"),
    ));
    report.models = Some(a.models);
    report.weights = a.weights;
    report.trees = a.trees;
    report.ensemble_auc_lift = a.ensemble_auc_lift;
    report.roc.extend(a.roc);
    report.warnings.extend(a.warnings);
    if let Some(split) = prep.info.time_split {
        // The training rows' feature distribution, for `recur drift`.
        let reference = recur_data::drift::Reference::of(
            &prep.features,
            &prep.values,
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
    save_model_dir(
        out,
        cfg,
        &result.model,
        &result.history,
        &prep.scaler,
        &prep.info,
        &report,
        &extra,
    )?;
    Ok(report)
}

/// The report, deployment and directory of a model of more than two
/// classes: softmax probabilities, their temperature fit on validation
/// (no trees, blend or threshold: those are two-class notions).
fn save_multiclass(
    cfg: &Config,
    prep: &Prepared,
    result: crate::trainer::FitResult,
    out: &Path,
    dev: &Device,
) -> Result<Report> {
    use recur_deploy::multiclass::{fit_temperature, softmax};
    let k = prep.info.outputs();
    let val_z = predict_logits(&result.model, &prep.val, dev)?;
    let test_z = if prep.test.is_empty() {
        None
    } else {
        Some(predict_logits(&result.model, &prep.test, dev)?)
    };
    let (val_y, test_y) = (prep.val.labels(), prep.test.labels());
    // `calibration: none` keeps the softmax as trained (T = 1); it was
    // fit all the same, while config.yaml said none. Platt and isotonic
    // are two-class maps: for more classes either means a temperature.
    let t = if cfg.calibration == recur_core::job_a::CalibrationKind::None {
        1.0
    } else {
        fit_temperature(&val_z, &val_y, k)
    };
    let metrics = |z: &[f32], y: &[f32], t: f64| Metrics::compute_multi(&softmax(z, k, t), y, k);
    let report = Report {
        val: metrics(&val_z, &val_y, t),
        test: test_z.as_deref().map(|z| metrics(z, &test_y, t)),
        best_epoch: result.best_epoch,
        epochs_run: result.epochs_run,
        pos_weight: 1.0,
        n_train: prep.train.len(),
        n_val: prep.val.len(),
        n_test: prep.test.len(),
        features: prep.features.clone(),
        sequence_length: prep.sequence_length,
        params: result.model.n_params(),
        seed: cfg.training.seed,
        label_rule: None,
        parts: Vec::new(),
        constant_columns: Vec::new(),
        selection: None,
        models: None,
        weights: None,
        trees: None,
        ensemble_auc_lift: None,
        roc: Default::default(),
        classes: prep.info.classes.clone(),
        temperature: Some(recur_deploy::model_dir::TemperatureFit {
            temperature: t,
            val_raw: metrics(&val_z, &val_y, 1.0),
            test_raw: test_z.as_deref().map(|z| metrics(z, &test_y, 1.0)),
        }),
        warnings: [data_notes(prep), result.notes.clone()].concat(),
    };
    let deployment = recur_deploy::predictor::Deployment {
        deployed: "lstm".into(),
        weights: None,
        models: std::collections::BTreeMap::from([(
            "lstm".to_string(),
            recur_deploy::predictor::Decision {
                calibrator: recur_deploy::calibrate::Calibrator::Identity,
                threshold_raw: 0.5,
                threshold_calibrated: 0.5,
            },
        )]),
        trees: None,
        temperature: Some(t),
    };
    let extra = [(
        recur_deploy::predictor::DEPLOYMENT_FILE,
        serde_json::to_string_pretty(&deployment).expect("the deployment serialises"),
    )];
    save_model_dir(
        out,
        cfg,
        &result.model,
        &result.history,
        &prep.scaler,
        &prep.info,
        &report,
        &extra,
    )?;
    Ok(report)
}
