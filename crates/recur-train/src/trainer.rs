//! The epoch loop of the seed's recipe: shuffled mini-batches of training
//! windows (seeded), BCE with `pos_weight` (softmax cross-entropy with class
//! weights for more than two classes), Adam, gradient-norm clipping,
//! and early stopping on validation loss with patience. The best weights
//! are kept as a real copy and restored at the end, so the model returned is
//! the one whose validation loss is the best in the history.

use crate::loss::{
    bce_with_logits, bce_with_logits_f64, class_weights, cross_entropy, cross_entropy_f64,
    resolve_pos_weight,
};
use crate::optim::Adam;
use candle_core::{Device, Tensor};
use recur_core::config::{Config, CostMatrix, PosWeight};
use recur_core::progress::{Progress, Units};
use recur_core::rng::Rng;
use recur_core::{Error, Result};
use recur_data::Prepared;
use recur_deploy::metrics::roc_auc;
use recur_deploy::multiclass::{macro_auc, softmax};
use recur_deploy::predictor::{predict_logits, probabilities};
use recur_deploy::report::EpochRecord;
use recur_models::{Arch, Classifier};
use std::time::Instant;

/// How a fit reports: epochs as stages of batches, a line per epoch.
#[derive(Clone, Copy)]
pub struct FitOptions<'a> {
    pub progress: &'a dyn Progress,
}

impl std::fmt::Debug for FitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitOptions").finish_non_exhaustive()
    }
}

impl Default for FitOptions<'static> {
    fn default() -> Self {
        FitOptions {
            progress: &recur_core::progress::SILENT,
        }
    }
}

/// Settings of the other label kind, which this training does not read:
/// said, since they are kept in the model's config as if they had applied.
/// (`k` is the model's outputs: 1 for two classes.)
fn unread_settings(cfg: &Config, k: usize) -> Vec<String> {
    let t = &cfg.training;
    let mut notes = Vec::new();
    if k > 1 {
        if t.pos_weight != PosWeight::default() {
            notes.push(format!(
                "training.pos_weight is for two classes; this label has {k}, weighted by \
                 training.class_weight ({})",
                t.class_weight
            ));
        }
        if cfg.cost != CostMatrix::default() {
            notes.push(format!(
                "cost sets the threshold of two classes; with {k} the most probable class is \
                 predicted, and the cost matrix is not used"
            ));
        }
    } else if t.class_weight != "auto" {
        notes.push(
            "training.class_weight is for more than two classes; this label has two, weighted \
             by training.pos_weight"
                .into(),
        );
    }
    notes
}

pub struct FitResult {
    pub model: Classifier,
    pub history: Vec<EpochRecord>,
    /// 1-based epoch whose weights the model holds.
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub epochs_run: usize,
    pub pos_weight: f64,
    /// What the user should know about the fit (a model that learnt
    /// nothing), kept for the report as well as shown as it happens.
    pub notes: Vec<String>,
}

/// Trains the classifier on prepared windows.
pub fn fit(prep: &Prepared, cfg: &Config, dev: &Device, opts: &FitOptions) -> Result<FitResult> {
    fit_watched(prep, cfg, dev, opts, &mut |_| true)
}

/// [`fit`], calling `watch` after every epoch; training stops when it
/// answers false (a tuning trial pruned), keeping the best weights so far.
pub fn fit_watched(
    prep: &Prepared,
    cfg: &Config,
    dev: &Device,
    opts: &FitOptions,
    watch: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<FitResult> {
    let prec = crate::precision_of(&cfg.training.precision)?;
    recur_kernels::precision::scoped(prec, || fit_in_precision(prep, cfg, dev, opts, watch))
}

/// [`fit_watched`] in the precision already set for this thread.
fn fit_in_precision(
    prep: &Prepared,
    cfg: &Config,
    dev: &Device,
    opts: &FitOptions,
    watch: &mut dyn FnMut(&EpochRecord) -> bool,
) -> Result<FitResult> {
    let (m, t) = (&cfg.model, &cfg.training);
    check_batch_memory(
        cfg,
        prep.sequence_length,
        prep.train.len(),
        prep.features.len(),
    )?;
    let arch = Arch::of(
        m,
        prep.features.len(),
        prep.sequence_length,
        prep.info.outputs(),
    );
    let model = Classifier::init(arch, &mut Rng::stream(t.seed, 0), dev)?;
    let mut shuffle_rng = Rng::stream(t.seed, 1);
    let mut dropout_rng = Rng::stream(t.seed, 2);
    let train_y = prep.train.labels();
    let val_y = prep.val.labels();
    let k = prep.info.outputs();
    let pos_weight = resolve_pos_weight(&t.pos_weight, &train_y);
    // Two classes: BCE with pos_weight; more: cross-entropy, class weights.
    let weights = (k > 1).then(|| class_weights(&t.class_weight, &train_y, k));
    let val_loss_of = |z: &[f32]| match &weights {
        Some(w) => cross_entropy_f64(z, &val_y, w),
        None => bce_with_logits_f64(z, &val_y, pos_weight),
    };
    let val_auc_of = |z: &[f32]| {
        if k > 1 {
            macro_auc(&softmax(z, k, 1.0), &val_y, k)
        } else {
            roc_auc(&probabilities(z), &val_y)
        }
    };
    let vars = model.params().iter().map(|(_, v)| v.clone()).collect();
    let mut opt = Adam::new(vars, t.learning_rate, t.weight_decay, false)?;

    let mut order: Vec<usize> = (0..prep.train.len()).collect();
    let (mut best, mut best_epoch, mut bad_epochs) = (f64::INFINITY, 0, 0);
    let mut best_weights = None;
    let mut history = Vec::new();
    let mut buf = Vec::new();
    let f = prep.features.len();

    for epoch in 1..=t.epochs {
        let start = Instant::now();
        shuffle_rng.shuffle(&mut order);
        // Plain chunks of the shuffled order; series of different lengths
        // go in batches of one length (no padding).
        let batches = prep.train.batches(&order, t.batch_size);
        let n_batches = batches.len();
        let pb = opts.progress;
        pb.start(
            &format!("epoch {epoch}/{}", t.epochs),
            n_batches as u64,
            Units::Items,
        );
        let (mut loss_sum, mut norm_sum, mut seen) = (0.0, 0.0, 0usize);
        for chunk in &batches {
            prep.train.gather(chunk, &mut buf);
            let l = prep.train.len_of(chunk[0]);
            let x = Tensor::from_slice(&buf, (chunk.len(), l, f), dev)?;
            let y: Vec<f32> = chunk.iter().map(|&i| train_y[i]).collect();
            let logits = model.forward(&x, Some(&mut dropout_rng))?;
            let loss = match &weights {
                Some(w) => cross_entropy(&logits, &y, w)?,
                None => {
                    bce_with_logits(&logits, &Tensor::from_vec(y, chunk.len(), dev)?, pos_weight)?
                }
            };
            let lv = loss.to_scalar::<f32>()? as f64;
            if !lv.is_finite() {
                // A class weight far from 1 scales the loss by itself: named
                // beside the learning rate when it is the likelier cause.
                let weight = if weights.is_none() && !(1e-3..=1e3).contains(&pos_weight) {
                    format!(" or training.pos_weight (now {pos_weight:e})")
                } else {
                    String::new()
                };
                return Err(Error::Msg(format!(
                    "training diverged at epoch {epoch}: the loss is {lv}; lower training.learning_rate{weight} or check the data"
                )));
            }
            norm_sum += opt.step(&loss.backward()?, t.grad_clip)?;
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            pb.advance(1, &format!("loss {:.4}", loss_sum / seen as f64));
            if pb.stop_requested() {
                return Err(recur_core::progress::interrupted());
            }
        }
        pb.finish();
        let val_logits = predict_logits(&model, &prep.val, dev)?;
        let val_loss = val_loss_of(&val_logits);
        let rec = EpochRecord {
            epoch,
            train_loss: loss_sum / seen as f64,
            val_loss,
            val_auc: val_auc_of(&val_logits),
            grad_norm: norm_sum / n_batches as f64,
            seconds: start.elapsed().as_secs_f64(),
        };
        let improved = val_loss < best;
        opts.progress.note(&format!(
            "epoch {epoch:>3}/{}  train loss {}  val loss {}  val AUC {}  {:.1}s{}",
            t.epochs,
            loss4(rec.train_loss),
            loss4(val_loss),
            rec.val_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
            rec.seconds,
            if improved { "  *best" } else { "" }
        ));
        history.push(rec);
        // Told before the early stop, so a search's record of the trial
        // holds the epoch it stopped on (its curves were one short).
        let go_on = watch(history.last().expect("an epoch was just recorded"));
        if improved {
            best = val_loss;
            best_epoch = epoch;
            bad_epochs = 0;
            best_weights = Some(model.snapshot()?);
        } else {
            bad_epochs += 1;
            if bad_epochs >= t.early_stopping_patience.max(1) {
                if epoch < t.epochs {
                    opts.progress.note(&format!(
                        "early stop: no better validation loss for {bad_epochs} epochs"
                    ));
                }
                break;
            }
        }
        if !go_on {
            break;
        }
    }
    opts.progress
        .note(&format!("best epoch {best_epoch}: restoring its weights"));
    let best_weights = best_weights.ok_or_else(|| {
        Error::Msg("validation loss was never finite; check the validation data".into())
    })?;
    model.restore(&best_weights)?;
    let mut notes = unread_settings(cfg, k);
    for n in &notes {
        opts.progress.note(&format!("note: {n}"));
    }
    let guess = constant_guess(&train_y, k, pos_weight, weights.as_deref());
    if let Some(z) = guess {
        let reps: Vec<f32> = z
            .iter()
            .copied()
            .cycle()
            .take(z.len() * val_y.len())
            .collect();
        let guess_loss = val_loss_of(&reps);
        if best >= guess_loss {
            let auc = history
                .get(best_epoch.wrapping_sub(1))
                .and_then(|r| r.val_auc);
            let note = constant_guess_note(best, guess_loss, auc);
            opts.progress.note(&format!("note: {note}"));
            notes.push(note);
        }
    }
    Ok(FitResult {
        model,
        epochs_run: history.len(),
        history,
        best_epoch,
        best_val_loss: best,
        pos_weight,
        notes,
    })
}

/// The logits of the best constant guess under the training loss: for two
/// classes `ln(w P / N)` (the rate the weighted BCE is least at), for more
/// `ln(w_c n_c)` per class. None when a class is missing from training.
fn constant_guess(
    train_y: &[f32],
    k: usize,
    pos_weight: f64,
    weights: Option<&[f64]>,
) -> Option<Vec<f32>> {
    let mut count = vec![0usize; k.max(2)];
    for &y in train_y {
        *count.get_mut(y as usize)? += 1;
    }
    if count.contains(&0) {
        return None;
    }
    match weights {
        None => Some(vec![
            (pos_weight * count[1] as f64 / count[0] as f64).ln() as f32
        ]),
        Some(w) => Some(
            count
                .iter()
                .zip(w)
                .map(|(&n, &w)| (w * n as f64).ln() as f32)
                .collect(),
        ),
    }
}

/// Refuses a batch whose activations alone would take more than 8 GiB
/// (as configs refuse such weights): one product's gate buffer of
/// `batch x steps x 4 hidden` floats per layer (and LSTM-FCN's
/// convolution outputs, with the widest convolution's unfolded input,
/// `channels x kernel` a step, which it builds three times over), kept
/// for the backward pass. A window of 5,000 rows at batch 512 asked for
/// 10 GB in one allocation and aborted; filters of 512 with kernels of 256
/// passed the weights' check and would unfold 8 GB a convolution.
fn check_batch_memory(cfg: &Config, steps: usize, windows: usize, features: usize) -> Result<()> {
    let (m, t) = (&cfg.model, &cfg.training);
    let batch = t.batch_size.min(windows.max(1)) as f64;
    let mut width = 4.0 * m.hidden_size as f64 * m.num_layers as f64;
    if m.kind == recur_core::config::ClassifierKind::LstmFcn {
        width += m.filters.iter().sum::<usize>() as f64;
        let inputs = [features, m.filters[0], m.filters[1]];
        let unfold = (0..3)
            .map(|i| inputs[i] as f64 * m.kernels[i] as f64)
            .fold(0.0, f64::max);
        width += 3.0 * unfold;
    }
    let bytes = batch * steps as f64 * width * 4.0;
    if let Some(gib) = recur_core::config::gib_over_training_limit(bytes) {
        return Err(Error::config(
            "training.batch_size",
            format!(
                "{} windows of {steps} steps with model.hidden_size {} x {} layers{} need about \
                 {gib:.1} GiB of activations per batch (more than 8): lower training.batch_size \
                 or the window's length{}",
                batch as usize,
                m.hidden_size,
                m.num_layers,
                if m.kind == recur_core::config::ClassifierKind::LstmFcn {
                    format!(" and convolutions of {:?} x {:?}", m.filters, m.kernels)
                } else {
                    String::new()
                },
                if m.kind == recur_core::config::ClassifierKind::LstmFcn {
                    " (or model.filters / kernels)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

/// The validation AUC from which a model that loses to the constant
/// guess is said to rank the rows all the same, rather than to have
/// learnt nothing.
const RANKS: f64 = 0.6;

/// What to say of a model whose best validation loss `best` is no better
/// than the constant guess's `guess`, by its validation AUC there.
fn constant_guess_note(best: f64, guess: f64, auc: Option<f64>) -> String {
    match auc {
        // It ranks the rows: the probabilities, not the ranking, are what
        // the loss finds wanting (an extreme class weight, a rate that
        // overshot).
        Some(a) if a >= RANKS => format!(
            "the best validation loss ({}) is no better than a constant guess from the training labels' rate ({}), though the model ranks the rows (validation AUC {a:.4}): its probabilities are off. Too few epochs, too high a training.learning_rate or a class weight far from 1 are usual causes; calibration (`calibration`) repairs them in part",
            loss4(best),
            loss4(guess)
        ),
        _ => format!(
            "the best validation loss ({}) is no better than a constant guess from the training labels' rate ({}): the model learnt nothing from the features. If the loss rose from the first epoch, lower training.learning_rate; otherwise the features may not predict the label",
            loss4(best),
            loss4(guess)
        ),
    }
}

/// A loss to four decimals, or in exponent form once it is past a
/// million (a run gone wrong), so that the line stays readable.
fn loss4(v: f64) -> String {
    if v.abs() < 1e6 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings of the other label kind are said, not silently kept.
    #[test]
    fn settings_of_the_other_label_kind_are_said() {
        let mut cfg = Config::default();
        assert!(unread_settings(&cfg, 1).is_empty() && unread_settings(&cfg, 3).is_empty());
        cfg.training.pos_weight = PosWeight::Number(5.0);
        cfg.cost.tp = 1.0;
        let n = unread_settings(&cfg, 3);
        assert!(
            n[0].starts_with("training.pos_weight is for two classes; this label has 3"),
            "{n:?}"
        );
        assert!(
            n[1].starts_with("cost sets the threshold of two classes"),
            "{n:?}"
        );
        assert!(unread_settings(&cfg, 1).is_empty());
        cfg.training.class_weight = "none".into();
        let n = unread_settings(&cfg, 1);
        assert!(
            n[0].starts_with("training.class_weight is for more than two classes"),
            "{n:?}"
        );
    }

    #[test]
    fn a_batch_too_large_for_memory_is_refused_before_training() {
        let mut cfg = Config::default();
        cfg.model.hidden_size = 256;
        cfg.training.batch_size = 512;
        // 512 windows of 5,000 steps: 9.8 GiB of gates.
        let e = check_batch_memory(&cfg, 5000, 100_000, 16)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("training.batch_size") && e.contains("9.8 GiB"),
            "{e}"
        );
        // As many windows as there are, when fewer than the batch.
        assert!(check_batch_memory(&cfg, 5000, 300, 16).is_ok());
        cfg.training.batch_size = 256;
        assert!(check_batch_memory(&cfg, 5000, 100_000, 16).is_ok());
        // LSTM-FCN's unfolded convolution inputs: filters of 512 with
        // kernels of 256 at batch 16 over 1,000 steps (25 GiB), refused;
        // the paper's sizes pass.
        cfg.model.kind = recur_core::config::ClassifierKind::LstmFcn;
        cfg.model.hidden_size = 8;
        cfg.training.batch_size = 16;
        cfg.model.filters = [512, 512, 512];
        cfg.model.kernels = [256, 256, 256];
        assert!(check_batch_memory(&cfg, 1000, 100, 1).is_err());
        cfg.model.filters = [128, 256, 128];
        cfg.model.kernels = [8, 5, 3];
        assert!(check_batch_memory(&cfg, 1000, 100, 1).is_ok());
    }

    #[test]
    fn a_model_that_ranks_is_not_said_to_have_learnt_nothing() {
        // An extreme class weight: the weighted loss's constant guess is
        // near perfect while the model ranks the rows (AUC 0.95).
        let ranks = constant_guess_note(0.0015, 0.0, Some(0.9484));
        assert!(ranks.contains("though the model ranks the rows (validation AUC 0.9484)"));
        assert!(!ranks.contains("learnt nothing"));
        for auc in [None, Some(0.5), Some(RANKS - 1e-9)] {
            let n = constant_guess_note(0.7, 0.69, auc);
            assert!(
                n.contains("learnt nothing") && n.contains("(0.7000)"),
                "{n}"
            );
        }
        // A run gone wrong prints its loss in exponent form.
        assert!(constant_guess_note(4.9e29, 0.91, None).contains("(4.900e29)"));
    }
}
