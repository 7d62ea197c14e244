//! The model directory: everything `recur eval` and `recur predict` need,
//! and nothing that varies between two runs with the same seed in
//! `report.json` (timings live in `history.json`).
//!
//! ```text
//! config.yaml        the resolved config (data spec, model, training)
//! model.safetensors  weights + architecture + format version + checksum
//! scaler.json        train mean and std per feature
//! features.json      the feature columns, in model input order
//! data.json          how the training data was split; the positive class
//! history.json       per epoch: losses, val AUC, gradient norm, seconds
//! report.json        val and test metrics, best epoch, pos_weight, counts;
//!                    with trees: LSTM, trees and ensemble raw and calibrated
//! selection.json     feature selection's per-feature table (when configured)
//! trees.json         the trained trees (forust's JSON; when configured)
//! ensemble.json      weights, calibrators and thresholds (with trees)
//! ```

use crate::metrics::Metrics;
use crate::trainer::{EpochRecord, FitResult};
use candle_core::Device;
use recur_core::checkpoint::{load_checked, save};
use recur_core::config::Config;
use recur_core::fsx::{read_json, write_atomic, write_json};
use recur_core::{Error, Result};
use recur_data::prepare::SplitInfo;
use recur_data::{prepare_inference, InferenceData, Scaler};
use recur_models::{ClassifierArch, LstmClassifier};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const WEIGHTS: &str = "model.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub val: Metrics,
    /// `None` when the split has no test part.
    pub test: Option<Metrics>,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub pos_weight: f64,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub features: Vec<String>,
    pub sequence_length: usize,
    pub params: usize,
    pub seed: u64,
    /// How the label was made, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_rule: Option<String>,
    /// Each part's rows, times and base rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<recur_data::prepare::PartSpan>,
    /// Default features left out as constant on the training rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constant_columns: Vec<(String, f64)>,
    /// Feature selection's table, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Vec<recur_data::select::FeatureStats>>,
    /// LSTM, trees and ensemble, raw and calibrated, when trees are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<std::collections::BTreeMap<String, crate::job_a::ModelReport>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<crate::ensemble::Weights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<crate::job_a::TreesInfo>,
    /// Test AUC of the ensemble minus the best single model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble_auc_lift: Option<f64>,
    /// ROC curve points per model on test (validation without a test part).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub roc: std::collections::BTreeMap<String, Vec<[f64; 2]>>,
}

/// A loaded model directory.
pub struct ModelDir {
    pub config: Config,
    pub model: LstmClassifier,
    pub scaler: Scaler,
    pub info: SplitInfo,
}

impl ModelDir {
    /// The windows of `input` as this model reads them (its features,
    /// scaler, window length and positive class); with `need_labels`, only
    /// labelled windows, and the target must be present.
    pub fn windows_of(&self, input: &Path, need_labels: bool) -> Result<InferenceData> {
        prepare_inference(
            input,
            &self.config,
            &self.scaler,
            self.model.arch.sequence_length,
            self.info.positive_label.as_deref(),
            need_labels,
        )
    }
}

pub fn save_model_dir(
    dir: &Path,
    cfg: &Config,
    fit: &FitResult,
    scaler: &Scaler,
    info: &SplitInfo,
    report: &Report,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut cfg = cfg.clone();
    cfg.model.sequence_length = fit.model.arch.sequence_length;
    cfg.data.features = Some(scaler.features.clone());
    write_atomic(&dir.join("config.yaml"), cfg.to_yaml().as_bytes())?;
    save(
        &dir.join(WEIGHTS),
        &fit.model.snapshot()?,
        &fit.model.arch.to_json(),
    )?;
    write_json(&dir.join("scaler.json"), scaler)?;
    write_json(&dir.join("features.json"), &scaler.features)?;
    write_json(&dir.join("data.json"), info)?;
    write_json(&dir.join("history.json"), &fit.history)?;
    write_json(&dir.join("report.json"), report)
}

fn need(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(Error::checkpoint(
            dir,
            format!("not a recur model directory: `{name}` is missing (make one with `recur train --config FILE --out DIR`)"),
        ))
    }
}

/// The config a model directory was trained with.
pub fn read_config(dir: &Path) -> Result<Config> {
    let cfg_path = need(dir, "config.yaml")?;
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    Config::from_yaml(&text, &cfg_path.display().to_string())
}

/// Loads a model directory, checking the weights against the architecture
/// that the saved config and features describe.
pub fn load_model_dir(dir: &Path, dev: &Device) -> Result<ModelDir> {
    let config = read_config(dir)?;
    let features: Vec<String> = read_json(&need(dir, "features.json")?)?;
    let scaler: Scaler = read_json(&need(dir, "scaler.json")?)?;
    let info: SplitInfo = read_json(&need(dir, "data.json")?)?;
    if scaler.features != features
        || scaler.mean.len() != features.len()
        || scaler.std.len() != features.len()
    {
        return Err(Error::checkpoint(
            dir,
            "scaler.json does not match features.json: the directory was edited by hand",
        ));
    }
    let m = &config.model;
    let arch = ClassifierArch::new(
        features.len(),
        m.hidden_size,
        m.num_layers,
        m.dropout,
        m.sequence_length,
    );
    let weights = need(dir, WEIGHTS)?;
    let tensors = load_checked(
        &weights,
        &arch.to_json(),
        &LstmClassifier::tensor_specs(&arch),
        dev,
    )?;
    let model = LstmClassifier::from_tensors(arch, tensors)?;
    Ok(ModelDir {
        config,
        model,
        scaler,
        info,
    })
}

/// Reads `history.json` (for `inspect`).
pub fn read_history(dir: &Path) -> Result<Vec<EpochRecord>> {
    read_json(&dir.join("history.json"))
}
