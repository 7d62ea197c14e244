//! Job B's training, evaluation and model directory for the recurrent
//! latent vector models: MSE or cosine loss, AdamW with clipping, cosine
//! annealing or reduce-on-plateau, the best (by validation cosine) and the
//! final weights, per-epoch history, and per-sample cosine / MSE statistics
//! beside the copy-last and context-mean baselines.
//!
//! Its model directory is written and read by `model_dir`; what it is
//! scored by (`lvm_eval`) is in recur-deploy, shared with `recur lvm eval`.

use crate::optim::Adam;
use candle_core::{Device, Result as CResult, Tensor};
use recur_core::lvm_config::{LvmConfig, LvmTrainingConfig};
use recur_core::progress::{Progress, Units};
use recur_core::rng::Rng;
use recur_core::{Error, Result};
use recur_data::npz::VectorWindows;
use recur_deploy::lvm_eval::{batch, predict_finite, read_windows, stats, LvmEpoch, LvmReport};
use recur_deploy::model_dir::HeldOut;
use recur_models::{Lvm, LvmArch, Start};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct LvmFit {
    pub model: Lvm,
    /// The best weights (a copy), by validation cosine.
    pub best: Vec<(String, Tensor)>,
    pub best_epoch: usize,
    pub history: Vec<LvmEpoch>,
}

/// Rows scaled to unit length.
fn unit(x: &Tensor) -> CResult<Tensor> {
    x.broadcast_div(&x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?)
}

/// The training loss of a batch: `training.loss` plus, when its weight is
/// above 0, the InfoNCE term.
fn loss_of(t: &LvmTrainingConfig, y: &Tensor, target: &Tensor) -> CResult<Tensor> {
    let base = if t.loss == "cosine" {
        // y is unit length; 1 - mean cos(y, t).
        let tn = target
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let cos = (y * target)?.sum_keepdim(1)?.div(&tn)?;
        cos.mean_all()?.affine(-1.0, 1.0)?
    } else {
        (y - target)?.sqr()?.mean_all()?
    };
    if t.infonce_weight > 0.0 {
        let nce = info_nce(y, target, t.infonce_temperature)?;
        base + nce.affine(t.infonce_weight, 0.0)?
    } else {
        Ok(base)
    }
}

/// InfoNCE with in-batch negatives: the mean over rows of the cross-entropy
/// of softmax(cos(y_i, t_j) / tau) over the batch's targets j, the right
/// answer j = i. It rewards a prediction for being closer to its own next
/// vector than to the other windows' next vectors, which plain cosine or
/// MSE do not ask for.
fn info_nce(y: &Tensor, target: &Tensor, tau: f64) -> CResult<Tensor> {
    let (yn, tn) = (unit(y)?, unit(target)?);
    let logits = (yn.matmul(&tn.t()?)? / tau)?;
    // log-sum-exp by rows, shifted by the (constant) row maximum.
    let m = logits.max_keepdim(1)?.detach();
    let lse = (logits.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + m)?;
    let pos = ((yn * tn)?.sum_keepdim(1)? / tau)?;
    (lse - pos)?.mean_all()
}

/// Trains the configured model on `train`, choosing the best epoch on `val`.
pub fn fit(
    cfg: &LvmConfig,
    train: &VectorWindows,
    val: &VectorWindows,
    dev: &Device,
    progress: &dyn Progress,
) -> Result<LvmFit> {
    fit_watched(cfg, train, val, dev, progress, &mut |_| true)
}

/// As [`fit`], calling `watch` after every epoch with its record; training
/// stops after an epoch for which it returns false (`recur tune` prunes
/// with it), keeping the best weights so far.
pub fn fit_watched(
    cfg: &LvmConfig,
    train: &VectorWindows,
    val: &VectorWindows,
    dev: &Device,
    progress: &dyn Progress,
    watch: &mut dyn FnMut(&LvmEpoch) -> bool,
) -> Result<LvmFit> {
    cfg.training.check_counts("the LVM config")?;
    let prec = crate::precision_of(&cfg.training.precision)?;
    recur_kernels::precision::scoped(prec, || {
        fit_in_precision(cfg, train, val, dev, progress, watch)
    })
}

/// [`fit_watched`] in the precision already set for this thread.
fn fit_in_precision(
    cfg: &LvmConfig,
    train: &VectorWindows,
    val: &VectorWindows,
    dev: &Device,
    progress: &dyn Progress,
    watch: &mut dyn FnMut(&LvmEpoch) -> bool,
) -> Result<LvmFit> {
    let (m, t) = (&cfg.model, &cfg.training);
    check_batch_memory(cfg, train.len(), train.dim)?;
    let mut arch = LvmArch::new(m.kind, train.dim, m.d_model, m.num_layers, cfg.data.context);
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
    let model = Lvm::init_from(arch, start, &mut Rng::stream(t.seed, 0), dev).map_err(|e| {
        Error::config(
            "model.init",
            recur_core::error::without_backtrace(e).to_string(),
        )
    })?;
    let mut shuffle = Rng::stream(t.seed, 1);
    let mut dropout_rng = Rng::stream(t.seed, 2);
    let mut opt = Adam::new(model.vars(), t.learning_rate, t.weight_decay, true)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let n_batches = order.len().div_ceil(t.batch_size);
    let (mut best_cos, mut best_epoch, mut best) = (f64::NEG_INFINITY, 0, model.snapshot()?);
    let (mut plateau_best, mut bad) = (f64::NEG_INFINITY, 0);
    let mut history: Vec<LvmEpoch> = Vec::new();
    let val_targets = val.targets();
    for epoch in 1..=t.epochs {
        let start = Instant::now();
        if t.schedule == "cosine" {
            let e = (epoch - 1) as f64;
            opt.lr =
                t.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * e / t.epochs as f64).cos());
        }
        shuffle.shuffle(&mut order);
        progress.start(
            &format!("epoch {epoch}/{}", t.epochs),
            n_batches as u64,
            Units::Items,
        );
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for chunk in order.chunks(t.batch_size) {
            let (x, y) = batch(train, chunk, dev)?;
            let loss = loss_of(t, &model.forward(&x, Some(&mut dropout_rng))?, &y)?;
            let lv = loss.to_scalar::<f32>()? as f64;
            if !lv.is_finite() {
                return Err(Error::Msg(format!(
                    "training diverged at epoch {epoch}: the loss is {lv}; lower training.learning_rate"
                )));
            }
            opt.step(&loss.backward()?, t.grad_clip)?;
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            let status = match history.last() {
                Some(h) => format!(
                    "loss {:.5}, val cosine {:.4} after epoch {}",
                    loss_sum / seen as f64,
                    h.val_cosine,
                    h.epoch
                ),
                None => format!("loss {:.5}", loss_sum / seen as f64),
            };
            progress.advance(1, &status);
            if progress.stop_requested() {
                return Err(recur_core::progress::interrupted());
            }
        }
        // predict refuses non-finite predictions; here they mean the
        // model diverged, not that the validation vectors are too large.
        let pred = predict_finite(&model, val, dev).map_err(|e| {
            if e.to_string().contains("NaN or infinity") {
                Error::Msg(format!(
                    "training diverged at epoch {epoch}: the validation predictions hold NaN or infinity; lower training.learning_rate"
                ))
            } else {
                Error::from(e)
            }
        })?;
        let vs = stats(&pred, &val_targets, val.dim);
        progress.finish();
        let rec = LvmEpoch {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            val_cosine: vs.cosine_mean,
            val_mse: vs.mse_mean,
            lr: opt.lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        progress.note(&format!(
            "epoch {epoch}/{}: loss {:.5}, val cosine {:.4}, val mse {:.6}, lr {:.2e} ({:.1} s)",
            t.epochs, rec.train_loss, rec.val_cosine, rec.val_mse, rec.lr, rec.seconds
        ));
        let go_on = watch(&rec);
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
        if !go_on {
            break;
        }
    }
    Ok(LvmFit {
        model,
        best,
        best_epoch,
        history,
    })
}

/// Refuses a batch whose activations would take more than 8 GiB, as the
/// classifier's trainer does: `windows` of `dim`-wide vectors, each
/// batch's contexts and, per layer, some eight `d_model`-wide values a
/// context vector kept for the backward pass (gates, states, the
/// transformer's feed-forward and its `heads x context` attention
/// weights), and InfoNCE's `batch x batch` scores. A batch size of a
/// billion with InfoNCE asked for 14 GB in one allocation and aborted.
/// An estimate meant to catch sizes far out of range, not to budget.
fn check_batch_memory(cfg: &LvmConfig, windows: usize, dim: usize) -> Result<()> {
    use recur_core::lvm_config::LvmKind;
    let (m, t, c) = (&cfg.model, &cfg.training, cfg.data.context as f64);
    let batch = t.batch_size.min(windows.max(1)) as f64;
    let mut per_step = 8.0 * m.d_model as f64 * m.num_layers.max(1) as f64;
    if m.kind == LvmKind::Transformer {
        per_step += m.num_layers as f64 * (m.ff as f64 + 3.0 * m.heads as f64 * c);
    }
    let mut bytes = 4.0 * batch * c * (dim as f64 + per_step);
    if t.infonce_weight > 0.0 {
        bytes += 4.0 * 4.0 * batch * batch;
    }
    if let Some(gib) = recur_core::config::gib_over_training_limit(bytes) {
        let (scores, cure) = if t.infonce_weight > 0.0 {
            (
                ", InfoNCE's batch x batch scores",
                " (InfoNCE's memory grows with its square)",
            )
        } else {
            ("", " or the model's sizes")
        };
        return Err(Error::config(
            "training.batch_size",
            format!(
                "{} windows a batch (context {}, {dim}-wide vectors, model.d_model {} x {} \
                 layers{scores}) need about {gib:.1} GiB of activations (more than 8): lower \
                 training.batch_size{cure}",
                batch as usize, cfg.data.context, m.d_model, m.num_layers,
            ),
        ));
    }
    Ok(())
}

/// The data of an LVM config: the training and validation windows (split
/// by article unless `data.val` is given), the OOD windows when named, and
/// which articles were held out.
pub struct LvmData {
    pub train: VectorWindows,
    pub val: VectorWindows,
    pub ood: Option<VectorWindows>,
    pub held: Option<HeldOut>,
}

/// Refuses a validation or OOD file that holds the training file's bytes
/// (a copy, or the same file under another name): its figures would be of
/// windows trained on, reported as held out or out of distribution.
fn check_not_the_training_file(cfg: &LvmConfig) -> Result<()> {
    let others = [
        (
            "data.val",
            cfg.data.val.as_ref(),
            "validation",
            "give another file, or leave data.val out to hold out whole articles",
        ),
        (
            "data.ood",
            cfg.data.ood.as_ref(),
            "out-of-distribution evaluation",
            "give a file of other texts (another source), or leave data.ood out",
        ),
    ];
    let train = &cfg.data.train;
    for (key, path, what, instead) in others {
        let Some(path) = path else { continue };
        // A file that cannot be read is for its reader to name.
        let resolved = recur_core::fsx::resolve(path);
        let same = (resolved.is_some() && resolved == recur_core::fsx::resolve(train))
            || same_bytes(path, train).unwrap_or(false);
        if same {
            return Err(recur_core::Error::config(
                key,
                format!(
                    "{} holds the same bytes as data.train ({}): {what} on the windows trained on \
                     measures nothing; {instead}",
                    path.display(),
                    train.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether two files hold the same bytes: sizes first, then block by
/// block, stopping at the first difference.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    if std::fs::metadata(a)?.len() != std::fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Reads and splits the data of `cfg` as [`train_to_dir`] does, checking
/// that every file has the same vector width.
pub fn load_data(cfg: &LvmConfig, progress: &dyn Progress) -> Result<LvmData> {
    if cfg
        .data
        .val
        .as_ref()
        .is_some_and(|v| recur_core::fsx::resolve(v) == recur_core::fsx::resolve(&cfg.data.train))
    {
        return Err(recur_core::Error::config(
            "data.val",
            "is the training file: validation on the windows trained on measures nothing; \
             leave data.val out to hold out whole articles, or give another file",
        ));
    }
    // A file that is not there is named by its key (the reader's error
    // named the path alone, as "not a readable .npz file").
    for (key, path) in [
        ("data.train", Some(&cfg.data.train)),
        ("data.val", cfg.data.val.as_ref()),
        ("data.ood", cfg.data.ood.as_ref()),
    ] {
        if let Some(p) = path.filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
            return Err(recur_core::Error::config(
                key,
                format!(
                    "{}: no such file (a path in a config is read from the config's folder)",
                    p.display()
                ),
            ));
        }
    }
    check_not_the_training_file(cfg)?;
    let c = cfg.data.context;
    let all = recur_deploy::lvm_eval::read_windows_min(
        &cfg.data.train,
        c,
        cfg.data.min_context,
        progress,
    )?;
    let mut held = None;
    let (train, val) = match &cfg.data.val {
        Some(v) => (all, read_windows(v, c, progress)?),
        None => {
            let (tr, va) =
                recur_data::npz::split_by_article(&all, cfg.data.val_fraction, cfg.training.seed);
            if let Some(a) = &all.articles {
                let mut ids: Vec<i64> = va.iter().map(|&i| a[i]).collect();
                ids.sort_unstable();
                ids.dedup();
                held = Some(HeldOut::of(
                    &cfg.data.train,
                    cfg.data.val_fraction,
                    cfg.training.seed,
                    ids,
                )?);
            }
            progress.note(&match &all.articles {
                Some(_) => format!(
                    "validation: {} of {} windows held out by article{}",
                    va.len(),
                    all.len(),
                    if all.real.is_some() {
                        " (full windows only)"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "validation: the last {} of {} windows, in file order: {} has no \
                     `article_indices` to hold articles out by; the {} windows before them \
                     are left out, so none trained on shares a vector with them",
                    va.len(),
                    all.len(),
                    cfg.data.train.display(),
                    all.len() - va.len() - tr.len(),
                ),
            });
            (all.select(&tr), all.select(&va))
        }
    };
    if train.is_empty() || val.is_empty() {
        return Err(recur_core::Error::data(
            cfg.data.train.display().to_string(),
            format!(
                "{} training and {} validation windows{}: both are needed; {}",
                train.len(),
                val.len(),
                match (&cfg.data.val, &train.articles) {
                    (Some(_), _) => "",
                    (None, Some(_)) => " after whole articles were held out for validation",
                    (None, None) => {
                        " after the last block was held out for validation and the windows \
                         before it set aside (the file has no article_indices)"
                    }
                },
                if cfg.data.val.is_none() && train.articles.is_none() {
                    format!(
                        "give more windows (more than {c} beside the validation block), \
                         article_indices, or a validation file as data.val"
                    )
                } else if cfg.data.val.is_none() {
                    format!(
                        "give more articles (each with a full window of {c} context chunks and \
                         a target), or a validation file as data.val"
                    )
                } else {
                    format!(
                        "each file needs articles with a full window of {c} context chunks and a target"
                    )
                }
            ),
        ));
    }
    let mut train = train;
    if cfg.data.reverse {
        // Backward windows of the training articles only: a held-out
        // article read backwards would be its validation windows' answers.
        let rev = recur_deploy::lvm_eval::read_reversed_windows(
            &cfg.data.train,
            c,
            cfg.data.min_context,
            progress,
        )?;
        let rev = match (&held, &train.articles) {
            (Some(_), Some(a)) => rev.of_articles(&a.iter().copied().collect()).unwrap_or(rev),
            _ => rev,
        };
        progress.note(&format!(
            "data.reverse: {} backward windows added to training",
            rev.len()
        ));
        train.extend(rev);
    }
    let ood = cfg
        .data
        .ood
        .as_ref()
        .map(|p| read_windows(p, c, progress))
        .transpose()?;
    let ood_dim = ood.as_ref().map_or(train.dim, |o| o.dim);
    // Named by key and file (the message had named neither).
    let named = |key: &str, p: Option<&PathBuf>, dim: usize| match p {
        Some(p) => format!("{key} {} has {dim}", p.display()),
        None => format!("{key} (held out of data.train) has {dim}"),
    };
    if val.dim != train.dim {
        return Err(Error::Msg(format!(
            "the data files have different vector dimensions: data.train {} has {}, {}; \
             give files of one encoder",
            cfg.data.train.display(),
            train.dim,
            named("data.val", cfg.data.val.as_ref(), val.dim)
        )));
    }
    if ood_dim != train.dim {
        return Err(Error::Msg(format!(
            "the data files have different vector dimensions: data.train {} has {}, {}; \
             give files of one encoder",
            cfg.data.train.display(),
            train.dim,
            named("data.ood", cfg.data.ood.as_ref(), ood_dim)
        )));
    }
    Ok(LvmData {
        train,
        val,
        ood,
        held,
    })
}

/// Tells `progress` what is trained on: the kind, the window counts and
/// the vectors' width.
fn describe(cfg: &LvmConfig, train: &VectorWindows, val: &VectorWindows, progress: &dyn Progress) {
    let c = cfg.data.context;
    let short = (0..train.len()).filter(|&i| !train.is_full(i)).count();
    progress.note(&format!(
        "training {} LVM: {} train{} / {} validation windows, dimension {}, context {c}",
        cfg.model.kind,
        train.len(),
        if short > 0 {
            format!(" ({short} of them short)")
        } else {
            String::new()
        },
        val.len(),
        train.dim
    ));
}

/// What the user should know about the data beyond the counts: kept in
/// the report's warnings as well as shown.
fn data_warnings(
    train: &VectorWindows,
    val: &VectorWindows,
    progress: &dyn Progress,
) -> Vec<String> {
    let shared = shared_windows(train, val);
    let mut warnings = Vec::new();
    if shared > 0 {
        warnings.push(format!(
            "{shared} of {} validation windows are also training windows (the same context and \
             target vectors): the validation figures are not of unseen text; is an article in \
             the data twice, under two ids?",
            val.len()
        ));
    }
    for w in &warnings {
        progress.note(&format!("note: {w}"));
    }
    warnings
}

/// How many windows of `val` are, vector for vector, windows of `train`.
fn shared_windows(train: &VectorWindows, val: &VectorWindows) -> usize {
    use std::collections::HashMap;
    use std::hash::{DefaultHasher, Hash, Hasher};
    let (c, d) = (train.context, train.dim);
    if val.context != c || val.dim != d {
        return 0;
    }
    // A window's vectors, the context's then the target.
    fn vectors(w: &VectorWindows, i: usize) -> impl Iterator<Item = &[f32]> {
        w.context_vectors(i).chain(std::iter::once(w.target_of(i)))
    }
    let key = |w: &VectorWindows, i: usize| {
        let mut h = DefaultHasher::new();
        vectors(w, i)
            .flatten()
            .for_each(|v| v.to_bits().hash(&mut h));
        h.finish()
    };
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..train.len() {
        seen.entry(key(train, i)).or_default().push(i);
    }
    let same = |j: usize, i: usize| {
        vectors(train, j)
            .zip(vectors(val, i))
            .all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()))
    };
    (0..val.len())
        .filter(|&i| {
            seen.get(&key(val, i))
                .is_some_and(|js| js.iter().any(|&j| same(j, i)))
        })
        .count()
}

/// What [`train_to_dir`] made: the report written to `report.json`, and
/// which epoch of how many the saved weights are from.
#[derive(Debug)]
pub struct Trained {
    pub report: LvmReport,
    pub best_epoch: usize,
    pub epochs: usize,
}

/// Trains the LVM of `cfg` into the model directory `out`: the data read
/// and split by article (unless `data.val` is given; the held-out
/// articles go into `split.json` with the file's SHA-256), the fit, the
/// best weights restored and scored against both baselines in and out of
/// distribution, and the directory written as a unit.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// use recur_core::lvm_config::LvmConfig;
/// let cfg = LvmConfig::from_file("configs/lvm-text.yaml".as_ref())?;
/// let dev = candle_core::Device::Cpu;
/// let t = recur_train::lvm::train_to_dir(&cfg, "runs/lvm".as_ref(), &dev, &recur_core::progress::SILENT)?;
/// println!("val cosine {:.4}", t.report.scores.val.cosine_mean);
/// # Ok(())
/// # }
/// ```
pub fn train_to_dir(
    cfg: &LvmConfig,
    out: &Path,
    dev: &Device,
    progress: &dyn Progress,
) -> Result<Trained> {
    train_to_dir_recording(cfg, out, dev, progress, None)
}

/// [`train_to_dir`], with `data.train` recorded in the directory's
/// `config.yaml` and `split.json` as `recorded` instead of its path: the
/// Python API trains on arrays through a temporary file, whose path would
/// name nothing once training returns.
pub fn train_to_dir_recording(
    cfg: &LvmConfig,
    out: &Path,
    dev: &Device,
    progress: &dyn Progress,
    recorded: Option<&Path>,
) -> Result<Trained> {
    // A config changed in code meets the rules a file does (a batch size
    // of 0 divided by zero).
    cfg.validate("the LVM config")?;
    let _hold = recur_deploy::model_dir::begin_out_dir(out, recur_deploy::model_dir::DirKind::Lvm)?;
    let LvmData {
        train,
        val,
        ood,
        held,
    } = load_data(cfg, progress)?;
    describe(cfg, &train, &val, progress);
    let warnings = data_warnings(&train, &val, progress);
    let fit = fit(cfg, &train, &val, dev, progress)?;
    // The last epoch's weights, for final.safetensors, before the best
    // epoch's are put back (final was the best copy a second time).
    let last = fit.model.snapshot()?;
    fit.model.restore(&fit.best)?;
    let mut report = recur_deploy::lvm_eval::report(&fit.model, &val, ood.as_ref(), dev)?;
    report.best_epoch = Some(fit.best_epoch);
    report.warnings = warnings;
    let (mut saved, mut held) = (cfg.clone(), held);
    if let Some(r) = recorded {
        saved.data.train = r.to_path_buf();
        if let Some(h) = held.as_mut() {
            h.data = r.to_path_buf();
        }
    }
    // A stop asked for after the last batch (a progress callback that
    // raised at the epoch's last events, a Ctrl-C while the report was
    // scored) still stops before anything is written: the directory was
    // replaced and the exception raised after it.
    if progress.stop_requested() {
        return Err(recur_core::progress::interrupted());
    }
    recur_deploy::model_dir::save_lvm_dir(
        out,
        &saved,
        &fit.model,
        &fit.best,
        &last,
        &fit.history,
        &report,
        held.as_ref(),
    )?;
    Ok(Trained {
        report,
        best_epoch: fit.best_epoch,
        epochs: fit.history.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(contexts: Vec<f32>, targets: Vec<f32>) -> VectorWindows {
        VectorWindows::from_flat(contexts, targets, 2, 2)
    }

    #[test]
    fn validation_windows_that_are_training_windows_are_counted() {
        // Windows of context 2, dimension 2: the first validation window
        // is training's second, bit for bit; the second differs in its
        // target alone, the third in one context value (-0.0 against 0.0).
        let train = windows(
            vec![1., 2., 3., 4., 5., 6., 7., 8., 0., 1., 2., 3.],
            vec![9., 9., 8., 8., 7., 7.],
        );
        let val = windows(
            vec![5., 6., 7., 8., 5., 6., 7., 8., -0., 1., 2., 3.],
            vec![8., 8., 8., 7.5, 7., 7.],
        );
        assert_eq!(shared_windows(&train, &val), 1);
        assert_eq!(shared_windows(&train, &train), 3);
        let none = windows(vec![0.5; 4], vec![0.5; 2]);
        assert_eq!(shared_windows(&train, &none), 0);
        let notes = data_warnings(&train, &val, &recur_core::progress::SILENT);
        assert!(notes[0].starts_with("1 of 3 validation windows are also training windows"));
    }

    #[test]
    fn reversed_windows_train_only_and_never_from_a_held_out_article() {
        // 30 articles of 3 to 9 chunks of width 2; vector = (article + 1,
        // chunk), never zero.
        let dev = Device::Cpu;
        let (mut v, mut a, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for art in 0..30i64 {
            for ch in 0..3 + art % 7 {
                v.extend([art as f32 + 1.0, ch as f32]);
                a.push(art);
                c.push(ch);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunks.npz");
        Tensor::write_npz(
            &[
                ("vectors", &Tensor::from_vec(v, (a.len(), 2), &dev).unwrap()),
                ("article_indices", &Tensor::new(a.as_slice(), &dev).unwrap()),
                ("chunk_indices", &Tensor::new(c.as_slice(), &dev).unwrap()),
            ],
            &path,
        )
        .unwrap();
        let mut cfg = LvmConfig::default();
        cfg.data.train = path.clone();
        cfg.data.context = 4;
        cfg.data.val_fraction = 0.2;
        for min_context in [None, Some(2)] {
            cfg.data.min_context = min_context;
            cfg.data.reverse = false;
            let fwd = load_data(&cfg, &recur_core::progress::SILENT).unwrap();
            cfg.data.reverse = true;
            let both = load_data(&cfg, &recur_core::progress::SILENT).unwrap();
            // Validation is the forward windows of the same held-out articles.
            let all = |w: &VectorWindows| w.gather(&(0..w.len()).collect::<Vec<_>>());
            assert_eq!(all(&both.val), all(&fwd.val));
            let held = &both.held.as_ref().unwrap().val_articles;
            assert_eq!(held, &fwd.held.as_ref().unwrap().val_articles);
            // Training: the forward windows first, then one backward window
            // per forward one of each training article (as many targets at
            // each end), none of a held-out article.
            let n = fwd.train.len();
            let first: Vec<usize> = (0..n).collect();
            assert_eq!(both.train.gather(&first), all(&fwd.train));
            assert_eq!(both.train.len(), 2 * n);
            for i in n..2 * n {
                let art = both.train.articles.as_ref().unwrap()[i];
                assert!(!held.contains(&art), "window {i} of held-out article {art}");
                // Backwards: the last context vector is the chunk after the target.
                let (ctx, t) = (both.train.context_of(i), both.train.target_of(i));
                assert_eq!((ctx[6], ctx[7]), (t[0], t[1] + 1.0), "window {i}");
            }
            assert_eq!(both.train.real.is_some(), min_context.is_some());
        }
        // A ready-window file cannot be reversed: the error names the option.
        let ready = dir.path().join("ready.npz");
        Tensor::write_npz(
            &[
                (
                    "context_sequences",
                    &Tensor::zeros((20, 4, 2), candle_core::DType::F32, &dev).unwrap(),
                ),
                (
                    "target_vectors",
                    &Tensor::ones((20, 2), candle_core::DType::F32, &dev).unwrap(),
                ),
            ],
            &ready,
        )
        .unwrap();
        cfg.data.train = ready;
        cfg.data.min_context = None;
        let e = load_data(&cfg, &recur_core::progress::SILENT)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ready.npz") && e.contains("data.reverse"), "{e}");
        // A file of one article leaves nothing to train on once it is held
        // out (an untrained model was written with a training loss of 0),
        // and validation on the training file measures nothing: both refused.
        let one = dir.path().join("one.npz");
        let n = 12;
        Tensor::write_npz(
            &[
                (
                    "vectors",
                    &Tensor::ones((n, 2), candle_core::DType::F32, &dev).unwrap(),
                ),
                (
                    "article_indices",
                    &Tensor::new(vec![0i64; n].as_slice(), &dev).unwrap(),
                ),
                (
                    "chunk_indices",
                    &Tensor::new((0..n as i64).collect::<Vec<_>>().as_slice(), &dev).unwrap(),
                ),
            ],
            &one,
        )
        .unwrap();
        cfg.data.train = one;
        cfg.data.reverse = false;
        let e = load_data(&cfg, &recur_core::progress::SILENT)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("one.npz") && e.contains("0 training and 8 validation"),
            "{e}"
        );
        cfg.data.train = path.clone();
        cfg.data.val = Some(path);
        let e = load_data(&cfg, &recur_core::progress::SILENT)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("data.val") && e.contains("is the training file"),
            "{e}"
        );
    }

    #[test]
    fn info_nce_is_the_cross_entropy_of_each_row_against_its_batch() {
        let dev = Device::Cpu;
        // Three unit predictions, three targets (not unit: the term
        // normalises them), tau 0.5.
        let y = [[1.0f32, 0.0], [0.6, 0.8], [0.0, 1.0]];
        let t = [[2.0f32, 0.0], [0.0, 3.0], [1.0, 1.0]];
        let tau = 0.5;
        let unit = |v: [f32; 2]| {
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            [v[0] / n, v[1] / n]
        };
        let mut want = 0.0f64;
        for (i, yi) in y.iter().enumerate() {
            let logit = |j: usize| {
                let (a, b) = (unit(*yi), unit(t[j]));
                ((a[0] * b[0] + a[1] * b[1]) as f64) / tau
            };
            let lse = (0..3).map(|j| logit(j).exp()).sum::<f64>().ln();
            want += (lse - logit(i)) / 3.0;
        }
        let yt = Tensor::new(&y, &dev).unwrap();
        let tt = Tensor::new(&t, &dev).unwrap();
        let got = info_nce(&yt, &tt, tau).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // With the weight at 0 the loss is the cosine loss alone; above 0
        // the term is added with its weight.
        let mut cfg = LvmTrainingConfig {
            loss: "cosine".into(),
            ..Default::default()
        };
        let plain = loss_of(&cfg, &yt, &tt).unwrap().to_scalar::<f32>().unwrap() as f64;
        cfg.infonce_weight = 0.25;
        cfg.infonce_temperature = tau;
        let with = loss_of(&cfg, &yt, &tt).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!(
            (with - plain - 0.25 * want).abs() < 1e-5,
            "{with} vs {plain} + 0.25 * {want}"
        );
    }

    #[test]
    fn a_batch_too_large_for_memory_is_refused_before_training() {
        let mut cfg = LvmConfig::default();
        cfg.training.batch_size = 1_000_000_000;
        // The batch is the training set at most: 20,000 windows of context
        // 5 and 384-wide vectors through 4 layers of 512 fit (about 6.7
        // GB), 120,000 do not.
        assert!(check_batch_memory(&cfg, 20_000, 384).is_ok());
        let e = check_batch_memory(&cfg, 120_000, 384)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("120000 windows") && e.contains("model's sizes"),
            "{e}"
        );
        // InfoNCE's scores are batch x batch: 14 GB in one allocation for
        // a model that is small otherwise.
        cfg.model.d_model = 4;
        cfg.model.num_layers = 1;
        assert!(check_batch_memory(&cfg, 60_000, 4).is_ok());
        cfg.training.infonce_weight = 0.5;
        let e = check_batch_memory(&cfg, 60_000, 4).unwrap_err().to_string();
        assert!(
            e.contains("training.batch_size")
                && e.contains("60000 windows")
                && e.contains("InfoNCE"),
            "{e}"
        );
        cfg.training.batch_size = 32;
        assert!(check_batch_memory(&cfg, 60_000, 4).is_ok());
        // A wide transformer's attention grows with the context.
        cfg.training.infonce_weight = 0.0;
        cfg.model.d_model = 512;
        cfg.model.kind = recur_core::lvm_config::LvmKind::Transformer;
        cfg.data.context = 8192;
        cfg.model.heads = 64;
        cfg.model.num_layers = 8;
        cfg.training.batch_size = 64;
        assert!(check_batch_memory(&cfg, 1000, 384).is_err());
    }
}
