//! Job B's training, evaluation and model directory for the recurrent
//! latent vector models: MSE or cosine loss, AdamW with clipping, cosine
//! annealing or reduce-on-plateau, the best (by validation cosine) and the
//! final weights, per-epoch history, and per-sample cosine / MSE statistics
//! beside the copy-last and context-mean baselines.
//!
//! Its model directory is written and read by [`crate::model_dir`].

use crate::optim::Adam;
use candle_core::{Device, Result as CResult, Tensor};
use recur_core::lvm_config::LvmConfig;
use recur_core::rng::Rng;
use recur_core::{Error, Result};
use recur_data::npz::VectorWindows;
use recur_models::{Baseline, Lvm, LvmArch, Start};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Mean and spread of per-sample cosine similarity and MSE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cosine_mean: f64,
    pub cosine_std: f64,
    pub mse_mean: f64,
    pub mse_std: f64,
    pub n: usize,
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

fn batch(w: &VectorWindows, idx: &[usize], dev: &Device) -> CResult<(Tensor, Tensor)> {
    let sub = w.select(idx);
    Ok((
        Tensor::from_vec(sub.contexts, (idx.len(), w.context, w.dim), dev)?,
        Tensor::from_vec(sub.targets, (idx.len(), w.dim), dev)?,
    ))
}

/// Predicted vectors for every window, in order (evaluation mode).
pub fn predict(model: &Lvm, w: &VectorWindows, dev: &Device) -> CResult<Vec<f32>> {
    let idx: Vec<usize> = (0..w.len()).collect();
    let mut out = Vec::with_capacity(w.targets.len());
    for c in idx.chunks(256) {
        let (x, _) = batch(w, c, dev)?;
        out.extend(model.predict(&x)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// A baseline's predictions for every window.
pub fn baseline_predict(b: Baseline, w: &VectorWindows, dev: &Device) -> CResult<Vec<f32>> {
    let x = Tensor::from_slice(&w.contexts, (w.len(), w.context, w.dim), dev)?;
    b.predict(&x)?.flatten_all()?.to_vec1()
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

pub struct LvmFit {
    pub model: Lvm,
    /// The best weights (a copy), by validation cosine.
    pub best: Vec<(String, Tensor)>,
    pub best_epoch: usize,
    pub history: Vec<LvmEpoch>,
}

fn loss_of(kind: &str, y: &Tensor, t: &Tensor) -> CResult<Tensor> {
    if kind == "cosine" {
        // y is unit length; 1 - mean cos(y, t).
        let tn = t.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let cos = (y * t)?.sum_keepdim(1)?.div(&tn)?;
        cos.mean_all()?.affine(-1.0, 1.0)
    } else {
        (y - t)?.sqr()?.mean_all()
    }
}

/// Trains the configured model on `train`, choosing the best epoch on `val`.
pub fn fit(
    cfg: &LvmConfig,
    train: &VectorWindows,
    val: &VectorWindows,
    dev: &Device,
    progress: bool,
) -> Result<LvmFit> {
    let (m, t) = (&cfg.model, &cfg.training);
    let mut arch = LvmArch::new(
        &m.kind,
        train.dim,
        m.d_model,
        m.num_layers,
        cfg.data.context,
    );
    arch.heads = m.heads;
    arch.ff = m.ff;
    if let Some(p) = m.dropout {
        arch.dropout = p;
    }
    let start = Start::parse(&m.init).ok_or_else(|| {
        Error::config(
            "model.init",
            format!("`{}`: use `pytorch` or `average`", m.init),
        )
    })?;
    let model = Lvm::init_from(arch, start, &mut Rng::stream(t.seed, 0), dev)
        .map_err(|e| Error::config("model.init", e.to_string()))?;
    let mut shuffle = Rng::stream(t.seed, 1);
    let mut dropout_rng = Rng::stream(t.seed, 2);
    let mut opt = Adam::new(model.vars(), t.learning_rate, t.weight_decay, true)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let n_batches = order.len().div_ceil(t.batch_size);
    let (mut best_cos, mut best_epoch, mut best) = (f64::NEG_INFINITY, 0, model.snapshot()?);
    let (mut plateau_best, mut bad) = (f64::NEG_INFINITY, 0);
    let mut history: Vec<LvmEpoch> = Vec::new();
    for epoch in 1..=t.epochs {
        let start = Instant::now();
        if t.schedule == "cosine" {
            let e = (epoch - 1) as f64;
            opt.lr =
                t.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * e / t.epochs as f64).cos());
        }
        shuffle.shuffle(&mut order);
        let pb = crate::trainer::epoch_bar(progress, n_batches, epoch, t.epochs);
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in order.chunks(t.batch_size) {
            let (x, y) = batch(train, chunk, dev)?;
            let loss = loss_of(&t.loss, &model.forward(&x, Some(&mut dropout_rng))?, &y)?;
            let lv = loss.to_scalar::<f32>()? as f64;
            if !lv.is_finite() {
                return Err(Error::Msg(format!(
                    "training diverged at epoch {epoch}: the loss is {lv}; lower training.learning_rate"
                )));
            }
            opt.step(&loss.backward()?, t.grad_clip)?;
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            pb.set_message(match history.last() {
                Some(h) => format!(
                    "{:.5}, val cosine {:.4} after epoch {}",
                    loss_sum / seen as f64,
                    h.val_cosine,
                    h.epoch
                ),
                None => format!("{:.5}", loss_sum / seen as f64),
            });
            pb.inc(1);
        }
        let vs = stats(&predict(&model, val, dev)?, &val.targets, val.dim);
        pb.finish_and_clear();
        let rec = LvmEpoch {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            val_cosine: vs.cosine_mean,
            val_mse: vs.mse_mean,
            lr: opt.lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        if progress {
            eprintln!(
                "epoch {epoch}/{}: loss {:.5}, val cosine {:.4}, val mse {:.6}, lr {:.2e} ({:.1} s)",
                t.epochs, rec.train_loss, rec.val_cosine, rec.val_mse, rec.lr, rec.seconds
            );
        }
        history.push(rec);
        if vs.cosine_mean > best_cos {
            best_cos = vs.cosine_mean;
            best_epoch = epoch;
            best = model.snapshot()?;
        }
        if t.schedule == "plateau" {
            if vs.cosine_mean > plateau_best {
                plateau_best = vs.cosine_mean;
                bad = 0;
            } else {
                bad += 1;
                if bad > t.plateau_patience {
                    opt.lr *= t.plateau_factor;
                    bad = 0;
                }
            }
        }
    }
    Ok(LvmFit {
        model,
        best,
        best_epoch,
        history,
    })
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
}

/// Scores a model and both baselines on `val` (and `ood`).
pub fn report(
    model: &Lvm,
    val: &VectorWindows,
    ood: Option<&VectorWindows>,
    dev: &Device,
) -> Result<LvmReport> {
    // Never a NaN figure: a window the model overflows on is an error.
    let finite = |p: Vec<f32>, w: &VectorWindows| -> Result<Vec<f32>> {
        match p.iter().position(|x| !x.is_finite()) {
            None => Ok(p),
            Some(k) => Err(Error::Msg(format!(
                "the model gives NaN or infinity for window {}: its vectors hold values too large for it (the largest is {:e})",
                k / w.dim.max(1),
                w.contexts.iter().fold(0f32, |m, x| m.max(x.abs()))
            ))),
        }
    };
    let score = |pred: &dyn Fn(&VectorWindows) -> CResult<Vec<f32>>| -> Result<Scored> {
        let v = stats(&finite(pred(val)?, val)?, &val.targets, val.dim);
        let o = match ood {
            Some(o) => Some(stats(&finite(pred(o)?, o)?, &o.targets, o.dim)),
            None => None,
        };
        Ok(Scored {
            val: v,
            ood: o,
            ood_minus_val_cosine: o.map(|o| o.cosine_mean - v.cosine_mean),
        })
    };
    let m = score(&|w| predict(model, w, dev))?;
    let mut baselines = std::collections::BTreeMap::new();
    for b in Baseline::ALL {
        baselines.insert(
            b.name().to_string(),
            score(&|w| baseline_predict(b, w, dev))?,
        );
    }
    Ok(LvmReport {
        model: model.arch.kind.clone(),
        params: model.n_params(),
        scores: m,
        baselines,
        best_epoch: None,
    })
}
