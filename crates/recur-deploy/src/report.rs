//! What training reports about a Job A model, in `report.json` and
//! `history.json`: each model's scores raw and calibrated, the trees, the
//! blend's lift, and the per-epoch record. `recur eval` rebuilds the same
//! tables from the model directory, so they live beside the predictor.

use crate::calibrate::{ece, Bin, Calibrator};
use crate::decision::expected_value;
use crate::ensemble::Weights;
use crate::metrics::Metrics;
use recur_core::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One epoch of the LSTM's training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: Option<f64>,
    pub grad_norm: f64,
    pub seconds: f64,
}

/// One model's scores on one part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub logloss: f64,
    pub brier: f64,
    pub ece: f64,
    /// Expected value per row at the threshold chosen on validation.
    pub ev: f64,
    /// The share of rows decided right at that threshold (`p >= t` is 1);
    /// absent from reports written before 2026-12-06.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    pub n: usize,
    pub positives: usize,
}

impl Scores {
    /// ROC AUC, PR AUC, log loss, Brier, ECE, threshold and EV per row, as
    /// the terminal report and the HTML one print them.
    pub fn cells(&self, threshold: f64) -> [String; 7] {
        let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.4}"));
        [
            f(self.auc),
            f(self.pr_auc),
            format!("{:.4}", self.logloss),
            format!("{:.4}", self.brier),
            format!("{:.4}", self.ece),
            format!("{threshold:.2}"),
            readable(self.ev, 6),
        ]
    }
}

/// `v` with `decimals` decimals, or in exponent form where that would show
/// only zeros or a wall of digits (a cost of 1e-9 or 1e100 per decision, a
/// class weight of 1e30).
pub fn readable(v: f64, decimals: usize) -> String {
    let smallest = 10f64.powi(-(decimals as i32));
    if v == 0.0 || !v.is_finite() || (smallest..1e6).contains(&v.abs()) {
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    }
}

/// Validation and test scores of one variant (raw or calibrated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Chosen by expected value on validation.
    pub threshold: f64,
    pub val: Scores,
    pub test: Option<Scores>,
    /// Said when the trivial decision (act on every row, or on none) is
    /// worth more on validation than the threshold (`decision::edge_note`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub raw: Variant,
    pub calibrated: Variant,
    pub calibrator: Calibrator,
    /// Reliability tables on test (validation when there is no test).
    pub reliability_raw: Vec<Bin>,
    pub reliability_calibrated: Vec<Bin>,
}

/// Where the trees came from and what they used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreesInfo {
    /// `forust` (trained here) or `xgboost` (read from a file).
    pub source: String,
    pub trees: usize,
    pub inputs: Vec<String>,
    /// Total-gain importance, normalised, largest first.
    pub importance: Vec<(String, f64)>,
}

/// The three-model comparison that goes into `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAReport {
    pub models: BTreeMap<String, ModelReport>,
    pub weights: Option<Weights>,
    pub trees: Option<TreesInfo>,
    /// Test AUC of the ensemble minus the best single model's.
    pub ensemble_auc_lift: Option<f64>,
    /// ROC curves of the trees and the ensemble (test, else validation).
    pub roc: BTreeMap<String, Vec<[f64; 2]>>,
    /// The deployed decision's warnings, for the report's list.
    pub warnings: Vec<String>,
}

/// One model's scores at `threshold`.
pub fn scores(p: &[f64], y: &[f32], threshold: f64, cfg: &Config) -> Scores {
    let m = Metrics::compute(p, y);
    Scores {
        auc: m.auc,
        pr_auc: m.pr_auc,
        logloss: m.logloss,
        brier: m.brier,
        ece: ece(p, y),
        ev: expected_value(p, y, threshold, &cfg.cost),
        accuracy: Some(accuracy_at(p, y, threshold)),
        n: m.n,
        positives: m.positives,
    }
}

/// The share of rows whose decision at `threshold` (1 when `p >= t`, as
/// `predict` decides) is their label.
fn accuracy_at(p: &[f64], y: &[f32], threshold: f64) -> f64 {
    let right = p
        .iter()
        .zip(y)
        .filter(|(&p, &y)| (p >= threshold) == (y > 0.5))
        .count();
    right as f64 / p.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accuracy is taken at the model's threshold, as `predict` decides
    /// (`p >= t` is 1), not at 0.5.
    #[test]
    fn accuracy_is_at_the_threshold() {
        let (p, y) = ([0.2, 0.6, 0.4, 0.9, 0.3], [0.0, 1.0, 1.0, 0.0, 1.0]);
        let cfg = Config::default();
        assert_eq!(scores(&p, &y, 0.5, &cfg).accuracy, Some(0.4));
        assert_eq!(scores(&p, &y, 0.3, &cfg).accuracy, Some(0.8));
    }
}
