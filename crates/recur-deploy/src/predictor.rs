//! The deployed Job A model: one type that loads a model directory and
//! computes, per window, exactly what training scored (SYSTEM.md Job A,
//! steps 2-12): the selected features smoothed as training smoothed them,
//! the scaler, the LSTM's probability; the trees' probability on the same
//! row, with their lags; the join on row index; the weighted ensemble; each
//! model's calibrated probability; and the decision at the saved threshold.
//!
//! `recur predict`, `recur eval`, `/v1/classify` and the Python package all
//! call [`Predictor::score`]; there is no second implementation. Training
//! writes [`Deployment`] (`ensemble.json`) and the trees' file, and checks
//! its own figures through the trees as read back, so what is evaluated is
//! what is deployed.
//!
//! Inputs are [`Series`]: consecutive rows of one time series (a file, or
//! the rows a request sends), oldest first. Smoothing starts at the first
//! row of each series, as it starts at the first row of the training file.

use crate::calibrate::Calibrator;
use crate::ensemble::Weights;
use crate::model_dir::{load_model_dir, ModelDir};
use crate::multiclass::{argmax, softmax};
use candle_core::Device;
use candle_core::Tensor;
use recur_core::config::Layout;
use recur_core::fsx::read_json;
use recur_core::job_a::MAX_LAG;
use recur_core::stats::sigmoid;
use recur_core::{Error, Result};
use recur_data::select::ewma;
use recur_data::{Window, WindowSet};
use recur_models::trees::{Design, TreeModel};
use recur_models::xgboost::XgbModel;
use recur_models::Classifier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The file that holds the weights, calibrators and thresholds.
pub const DEPLOYMENT_FILE: &str = "ensemble.json";
/// The trees recur trained (forust's JSON).
pub const FORUST_FILE: &str = "trees.json";
/// The user's XGBoost model, copied in at training.
pub const XGBOOST_FILE: &str = "xgboost.json";

/// One model's calibrator and thresholds, fit on validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub calibrator: Calibrator,
    /// The expected-value threshold on the raw probability.
    pub threshold_raw: f64,
    /// The expected-value threshold on the calibrated probability: the one
    /// `decision` uses.
    pub threshold_calibrated: f64,
}

/// Where the trees of a model directory are and what they read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreesFile {
    /// `forust` (trained by recur) or `xgboost` (the user's model).
    pub source: String,
    /// The file in the model directory.
    pub file: String,
    /// SHA-256 of that file, checked at load.
    pub sha256: String,
    /// The lags of every feature the trees read (rows back).
    pub lags: Vec<usize>,
    /// Where an XGBoost model was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The trees' input columns (the features, then their lags), checked
    /// against the features and lags at load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// What the trees' scores are: `probability` since 2026-12-06. Absent,
    /// a `binary:logitraw` XGBoost model was scored by its margins, and
    /// its calibrator, threshold and blend were fit on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<String>,
}

/// [`TreesFile::scores`] as training writes it.
pub const TREE_SCORES: &str = "probability";

/// `ensemble.json`: what `probability` and `decision` come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The model whose calibrated probability is `probability`:
    /// `ensemble` when the config blends trees and LSTM, else `lstm`.
    #[serde(default = "lstm_name")]
    pub deployed: String,
    /// The blend's weights (with trees).
    #[serde(default)]
    pub weights: Option<Weights>,
    /// Calibrator and thresholds per model (`lstm`, `trees`, `ensemble`).
    pub models: BTreeMap<String, Decision>,
    #[serde(default)]
    pub trees: Option<TreesFile>,
    /// The softmax temperature fit on validation (more than two classes):
    /// `class_probabilities` are `softmax(logits / temperature)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

fn lstm_name() -> String {
    "lstm".into()
}

impl Deployment {
    /// Refuses what training could not have written (a file edited by
    /// hand), naming the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !["lstm", "trees", "ensemble"].contains(&self.deployed.as_str()) {
            return Err(format!(
                "`deployed` is {:?}; expected lstm, trees or ensemble",
                self.deployed
            ));
        }
        if !self.models.contains_key(&self.deployed) {
            return Err(format!(
                "`deployed` is {:?} but `models` has no entry for it",
                self.deployed
            ));
        }
        for (name, d) in &self.models {
            if !["lstm", "trees", "ensemble"].contains(&name.as_str()) {
                return Err(format!("models.{name}: not a model recur trains"));
            }
            d.calibrator
                .check()
                .map_err(|e| format!("models.{name}.calibrator: {e}"))?;
            for (key, t) in [
                ("threshold_raw", d.threshold_raw),
                ("threshold_calibrated", d.threshold_calibrated),
            ] {
                if !(0.0..=1.0).contains(&t) {
                    return Err(format!(
                        "models.{name}.{key} is {t}; a threshold lies in [0, 1]"
                    ));
                }
            }
        }
        if self.models.contains_key("ensemble") {
            let w = self
                .weights
                .ok_or("the ensemble has no `weights`".to_string())?;
            let unit = |v: f64| (0.0..=1.0).contains(&v);
            if !unit(w.trees) || !unit(w.lstm) || (w.trees + w.lstm - 1.0).abs() > 1e-9 {
                return Err(format!(
                    "weights trees {} and lstm {} must lie in [0, 1] and sum to 1",
                    w.trees, w.lstm
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t > 0.0) {
                return Err(format!(
                    "temperature is {t}; a softmax temperature is a positive number"
                ));
            }
        }
        let needs_trees = self.models.contains_key("trees") || self.models.contains_key("ensemble");
        match &self.trees {
            None if needs_trees => Err("models name trees but `trees` is missing".into()),
            Some(t) => {
                if let Some(l) = t.lags.iter().find(|&&l| l == 0 || l > MAX_LAG) {
                    return Err(format!(
                        "trees.lags holds {l}; lags are rows back, from 1 to {MAX_LAG}"
                    ));
                }
                let mut seen = t.lags.clone();
                seen.sort_unstable();
                seen.dedup();
                if seen.len() != t.lags.len() {
                    return Err("trees.lags repeats a lag".into());
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Consecutive rows of one series, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Feature values before smoothing, row-major `[n, F]`, in the
    /// model's feature order ([`Predictor::features`]).
    pub values: Vec<f64>,
    /// The label of each row where known (empty: none known).
    pub labels: Vec<Option<f32>>,
}

/// What the models say about one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub row: usize,
    pub label: Option<f32>,
    pub p_lstm: Option<f64>,
    pub p_trees: Option<f64>,
    /// The raw blend (with trees and an ensemble).
    pub p_ensemble: Option<f64>,
    /// The calibrated probability of the deployed model.
    pub probability: Option<f64>,
    /// 1 when `probability >= threshold`, the deployed model's saved
    /// expected-value threshold (two classes).
    pub decision: Option<u8>,
    /// Each class's calibrated probability, in the order of
    /// [`Predictor::classes`] (more than two classes; `probability` is
    /// then the largest of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_probabilities: Option<Vec<f64>>,
    /// The most probable class (more than two classes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// Borrowed feature values of one series, row-major `[n, F]`: `f64` as
/// recur reads files, or `f32` as a caller holds them.
#[derive(Debug, Clone, Copy)]
pub enum Values<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
}

impl Values<'_> {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F64(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f64, the working copy scoring smooths in place.
    fn to_f64(self) -> Vec<f64> {
        match self {
            Values::F64(v) => v.to_vec(),
            Values::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        }
    }
}

/// One series for [`Predictor::score_values`]: its values, its labels
/// where known (or none), and the rows to score.
pub type SeriesRows<'a> = (Values<'a>, &'a [Option<f32>], &'a [usize]);

/// A loaded Job A model directory, ready to score.
pub struct Predictor {
    /// Where it was loaded from, as given.
    pub path: std::path::PathBuf,
    /// The folder its files were read from: `path`, or where `path`'s
    /// link led when it loaded. Files read later (the drift reference)
    /// come from here, not through a link that may have moved since.
    pub folder: std::path::PathBuf,
    pub dir: ModelDir,
    pub trees: Option<TreeModel>,
    pub deployment: Deployment,
}

/// What the model is, not its weights: `{:?}` of a result or a struct that
/// holds one.
impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("path", &self.path)
            .field("features", &self.features())
            .field("sequence_length", &self.sequence_length())
            .field("deployed", &self.deployment.deployed)
            .field("trees", &self.trees.is_some())
            .finish_non_exhaustive()
    }
}

impl Predictor {
    /// Loads `dir`: the LSTM (checked against its architecture), the trees
    /// (checked against their SHA-256) and `ensemble.json`.
    ///
    /// ```no_run
    /// # fn main() -> recur_core::Result<()> {
    /// use recur_deploy::{score_file, Predictor};
    /// let p = Predictor::load("runs/demo".as_ref(), &candle_core::Device::Cpu)?;
    /// let scores = score_file(&p, "data/rainfall.csv".as_ref(), false)?;
    /// for s in scores.predictions.iter().take(3) {
    ///     println!("row {}: p {:?}, decision {:?}", s.row, s.probability, s.decision);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(dir: &Path, dev: &Device) -> Result<Predictor> {
        // Every file from one real folder: through a `current` link
        // swapped while it loaded, one model's weights were read with the
        // other's calibrator and threshold (five runs in 150, exit 0).
        // A folder a crashed `train --out` left aside is put back first,
        // so that the manifest read before and after is the same one.
        recur_core::dirwrite::repair(dir);
        // Only a link is resolved: errors name the path given otherwise.
        let linked = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
        let real = if linked {
            std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
        } else {
            dir.to_path_buf()
        };
        // Bounded, and never a pipe or a device (a named pipe here hung
        // every reader before the manifest check could name it).
        let manifest = |d: &Path| {
            recur_core::fsx::read_bounded(
                &d.join(recur_core::dirwrite::MANIFEST),
                recur_core::fsx::MAX_TEXT_FILE,
            )
            .ok()
        };
        let before = manifest(&real);
        let mut p = Predictor::load_from(&real, dev)?;
        // A folder written over in place while it loaded (a new `recur
        // train --out` moved onto the name) gives another run's manifest.
        if manifest(&real) != before {
            return Err(Error::checkpoint(
                dir,
                "the model directory changed while it was loaded (a new model was written over \
                 it): load it again",
            ));
        }
        p.path = dir.to_path_buf();
        p.folder = real;
        Ok(p)
    }

    /// [`Predictor::load`] from the folder `dir` as it is.
    fn load_from(dir: &Path, dev: &Device) -> Result<Predictor> {
        let md = load_model_dir(dir, dev)?;
        let dp = dir.join(DEPLOYMENT_FILE);
        let deployment: Deployment = if dp.exists() {
            read_json(&dp)?
        } else if md.config.trees.is_some() {
            return Err(Error::checkpoint(
                dir,
                format!("`{DEPLOYMENT_FILE}` is missing although the config has trees: retrain with `recur train`"),
            ));
        } else {
            // A directory from before decisions were saved: the LSTM's raw
            // probability at 0.5.
            Deployment {
                deployed: lstm_name(),
                weights: None,
                models: BTreeMap::from([(
                    lstm_name(),
                    Decision {
                        calibrator: Calibrator::Identity,
                        threshold_raw: 0.5,
                        threshold_calibrated: 0.5,
                    },
                )]),
                trees: None,
                temperature: None,
            }
        };
        let bad = |msg: String| Error::checkpoint(&dp, msg);
        deployment.check().map_err(bad)?;
        let trees = match &deployment.trees {
            None => None,
            Some(tf) => Some(read_trees(dir, tf, &md.scaler.features)?),
        };
        if deployment.deployed != "lstm" && trees.is_none() {
            return Err(bad(format!(
                "{} is deployed but no trees are saved",
                deployment.deployed
            )));
        }
        Ok(Predictor {
            path: dir.to_path_buf(),
            folder: dir.to_path_buf(),
            dir: md,
            trees,
            deployment,
        })
    }

    /// The classes, in the order of [`Prediction::class_probabilities`]
    /// (empty with two classes).
    pub fn classes(&self) -> &[String] {
        &self.dir.info.classes
    }

    /// Whether the model reads whole series (the sequences layout) rather
    /// than windows of rows.
    pub fn whole_series(&self) -> bool {
        self.dir.config.data.layout == Layout::Sequences
    }

    /// The one length a whole-series model takes (`None`: any length, or
    /// a model of windows). A model trained on equally long series, or an
    /// LSTM-FCN with its dimension shuffle, reads exactly that many steps.
    pub fn fixed_length(&self) -> Option<usize> {
        let d = &self.dir;
        self.whole_series()
            .then(|| recur_data::fixed_length(&d.config, &d.info, self.sequence_length()))
            .flatten()
    }

    /// The feature columns, in the order [`Series::values`] holds them.
    pub fn features(&self) -> &[String] {
        &self.dir.scaler.features
    }

    /// The LSTM's window length L.
    pub fn sequence_length(&self) -> usize {
        self.dir.model.sequence_length()
    }

    /// The largest lag the trees read (0 without trees).
    pub fn max_lag(&self) -> usize {
        self.lags().iter().copied().max().unwrap_or(0)
    }

    fn lags(&self) -> &[usize] {
        self.deployment
            .trees
            .as_ref()
            .map_or(&[][..], |t| t.lags.as_slice())
    }

    /// The smoothing's span (1: none).
    pub fn ewma_span(&self) -> usize {
        self.dir
            .config
            .selection
            .as_ref()
            .map_or(1, |s| s.ewma_span)
    }

    /// Rows the smoothing needs before the first row it is read at, so that
    /// the starting value weighs under 1%: `ceil(ln 0.01 / ln(1 - a))`.
    pub fn warmup_rows(&self) -> usize {
        let span = self.ewma_span();
        if span <= 1 {
            return 0;
        }
        let a = 2.0 / (span as f64 + 1.0);
        (0.01f64.ln() / (1.0 - a).ln()).ceil() as usize
    }

    /// The fewest rows a request must send to be scored at its last row by
    /// every model: the window (or the trees' lags) plus the smoothing's
    /// warm-up.
    pub fn min_rows(&self) -> usize {
        self.sequence_length().max(self.max_lag() + 1) + self.warmup_rows()
    }

    /// The first row of a series any model scores.
    pub fn first_row(&self) -> usize {
        let l = self.sequence_length() - 1;
        match self.trees {
            Some(_) => l.min(self.max_lag()),
            None => l,
        }
    }

    /// The threshold `decision` uses.
    pub fn threshold(&self) -> f64 {
        self.deployment.models[&self.deployment.deployed].threshold_calibrated
    }

    /// Which model `probability` comes from.
    pub fn deployed(&self) -> &str {
        &self.deployment.deployed
    }

    /// Scores `rows` of each series (rows within the series, increasing);
    /// a row that no model can score is an error. The LSTM runs once over
    /// every window asked for, in the order given.
    pub fn score(&self, series: &[(Series, Vec<usize>)]) -> Result<Vec<Vec<Prediction>>> {
        let views: Vec<SeriesRows<'_>> = series
            .iter()
            .map(|(s, rows)| (Values::F64(&s.values), s.labels.as_slice(), rows.as_slice()))
            .collect();
        self.score_values(&views)
    }

    /// As [`Self::score`], on borrowed rows: each series' feature values
    /// (row-major `[n, F]`, the model's feature order), its labels where
    /// known (or none), and the rows to score. `f32` values are read where
    /// they lie, so a caller's buffer (a numpy array) is never copied; the
    /// one working copy is the smoothing buffer every input gets.
    pub fn score_values(&self, series: &[SeriesRows<'_>]) -> Result<Vec<Vec<Prediction>>> {
        if self.dir.config.data.layout != Layout::Rows {
            return Err(Error::Msg(
                "this model reads whole sequences (data.layout: sequences); score it with score_sequences".into(),
            ));
        }
        let f = self.features().len();
        let l = self.sequence_length();
        let lags = self.lags().to_vec();
        let max_lag = self.max_lag();
        let mut buffer: Vec<f32> = Vec::new();
        let mut windows = Vec::new();
        let mut design = Design {
            names: Vec::new(),
            rows: Vec::new(),
            x: Vec::new(),
        };
        for (si, &(values, _, rows)) in series.iter().enumerate() {
            let n = values.len() / f.max(1);
            if values.len() != n * f {
                return Err(Error::Msg(format!(
                    "series {si}: {} values is not a whole number of rows of {f} features",
                    values.len()
                )));
            }
            let mut smooth = values.to_f64();
            if let Some(k) = self.dir.scaler.beyond_f32(&smooth) {
                let what = if smooth[k].is_nan() {
                    "is NaN (empty); fill or drop such rows first".to_string()
                } else {
                    format!(
                        "is {:e}, beyond float32 as given or once scaled (the models read float32)",
                        smooth[k]
                    )
                };
                return Err(Error::Msg(format!(
                    "row {} feature `{}` {what}",
                    k / f,
                    self.features()[k % f],
                )));
            }
            ewma(&mut smooth, f, self.ewma_span());
            let scaled = self.dir.scaler.transform(&smooth);
            let offset = buffer.len() / f.max(1);
            buffer.extend_from_slice(&scaled);
            let mut tree_rows = Vec::new();
            for (k, &r) in rows.iter().enumerate() {
                if r >= n || (k > 0 && r <= rows[k - 1]) {
                    return Err(Error::Msg(format!(
                        "series {si}: rows to score must increase and lie below {n}; got {r}"
                    )));
                }
                let lstm = r + 1 >= l;
                let trees = self.trees.is_some() && r >= max_lag;
                if !lstm && !trees {
                    return Err(Error::Msg(format!(
                        "series {si}: row {r} comes before any model can score ({} rows needed)",
                        self.first_row() + 1
                    )));
                }
                if lstm {
                    windows.push(Window {
                        start: offset + r + 1 - l,
                        row: offset + r,
                        label: None,
                    });
                }
                if trees {
                    tree_rows.push(r);
                }
            }
            if self.trees.is_some() && !tree_rows.is_empty() {
                let d = Design::at(self.features(), &smooth, &lags, &tree_rows);
                design.names = d.names;
                design.rows.extend(d.rows.iter().map(|r| r + offset));
                design.x.extend(d.x);
            }
        }
        let set = WindowSet {
            buffer: Arc::from(buffer),
            n_features: f,
            sequence_length: l,
            windows,
            lengths: None,
        };
        let p_lstm = probabilities(&predict_logits(&self.dir.model, &set, &Device::Cpu)?);
        // Never a NaN in the output: an input the LSTM overflows on is an
        // error naming its row.
        if let Some(k) = p_lstm.iter().position(|p| !p.is_finite()) {
            return Err(Error::Msg(format!(
                "the LSTM gives no finite probability for the window ending at row {}: its values are too large for the model",
                set.windows[k].row
            )));
        }
        let p_trees = match &self.trees {
            Some(t) if !design.rows.is_empty() => t.predict(&design),
            _ => Vec::new(),
        };
        let (mut li, mut ti) = (0, 0);
        let mut out = Vec::with_capacity(series.len());
        for &(_, labels, rows) in series {
            let mut preds = Vec::with_capacity(rows.len());
            for &r in rows {
                let pl = (r + 1 >= l).then(|| {
                    li += 1;
                    p_lstm[li - 1]
                });
                let pt = (self.trees.is_some() && r >= max_lag).then(|| {
                    ti += 1;
                    p_trees[ti - 1]
                });
                preds.push(self.combine(r, labels.get(r).copied().flatten(), pl, pt));
            }
            out.push(preds);
        }
        Ok(out)
    }

    /// Scores whole series given in memory (the sequences layout), as
    /// [`Self::score_sequences`] scores a file's.
    pub fn score_series(&self, s: &recur_data::ucr::Sequences) -> Result<Vec<Prediction>> {
        if self.dir.config.data.layout != Layout::Sequences {
            return Err(Error::Msg(
                "this model reads windows of rows (data.layout: rows); score it with score_values"
                    .into(),
            ));
        }
        let data = recur_data::sequences_inference(
            s,
            &self.dir.config,
            &self.dir.scaler,
            self.sequence_length(),
            &self.dir.info,
            false,
        )?;
        self.score_sequences(&data.windows)
    }

    /// The LSTM's probability of each whole sequence (the sequences layout),
    /// through the same calibration and decision as [`Self::score`].
    pub fn score_sequences(&self, set: &WindowSet) -> Result<Vec<Prediction>> {
        let logits = predict_logits(&self.dir.model, set, &Device::Cpu)?;
        let k = self.dir.model.outputs();
        if k > 1 {
            let t = self.deployment.temperature.unwrap_or(1.0);
            let classes = self.classes();
            let p = softmax(&logits, k, t);
            return Ok(set
                .windows
                .iter()
                .zip(p.chunks(k))
                .map(|(w, q)| {
                    let c = argmax(q, k)[0];
                    Prediction {
                        row: w.row,
                        label: w.label,
                        p_lstm: None,
                        p_trees: None,
                        p_ensemble: None,
                        probability: Some(q[c]),
                        decision: None,
                        class_probabilities: Some(q.to_vec()),
                        class: Some(classes[c].clone()),
                    }
                })
                .collect());
        }
        let p = probabilities(&logits);
        Ok(set
            .windows
            .iter()
            .zip(p)
            .map(|(w, p)| self.combine(w.row, w.label, Some(p), None))
            .collect())
    }

    /// The blend, the calibrated probability and the decision of one row.
    fn combine(
        &self,
        row: usize,
        label: Option<f32>,
        p_lstm: Option<f64>,
        p_trees: Option<f64>,
    ) -> Prediction {
        let d = &self.deployment;
        let p_ensemble = match (d.weights, p_trees, p_lstm) {
            (Some(w), Some(t), Some(l)) if d.models.contains_key("ensemble") => Some(w.blend(t, l)),
            _ => None,
        };
        let raw = match d.deployed.as_str() {
            "ensemble" => p_ensemble,
            "trees" => p_trees,
            _ => p_lstm,
        };
        let dec = &d.models[&d.deployed];
        let probability = raw.map(|p| dec.calibrator.apply(p));
        Prediction {
            row,
            label,
            p_lstm,
            p_trees,
            p_ensemble,
            probability,
            decision: probability.map(|p| u8::from(p >= dec.threshold_calibrated)),
            class_probabilities: None,
            class: None,
        }
    }

    /// The raw probability of model `name` in a prediction.
    pub fn raw_of(p: &Prediction, name: &str) -> Option<f64> {
        match name {
            "lstm" => p.p_lstm,
            "trees" => p.p_trees,
            "ensemble" => p.p_ensemble,
            _ => None,
        }
    }
}

/// Reads the trees a model directory names, checking the file's SHA-256.
/// Logits for every window of `set`, in evaluation mode (no dropout):
/// one per window, or `K` per window (window-major) for K classes.
pub fn predict_logits(model: &Classifier, set: &WindowSet, dev: &Device) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..set.len()).collect();
    let k = model.outputs();
    let mut out = vec![0f32; set.len() * k];
    let mut buf = Vec::new();
    for c in set.batches(&idx, model.eval_batch()) {
        set.gather(&c, &mut buf);
        let l = set.len_of(c[0]);
        let x = Tensor::from_slice(&buf, (c.len(), l, set.n_features), dev)?;
        let z = model
            .forward(&x, None)?
            .detach()
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (j, &i) in c.iter().enumerate() {
            out[i * k..(i + 1) * k].copy_from_slice(&z[j * k..(j + 1) * k]);
        }
    }
    Ok(out)
}

/// The probabilities of logits.
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    logits.iter().map(|&z| sigmoid(z as f64)).collect()
}

fn read_trees(dir: &Path, tf: &TreesFile, features: &[String]) -> Result<TreeModel> {
    let path = dir.join(&tf.file);
    if tf.file.contains('/') || tf.file.contains('\\') || tf.file.starts_with('.') {
        return Err(Error::checkpoint(
            dir.join(DEPLOYMENT_FILE),
            format!(
                "trees.file {:?} must name a file inside the model directory",
                tf.file
            ),
        ));
    }
    let bytes = recur_core::fsx::read_bounded(&path, recur_core::fsx::MAX_DATA_FILE)?;
    let sha = recur_core::fsx::sha256_bytes(&bytes);
    if sha != tf.sha256 {
        return Err(Error::checkpoint(
            &path,
            format!(
                "SHA-256 is {sha} but {DEPLOYMENT_FILE} records {}: the file was changed after training; retrain or restore it",
                tf.sha256
            ),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::checkpoint(&path, "not UTF-8 text: not a JSON model"))?;
    let origin = path.display().to_string();
    let design = Design::at(features, &[], &tf.lags, &[]);
    if !tf.inputs.is_empty() && tf.inputs != design.names {
        return Err(Error::checkpoint(
            dir.join(DEPLOYMENT_FILE),
            format!(
                "trees.inputs ({}) are not the features with trees.lags {:?} ({}): the file was edited; retrain",
                tf.inputs.join(", "),
                tf.lags,
                design.names.join(", ")
            ),
        ));
    }
    match tf.source.as_str() {
        "forust" => TreeModel::from_forust_json(&text, design.names, &origin),
        "xgboost" => {
            let xgb = XgbModel::from_json(&text, &origin)?;
            if xgb.objective == "binary:logitraw" && tf.scores.as_deref() != Some(TREE_SCORES) {
                return Err(Error::checkpoint(
                    dir.join(DEPLOYMENT_FILE),
                    "its binary:logitraw XGBoost model was scored by its margins (recur before \
                     2026-12-06), and the calibrator, threshold and blend were fit on them; it \
                     now scores the sigmoid of the margin, so retrain the model",
                ));
            }
            TreeModel::xgboost(xgb, &design, &origin)
        }
        other => Err(Error::checkpoint(
            dir.join(DEPLOYMENT_FILE),
            format!("trees.source {other:?}: expected forust or xgboost"),
        )),
    }
}
