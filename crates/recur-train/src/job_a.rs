//! Job A beyond the LSTM (SYSTEM.md Job A, steps 9-12): the trees, the
//! ensemble joined on row index, calibration and the threshold, and one
//! report comparing the three models raw and calibrated.
//!
//! All three are scored on the same rows: the validation and test rows
//! that both the trees and the LSTM scored (the LSTM has no score for the
//! first `L - 1` rows of a part). Calibrators, weights and thresholds are
//! fit on validation only; test is only ever scored.

use recur_core::config::Config;
use recur_core::job_a::TreesConfig;
use recur_core::{Error, Result};
use recur_data::{Prepared, WindowSet};
use recur_deploy::calibrate::{reliability, Calibrator};
use recur_deploy::decision::{best_threshold, edge_note};
use recur_deploy::ensemble::{join, weights, Joined, Weights};
use recur_deploy::metrics::{roc_curve, Metrics};
use recur_deploy::predictor::{
    Decision, Deployment, TreesFile, FORUST_FILE, TREE_SCORES, XGBOOST_FILE,
};
use recur_deploy::report::{scores, JobAReport, ModelReport, TreesInfo, Variant};
use recur_models::trees::{Design, TreeModel};
use recur_models::xgboost::XgbModel;
use std::collections::BTreeMap;
use std::path::Path;

fn variant(val: (&[f64], &[f32]), test: Option<(&[f64], &[f32])>, cfg: &Config) -> Variant {
    let best = best_threshold(val.0, val.1, &cfg.cost);
    let t = best.threshold;
    Variant {
        threshold: t,
        val: scores(val.0, val.1, t, cfg),
        test: test.map(|(p, y)| scores(p, y, t, cfg)),
        note: edge_note(val.0, val.1, &cfg.cost, best),
    }
}

/// The deployed decision's warning, if its threshold loses to the trivial
/// decision on validation: what is served is the calibrated variant.
fn deployed_warnings(models: &BTreeMap<String, ModelReport>, deployed: &str) -> Vec<String> {
    models
        .get(deployed)
        .and_then(|m| m.calibrated.note.as_ref())
        .map(|n| format!("the deployed model ({deployed}): {n}"))
        .into_iter()
        .collect()
}

fn model_report(
    val: (&[f64], &[f32]),
    test: Option<(&[f64], &[f32])>,
    cfg: &Config,
) -> ModelReport {
    let cal = Calibrator::fit(cfg.calibration, val.0, val.1);
    let (cv, ct) = (cal.apply_all(val.0), test.map(|(p, _)| cal.apply_all(p)));
    let shown = test.unwrap_or(val);
    let shown_cal = ct.as_deref().unwrap_or(&cv);
    ModelReport {
        raw: variant(val, test, cfg),
        calibrated: variant((&cv, val.1), ct.as_deref().zip(test.map(|t| t.1)), cfg),
        reliability_raw: reliability(shown.0, shown.1, 10),
        reliability_calibrated: reliability(shown_cal, shown.1, 10),
        calibrator: cal,
    }
}

/// `(row, probability)` of every window of `set`, given its probabilities.
fn lstm_rows(set: &WindowSet, p: &[f64]) -> Vec<(usize, f64)> {
    set.windows
        .iter()
        .map(|w| w.row)
        .zip(p.iter().copied())
        .collect()
}

/// The joined rows of one part with their labels.
fn part(
    trees: &[(usize, f64)],
    lstm: &[(usize, f64)],
    labels: &[Option<f32>],
) -> Result<(Joined, Vec<f32>)> {
    let j = join(trees, lstm)?;
    let y = j
        .rows
        .iter()
        .map(|&r| {
            labels[r].ok_or_else(|| Error::Msg(format!("row {r} was scored but has no label")))
        })
        .collect::<Result<_>>()?;
    Ok((j, y))
}

/// What training writes for deployment: `ensemble.json` and the trees' file.
pub struct DeployFiles {
    pub deployment: Deployment,
    /// The trees' file name in the model directory and its text.
    pub trees_file: Option<(String, String)>,
}

/// The trees' inputs for `prep` (each feature, then its lagged copies),
/// refused when two have one name: a lag copy named as a column of the
/// file (`rain_lag1` beside `rain` and lag 1) would make the inputs, the
/// importance and an XGBoost model's names each mean two things.
fn tree_design(prep: &Prepared, tc: &TreesConfig) -> Result<Design> {
    let design = Design::at(&prep.features, &[], &tc.lags, &[]);
    if let Some(n) = design
        .names
        .iter()
        .enumerate()
        .find_map(|(i, n)| design.names[..i].contains(n).then_some(n))
    {
        return Err(Error::config(
            "trees.lags",
            format!(
                "the trees' input `{}` is both a feature and the lagged copy recur names so; \
                 rename that column of the data (or leave it out of data.features)",
                recur_data::table::clip(n)
            ),
        ));
    }
    Ok(design)
}

/// The user's XGBoost model at `path`, its text and the model matched to
/// `design` by feature name.
fn read_xgboost(path: &Path, design: &Design) -> Result<(String, TreeModel)> {
    let shown = path.display().to_string();
    // UBJSON (`save_model("m.ubj")`, XGBoost's default since 2.1) is
    // binary: said so, not "not UTF-8 text".
    let bytes = recur_core::fsx::read_bounded(path, recur_core::fsx::MAX_TEXT_FILE)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::data(
            &shown,
            "is not JSON text (a binary model, such as XGBoost's UBJSON .ubj); recur reads \
             XGBoost's JSON format: save the model with save_model(\"model.json\")",
        )
    })?;
    let xgb = XgbModel::from_json(&text, &shown)?;
    // Without names its columns could only be taken by position: a model
    // trained on another order scored without a word.
    if xgb.feature_names.is_empty() {
        return Err(Error::data(
            &shown,
            format!(
                "the model has no feature names, so recur cannot tell which of its {} inputs \
                 is which; name them as recur's inputs before saving, e.g. \
                 booster.feature_names = [{}] (XGBClassifier: fit it on a DataFrame with those \
                 columns)",
                xgb.n_features,
                design
                    .names
                    .iter()
                    .map(|n| format!("{:?}", recur_data::table::clip(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let model = TreeModel::xgboost(xgb, design, &shown)?;
    Ok((text, model))
}

/// What the trees will need, checked before the LSTM trains: the inputs'
/// names and, when given, the user's XGBoost model (a refusal after a
/// whole training run loses the run).
pub fn check_trees(prep: &Prepared, cfg: &Config) -> Result<()> {
    let Some(tc) = &cfg.trees else { return Ok(()) };
    let design = tree_design(prep, tc)?;
    // The trees' inputs, every row by every input in f64, twice (by rows,
    // and by columns for the fit): refused before the LSTM trains, where
    // 200k rows of 500 features with three lags aborted after it.
    let rows = prep.values.len() / prep.features.len().max(1);
    if let Some(gib) = trees_gib_over_limit(rows, design.names.len()) {
        return Err(Error::config(
            "trees",
            format!(
                "{rows} rows x {} inputs (features and their lags) need about {gib:.1} GiB for \
                 the trees (more than 8): fewer features (selection.max_features, data.features) \
                 or fewer trees.lags",
                design.names.len()
            ),
        ));
    }
    if let Some(path) = &tc.xgboost_model {
        read_xgboost(path, &design)?;
    }
    Ok(())
}

/// The GiB the trees' inputs take (f64, by rows and by columns) when it
/// is over training's limit.
fn trees_gib_over_limit(rows: usize, inputs: usize) -> Option<f64> {
    recur_core::config::gib_over_training_limit(rows as f64 * inputs as f64 * 16.0)
}

/// The trees, read back from the text the model directory will hold, so
/// the report scores exactly what `recur predict` will load.
fn trees_of(
    prep: &Prepared,
    cfg: &Config,
    tc: &TreesConfig,
) -> Result<(TreeModel, TreesFile, String)> {
    let split = prep.info.time_split.ok_or_else(|| {
        Error::Msg("the trees and the ensemble need the rows layout (a time split)".into())
    })?;
    let h = cfg.data.target.horizon;
    let design = tree_design(prep, tc)?;
    let (source, file, text, model, origin) = match &tc.xgboost_model {
        Some(path) => {
            let (text, model) = read_xgboost(path, &design)?;
            let origin = path.display().to_string();
            ("xgboost", XGBOOST_FILE, text, model, Some(origin))
        }
        None => {
            let full = Design::new(&prep.features, &prep.values, &tc.lags);
            let fitted = TreeModel::fit(
                &full,
                &prep.row_labels,
                split.train.start..split.train.end.saturating_sub(h),
                split.val.start..split.val.end.saturating_sub(h),
                tc,
                cfg.training.seed,
            )?;
            let text = fitted
                .to_json()
                .ok_or_else(|| Error::Msg("the trees could not be written as JSON".into()))?;
            let model = TreeModel::from_forust_json(&text, design.names.clone(), FORUST_FILE)?;
            ("forust", FORUST_FILE, text, model, None)
        }
    };
    let tf = TreesFile {
        source: source.into(),
        file: file.into(),
        sha256: recur_core::fsx::sha256_bytes(text.as_bytes()),
        lags: tc.lags.clone(),
        origin,
        inputs: design.names.clone(),
        scores: Some(TREE_SCORES.into()),
    };
    Ok((model, tf, text))
}

/// Trains (or reads) the trees, when configured, and builds the model
/// report (the LSTM alone, or LSTM, trees and ensemble) from the LSTM's
/// probabilities of the validation and test windows (in set order); fits
/// each model's calibrator and threshold on validation.
pub fn run(
    prep: &Prepared,
    lstm_val: &[f64],
    lstm_test: Option<&[f64]>,
    cfg: &Config,
) -> Result<(JobAReport, DeployFiles)> {
    let Some(tc) = cfg.trees.as_ref() else {
        return lstm_only(prep, lstm_val, lstm_test, cfg);
    };
    let (model, tf, text) = trees_of(prep, cfg, tc)?;
    let design = Design::new(&prep.features, &prep.values, &tc.lags);
    let tree_p: Vec<(usize, f64)> = design
        .rows
        .iter()
        .copied()
        .zip(model.predict(&design))
        .collect();
    let (val, yv) = part(&tree_p, &lstm_rows(&prep.val, lstm_val), &prep.row_labels)?;
    let test = match lstm_test {
        Some(p) => Some(part(&tree_p, &lstm_rows(&prep.test, p), &prep.row_labels)?),
        None => None,
    };
    let ll = |p: &[f64]| Metrics::compute(p, &yv).logloss;
    let ens_cfg = cfg.ensemble.clone().unwrap_or_default();
    let w = weights(&ens_cfg, ll(&val.trees), ll(&val.lstm));
    let blend = |j: &Joined| -> Vec<f64> {
        j.trees
            .iter()
            .zip(&j.lstm)
            .map(|(&t, &l)| w.blend(t, l))
            .collect()
    };
    let (ev, et) = (blend(&val), test.as_ref().map(|(j, _)| blend(j)));
    let mut models = BTreeMap::new();
    let t = test.as_ref();
    models.insert(
        "lstm".to_string(),
        model_report(
            (&val.lstm, &yv),
            t.map(|(j, y)| (j.lstm.as_slice(), y.as_slice())),
            cfg,
        ),
    );
    models.insert(
        "trees".to_string(),
        model_report(
            (&val.trees, &yv),
            t.map(|(j, y)| (j.trees.as_slice(), y.as_slice())),
            cfg,
        ),
    );
    if cfg.ensemble.is_some() {
        models.insert(
            "ensemble".to_string(),
            model_report(
                (&ev, &yv),
                et.as_deref().zip(t.map(|(_, y)| y.as_slice())),
                cfg,
            ),
        );
    }
    let mut roc = BTreeMap::new();
    let (shown, ys) = match &test {
        Some((j, y)) => (j, y),
        None => (&val, &yv),
    };
    roc.insert("trees".to_string(), roc_curve(&shown.trees, ys, 300));
    if cfg.ensemble.is_some() {
        roc.insert("ensemble".to_string(), roc_curve(&blend(shown), ys, 300));
    }
    let auc = |m: &str| {
        models
            .get(m)
            .and_then(|r| r.raw.test.as_ref())
            .and_then(|s| s.auc)
    };
    let ensemble_auc_lift = match (auc("ensemble"), auc("lstm"), auc("trees")) {
        (Some(e), Some(a), Some(b)) => Some(e - a.max(b)),
        _ => None,
    };
    let trees = TreesInfo {
        source: tf.source.clone(),
        trees: model.n_trees(),
        inputs: design.names.clone(),
        importance: model.importance().into_iter().take(15).collect(),
    };
    let deployed = if cfg.ensemble.is_some() {
        "ensemble"
    } else {
        "lstm"
    };
    let deployment = deployment_of(&models, deployed, Some(w), Some(tf.clone()));
    let warnings = deployed_warnings(&models, deployed);
    Ok((
        JobAReport {
            models,
            // Without `ensemble:` no blend is deployed or reported, so
            // no weights are shown (ensemble.json keeps them, unread).
            weights: cfg.ensemble.is_some().then_some(w),
            trees: Some(trees),
            ensemble_auc_lift,
            roc,
            warnings,
        },
        DeployFiles {
            deployment,
            trees_file: Some((tf.file, text)),
        },
    ))
}

/// The LSTM alone: its calibrator and threshold on validation.
fn lstm_only(
    prep: &Prepared,
    lstm_val: &[f64],
    lstm_test: Option<&[f64]>,
    cfg: &Config,
) -> Result<(JobAReport, DeployFiles)> {
    let (yv, yt) = (prep.val.labels(), prep.test.labels());
    let mut models = BTreeMap::new();
    models.insert(
        "lstm".to_string(),
        model_report((lstm_val, &yv), lstm_test.map(|p| (p, yt.as_slice())), cfg),
    );
    let deployment = deployment_of(&models, "lstm", None, None);
    let warnings = deployed_warnings(&models, "lstm");
    Ok((
        JobAReport {
            models,
            weights: None,
            trees: None,
            ensemble_auc_lift: None,
            roc: BTreeMap::new(),
            warnings,
        },
        DeployFiles {
            deployment,
            trees_file: None,
        },
    ))
}

fn deployment_of(
    models: &BTreeMap<String, ModelReport>,
    deployed: &str,
    weights: Option<Weights>,
    trees: Option<TreesFile>,
) -> Deployment {
    Deployment {
        deployed: deployed.into(),
        weights,
        models: models
            .iter()
            .map(|(k, m)| {
                (
                    k.clone(),
                    Decision {
                        calibrator: m.calibrator.clone(),
                        threshold_raw: m.raw.threshold,
                        threshold_calibrated: m.calibrated.threshold,
                    },
                )
            })
            .collect(),
        trees,
        temperature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_inputs_too_large_for_memory_are_found_before_training() {
        // 200k rows of 500 features with three lags: 2,000 inputs, 6 GiB.
        assert_eq!(trees_gib_over_limit(200_000, 2_000), None);
        // Twice the features: 12 GiB, refused.
        let gib = trees_gib_over_limit(200_000, 4_000).unwrap();
        assert!((gib - 11.92).abs() < 0.01, "{gib}");
    }
}
