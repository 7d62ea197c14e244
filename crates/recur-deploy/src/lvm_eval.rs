//! How a latent vector model is scored: per-sample cosine and MSE of its
//! predictions against the next vector, beside the copy-last and
//! context-mean baselines, in and out of distribution. Training scores
//! every epoch with it and `recur lvm eval` reports with it, so both give
//! the same figures for the same weights.

use candle_core::{Device, Result as CResult, Tensor};
use recur_core::{Error, Result};
use recur_data::npz::VectorWindows;
use recur_models::{Baseline, Lvm};
use serde::{Deserialize, Serialize};

/// Mean and spread of per-sample cosine similarity and MSE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cosine_mean: f64,
    pub cosine_std: f64,
    pub mse_mean: f64,
    pub mse_std: f64,
    pub n: usize,
}

/// The windows of a data file at `context`, its reading notes (what was
/// skipped, how many windows) passed on to `progress`.
pub fn read_windows(
    path: &std::path::Path,
    context: usize,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    read_windows_min(path, context, None, progress)
}

/// As [`read_windows`], with the short windows of `min_context`
/// ([`recur_data::npz::read_windows_min`]).
pub fn read_windows_min(
    path: &std::path::Path,
    context: usize,
    min_context: Option<usize>,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    noted(
        path,
        recur_data::npz::read_windows_min(path, context, min_context)?,
        progress,
    )
}

/// The windows of a chunks file read backwards, for training
/// ([`recur_data::npz::read_reversed_windows`]), its notes to `progress`.
pub fn read_reversed_windows(
    path: &std::path::Path,
    context: usize,
    min_context: Option<usize>,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    noted(
        path,
        recur_data::npz::read_reversed_windows(path, context, min_context)?,
        progress,
    )
}

/// `w`, to be scored, after telling `progress` what reading `path`
/// noted; a zero target is refused
/// ([`recur_data::npz::refuse_zero_targets`]).
fn noted(
    path: &std::path::Path,
    w: VectorWindows,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    tell(path, &w, progress);
    recur_data::npz::refuse_zero_targets(&w, path)?;
    Ok(w)
}

/// Tells `progress` what reading `path` noted.
fn tell(path: &std::path::Path, w: &VectorWindows, progress: &dyn recur_core::progress::Progress) {
    for n in &w.notes {
        progress.note(&format!("{}: {n}", path.display()));
    }
}

/// Refuses windows whose vectors are not `dim` wide, the width a model
/// takes, naming the file.
pub fn check_dim(w: &VectorWindows, dim: usize, path: &std::path::Path) -> Result<()> {
    if w.dim != dim {
        return Err(Error::Msg(format!(
            "{}: vectors have dimension {}; the model takes {dim}",
            path.display(),
            w.dim
        )));
    }
    Ok(())
}

/// The windows of `path` for `model`: its context length, and vectors of
/// the width it takes (else an error naming the file), with the short
/// windows of `min_context` ([`read_windows_min`]).
pub fn read_windows_for(
    path: &std::path::Path,
    model: &Lvm,
    min_context: Option<usize>,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    let w = read_windows_min(path, model.arch.context, min_context, progress)?;
    check_dim(&w, model.arch.input_dim, path)?;
    Ok(w)
}

/// [`read_windows_for`] for prediction, which reads only the contexts:
/// a file whose targets are placeholders (zeros) is taken.
pub fn read_contexts_for(
    path: &std::path::Path,
    model: &Lvm,
    min_context: Option<usize>,
    progress: &dyn recur_core::progress::Progress,
) -> Result<VectorWindows> {
    let w = recur_data::npz::read_windows_min(path, model.arch.context, min_context)?;
    tell(path, &w, progress);
    check_dim(&w, model.arch.input_dim, path)?;
    Ok(w)
}

/// Per-sample cosine (prediction vs target) and MSE (mean over dimensions).
pub fn stats(pred: &[f32], target: &[f32], dim: usize) -> Stats {
    let (mut cos, mut mse) = (Vec::new(), Vec::new());
    for (p, t) in pred.chunks_exact(dim).zip(target.chunks_exact(dim)) {
        let (mut dot, mut pp, mut tt, mut se) = (0f64, 0f64, 0f64, 0f64);
        for (&a, &b) in p.iter().zip(t) {
            let (a, b) = (a as f64, b as f64);
            dot += a * b;
            pp += a * a;
            tt += b * b;
            se += (a - b) * (a - b);
        }
        cos.push(dot / (pp.sqrt() * tt.sqrt()).max(1e-12));
        mse.push(se / dim as f64);
    }
    let mean_std = |v: &[f64]| {
        let n = v.len().max(1) as f64;
        let m = v.iter().sum::<f64>() / n;
        (
            m,
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt(),
        )
    };
    let (cosine_mean, cosine_std) = mean_std(&cos);
    let (mse_mean, mse_std) = mean_std(&mse);
    Stats {
        cosine_mean,
        cosine_std,
        mse_mean,
        mse_std,
        n: cos.len(),
    }
}

/// The windows `idx` of `w` as `[n, C, D]` contexts and `[n, D]` targets.
pub fn batch(w: &VectorWindows, idx: &[usize], dev: &Device) -> CResult<(Tensor, Tensor)> {
    let (contexts, targets) = w.gather(idx);
    Ok((
        Tensor::from_vec(contexts, (idx.len(), w.context, w.dim), dev)?,
        Tensor::from_vec(targets, (idx.len(), w.dim), dev)?,
    ))
}

/// Predicted vectors for every window, in order (evaluation mode), as
/// `lvm predict` writes them: finite unit vectors, else an error naming
/// the window ([`finite_predictions`]).
pub fn predict(model: &Lvm, w: &VectorWindows, dev: &Device) -> CResult<Vec<f32>> {
    let out = predict_finite(model, w, dev)?;
    finite_predictions(out, w.dim, w.largest_context_value())
}

/// [`predict`] held only finite, for scoring (`lvm eval`, training's
/// validation): a zero row (a context of constant vectors) scores cosine
/// 0 there, as a zero baseline does, rather than failing the run.
pub fn predict_finite(model: &Lvm, w: &VectorWindows, dev: &Device) -> CResult<Vec<f32>> {
    let out = over_windows(w, 256, dev, |x| model.predict(x))?;
    finite_only(out, w.dim, w.largest_context_value())
}

/// `pred` when every value is finite, else an error naming the window.
fn finite_only(pred: Vec<f32>, dim: usize, largest: f32) -> CResult<Vec<f32>> {
    match pred.iter().position(|x| !x.is_finite()) {
        None => Ok(pred),
        Some(k) => Err(candle_core::Error::Msg(format!(
            "the model gives NaN or infinity for window {}: its vectors hold values too large for it (the largest is {largest:e}); the model takes vectors like its training ones (unit length)",
            k / dim.max(1),
        ))),
    }
}

/// The largest magnitude among `values` (what [`finite_predictions`]
/// names).
pub fn largest(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// `pred` (vectors of `dim`) as it is, or an error naming the first window
/// whose prediction holds NaN or infinity: finite inputs too large for the
/// model (`largest` is the inputs' largest magnitude, named) overflow
/// inside it, and a NaN vector must never pass for a prediction.
pub fn finite_predictions(pred: Vec<f32>, dim: usize, largest: f32) -> CResult<Vec<f32>> {
    let pred = finite_only(pred, dim, largest)?;
    match recur_models::lvm::not_unit_row(&pred, dim) {
        None => Ok(pred),
        Some(i) => Err(candle_core::Error::Msg(format!(
            "the model gives no unit vector for window {i}: its output was zero, or overflowed float32 before it was normalised (the largest input value is {largest:e}); are the window's vectors constant or zero, or the model's weights or inputs far larger than in training?"
        ))),
    }
}

/// A baseline's predictions for every window.
pub fn baseline_predict(b: Baseline, w: &VectorWindows, dev: &Device) -> CResult<Vec<f32>> {
    over_windows(w, 4096, dev, |x| b.predict(x))
}

/// `f` over every window's context, `chunk` windows at a time (the whole
/// set is never copied out at once), its outputs in window order.
fn over_windows(
    w: &VectorWindows,
    chunk: usize,
    dev: &Device,
    f: impl Fn(&Tensor) -> CResult<Tensor>,
) -> CResult<Vec<f32>> {
    let idx: Vec<usize> = (0..w.len()).collect();
    let mut out = Vec::with_capacity(w.len() * w.dim);
    for c in idx.chunks(chunk) {
        let x = Tensor::from_vec(w.gather_contexts(c), (c.len(), w.context, w.dim), dev)?;
        out.extend(f(&x)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// One epoch of the training history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LvmEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_cosine: f64,
    pub val_mse: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// Figures of one model (or baseline) on validation and, when given, OOD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scored {
    pub val: Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ood: Option<Stats>,
    /// OOD cosine minus validation cosine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ood_minus_val_cosine: Option<f64>,
}

/// What `report.json` holds: the model's scores (`val`, `ood`,
/// `ood_minus_val_cosine` at the top level) and the baselines' beside them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LvmReport {
    pub model: String,
    pub params: usize,
    #[serde(flatten)]
    pub scores: Scored,
    pub baselines: std::collections::BTreeMap<String, Scored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// What training found worth saying about its data (validation
    /// windows that are training windows too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl LvmReport {
    /// Whether the model beats every baseline on validation and, where
    /// there is an OOD set, out of distribution too.
    pub fn beats_baselines(&self) -> bool {
        let ood = self.scores.ood.as_ref().map(|s| s.cosine_mean);
        self.baselines.values().all(|b| {
            self.scores.val.cosine_mean > b.val.cosine_mean
                && match (ood, b.ood.as_ref()) {
                    (Some(m), Some(o)) => m > o.cosine_mean,
                    (None, None) => true,
                    _ => false,
                }
        })
    }
}

/// Scores a model and both baselines on `val` (and `ood`).
pub fn report(
    model: &Lvm,
    val: &VectorWindows,
    ood: Option<&VectorWindows>,
    dev: &Device,
) -> Result<LvmReport> {
    // Never a NaN figure: a window the model overflows on is an error. A
    // zero row (the model's on a context of constant vectors, a baseline's
    // on a zero last vector or mean) scores cosine 0.
    let finite = |p: Vec<f32>, w: &VectorWindows| -> Result<Vec<f32>> {
        Ok(finite_only(p, w.dim, w.largest_context_value())?)
    };
    let score = |pred: &dyn Fn(&VectorWindows) -> CResult<Vec<f32>>| -> Result<Scored> {
        let v = stats(&finite(pred(val)?, val)?, &val.targets(), val.dim);
        let o = match ood {
            Some(o) => Some(stats(&finite(pred(o)?, o)?, &o.targets(), o.dim)),
            None => None,
        };
        Ok(Scored {
            val: v,
            ood: o,
            ood_minus_val_cosine: o.map(|o| o.cosine_mean - v.cosine_mean),
        })
    };
    let m = score(&|w| predict_finite(model, w, dev))?;
    let mut baselines = std::collections::BTreeMap::new();
    for b in Baseline::ALL {
        baselines.insert(
            b.name().to_string(),
            score(&|w| baseline_predict(b, w, dev))?,
        );
    }
    Ok(LvmReport {
        model: model.arch.kind.to_string(),
        params: model.n_params(),
        scores: m,
        baselines,
        best_epoch: None,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(cosine: f64) -> Scored {
        Scored {
            val: Stats {
                cosine_mean: cosine,
                cosine_std: 0.1,
                mse_mean: 0.01,
                mse_std: 0.0,
                n: 10,
            },
            ood: None,
            ood_minus_val_cosine: None,
        }
    }

    #[test]
    fn the_report_says_when_a_baseline_does_as_well_as_the_model() {
        let report = |model: f64| LvmReport {
            model: "lstm".into(),
            params: 1,
            scores: scored(model),
            baselines: [("context_mean", 0.5), ("copy_last", 0.4)]
                .into_iter()
                .map(|(n, c)| (n.to_string(), scored(c)))
                .collect(),
            best_epoch: Some(1),
            warnings: vec!["a warning of training".into()],
        };
        let text = report(0.45).to_string();
        assert!(
            text.contains("note: on validation the model does no better than context_mean:"),
            "{text}"
        );
        assert!(!text.contains("copy_last:") && text.contains("note: a warning of training"));
        let text = report(0.6).to_string();
        assert!(!text.contains("does no better"), "{text}");
    }
}
