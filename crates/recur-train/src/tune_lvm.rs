//! `recur tune` for Job B's latent vector models: learning rate, weight
//! decay and dropout (and the width and depth where the config's `tune:`
//! section gives ranges) for the TPE search and median pruning of
//! `search`, the objective the validation cosine of the kept weights on
//! the held-out articles. The data is read and split once, as `recur lvm
//! train` splits it, so every trial is scored on the same windows and the
//! best config trains to the same figure.

use crate::lvm::{fit_watched, load_data, LvmData};
use crate::search::{search, Objective, Outcome, Pruning, Trial};
use candle_core::Device;
use recur_core::lvm_config::{LvmConfig, LvmKind, LvmTuneConfig};
use recur_core::progress::{Progress, StopOnly};
use recur_core::Result;
use recur_deploy::lvm_eval::{baseline_predict, stats};
use recur_models::{Baseline, LvmArch};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One point of an LVM search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LvmParams {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub dropout: f64,
    pub d_model: usize,
    pub num_layers: usize,
}

/// A finished trial of an LVM search.
pub type LvmTrial = Trial<LvmParams>;

/// The column heads of an `LvmTrial`'s one-line `Display`.
pub const LVM_TRIAL_HEADER: &str =
    "trial        lr  w_decay dropout d_model layers  state    val cos epochs seconds";

impl std::fmt::Display for Trial<LvmParams> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let p = &self.params;
        write!(
            f,
            "{:>5} {:>9.2e} {:>8.2e} {:>7.3} {:>7} {:>6}  {:<8} {:>7} {:>6} {:>7.1}",
            self.number,
            p.learning_rate,
            p.weight_decay,
            p.dropout,
            p.d_model,
            p.num_layers,
            self.state.name(),
            self.shown_value(),
            self.curve.len(),
            self.seconds
        )?;
        match &self.error {
            Some(e) => write!(f, "  {e}"),
            None => Ok(()),
        }
    }
}

/// The config with `p` in place of its own values.
pub fn with_params(cfg: &LvmConfig, p: &LvmParams) -> LvmConfig {
    let mut c = cfg.clone();
    c.training.learning_rate = p.learning_rate;
    c.training.weight_decay = p.weight_decay;
    if c.model.kind.has_dropout() {
        c.model.dropout = Some(p.dropout);
    }
    c.model.d_model = p.d_model;
    c.model.num_layers = p.num_layers;
    c
}

struct LvmSearch<'a> {
    cfg: &'a LvmConfig,
    space: LvmTuneConfig,
    data: &'a LvmData,
    dev: &'a Device,
    /// The caller's reporter, asked by every trial whether to stop (the
    /// trials train silently, and could not be stopped).
    stop: &'a dyn Progress,
}

impl LvmSearch<'_> {
    /// Whether dropout is searched: only the kinds that apply it.
    fn dropout_searched(&self) -> bool {
        self.cfg.model.kind.has_dropout()
    }

    fn searched(&self) -> (bool, bool) {
        (
            self.space.d_model.is_some(),
            self.space.num_layers.is_some(),
        )
    }
}

/// A range of whole numbers, each half a step either side (as Optuna
/// draws them: the low end had half the width of the others).
fn ln_int(r: [usize; 2]) -> (f64, f64) {
    ((r[0] as f64 - 0.5).ln(), (r[1] as f64 + 0.5).ln())
}

impl Objective for LvmSearch<'_> {
    type Params = LvmParams;

    fn fingerprint(&self) -> Result<String> {
        // The data by where it is, however the config was reached.
        let mut c = self.cfg.clone();
        c.tune = None;
        let d = &mut c.data;
        for p in std::iter::once(&mut d.train)
            .chain(d.val.as_mut())
            .chain(d.ood.as_mut())
        {
            *p = recur_core::fsx::resolve(p).unwrap_or(p.clone());
        }
        let d = &c.data;
        let files = std::iter::once(&d.train).chain(&d.val).chain(&d.ood);
        crate::search::fingerprint_of(c.to_yaml(), files)
    }

    fn bounds(&self) -> Vec<(f64, f64)> {
        let s = &self.space;
        let mut b = vec![
            (s.learning_rate[0].ln(), s.learning_rate[1].ln()),
            (s.weight_decay[0].ln(), s.weight_decay[1].ln()),
        ];
        if self.dropout_searched() {
            let [lo, hi] = s.dropout_range();
            b.push((lo, hi));
        }
        b.extend(s.d_model.map(ln_int));
        b.extend(s.num_layers.map(|[a, z]| (a as f64 - 0.5, z as f64 + 0.5)));
        b
    }

    fn encode(&self, p: &LvmParams) -> Vec<f64> {
        let (dm, nl) = self.searched();
        let m = &self.cfg.model;
        let mut v = vec![p.learning_rate.ln(), p.weight_decay.ln()];
        if self.dropout_searched() {
            v.push(p.dropout);
        }
        if dm {
            v.push((p.d_model as f64).ln());
        } else if p.d_model != m.d_model {
            // A trial of a size no longer searched: outside the space (a
            // resume after d_model left `tune:` took trials of other
            // widths as the config's own).
            v.push(f64::NAN);
        }
        if nl {
            v.push(p.num_layers as f64);
        } else if p.num_layers != m.num_layers {
            v.push(f64::NAN);
        }
        v
    }

    fn decode(&self, x: &[f64]) -> LvmParams {
        let s = &self.space;
        let m = &self.cfg.model;
        let searched = self.dropout_searched();
        let mut rest = x[if searched { 3 } else { 2 }..].iter();
        let d_model = match s.d_model {
            Some([a, b]) => {
                let d = (rest.next().copied().unwrap_or(0.0).exp().round() as usize).clamp(a, b);
                if m.kind == LvmKind::Transformer && m.heads > 0 {
                    // The nearest multiple of the heads inside the range
                    // (validation made sure there is one).
                    let down = d / m.heads * m.heads;
                    [down, down + m.heads]
                        .into_iter()
                        .filter(|&x| (a..=b).contains(&x))
                        .min_by_key(|&x| x.abs_diff(d))
                        .unwrap_or(d)
                } else {
                    d
                }
            }
            None => m.d_model,
        };
        let num_layers = match s.num_layers {
            Some([a, b]) => (rest.next().copied().unwrap_or(0.0).round() as usize).clamp(a, b),
            None => m.num_layers,
        };
        LvmParams {
            learning_rate: x[0].exp().clamp(s.learning_rate[0], s.learning_rate[1]),
            weight_decay: x[1].exp().clamp(s.weight_decay[0], s.weight_decay[1]),
            dropout: if searched {
                let [lo, hi] = s.dropout_range();
                x[2].clamp(lo, hi)
            } else {
                self.start().dropout
            },
            d_model,
            num_layers,
        }
    }

    fn start(&self) -> LvmParams {
        let (m, t) = (&self.cfg.model, &self.cfg.training);
        // Where the config leaves dropout out, the kind's default.
        let dropout = m.dropout.unwrap_or_else(|| {
            LvmArch::new(m.kind, self.data.train.dim, m.d_model, m.num_layers, 1).dropout
        });
        LvmParams {
            learning_rate: t.learning_rate,
            weight_decay: t.weight_decay,
            dropout,
            d_model: m.d_model,
            num_layers: m.num_layers,
        }
    }

    fn run(&self, p: &LvmParams, epoch: &mut dyn FnMut(f64) -> bool) -> Result<Outcome> {
        let c = with_params(self.cfg, p);
        let d = self.data;
        let fit = fit_watched(
            &c,
            &d.train,
            &d.val,
            self.dev,
            &StopOnly(self.stop),
            &mut |rec| epoch(rec.val_cosine),
        )?;
        Ok(Outcome {
            value: fit.history[fit.best_epoch - 1].val_cosine,
            best_epoch: fit.best_epoch,
        })
    }
}

/// What an LVM search found.
#[derive(Debug, Clone)]
pub struct LvmTuneResult {
    pub trials: Vec<LvmTrial>,
    pub best: LvmTrial,
    pub resumed: usize,
    /// The context mean's validation cosine on the same windows, the
    /// baseline a model has to beat.
    pub context_mean: f64,
    /// The config with the best trial's parameters, its data paths made
    /// absolute, as written to `best_path` (`OUT/best.yaml`).
    pub best_config: LvmConfig,
    pub best_path: PathBuf,
}

impl std::fmt::Display for LvmTuneResult {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let yaml = self.best_config.to_yaml();
        crate::search::write_table(f, LVM_TRIAL_HEADER, &self.trials, &yaml)?;
        let path = self.best_path.display();
        let start = self.trials.iter().find(|t| t.number == 0);
        writeln!(
            f,
            "best: trial {} with validation cosine {:.4} ({:+.4} over the context mean's {:.4}){}; its config is {path} (recur lvm train --config {path})",
            self.best.number,
            self.best.value,
            self.best.value - self.context_mean,
            self.context_mean,
            start.map_or(String::new(), |s| format!(
                "; trial 0, the config as given: {}",
                s.start_shown()
            )),
        )
    }
}

/// Searches the LVM config `cfg` until `out/trials.json` holds `n_trials`
/// trials, `jobs` at a time; `report` is called with each finished trial.
/// The best trial's config is written to `out/best.yaml`, ready for
/// `recur lvm train`.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// use recur_core::lvm_config::LvmConfig;
/// let cfg = LvmConfig::from_file("configs/lvm-text-mlp.yaml".as_ref())?;
/// let dev = candle_core::Device::Cpu;
/// let each = |t: &recur_train::tune_lvm::LvmTrial| println!("{t}");
/// let r = recur_train::tune_lvm::tune_lvm(&cfg, 20, 1, "runs/tune-mlp".as_ref(), &dev, &recur_core::progress::SILENT, &each)?;
/// println!("best cosine {:.4}, config in {}", r.best.value, r.best_path.display());
/// # Ok(())
/// # }
/// ```
pub fn tune_lvm(
    cfg: &LvmConfig,
    n_trials: usize,
    jobs: usize,
    out: &Path,
    dev: &Device,
    progress: &dyn Progress,
    report: &(dyn Fn(&LvmTrial) + Sync),
) -> Result<LvmTuneResult> {
    cfg.validate("the LVM config")?;
    // One search at a time writes `out`: two interleaved their trials
    // and left a search.json of one beside the trials of the other.
    let _hold = recur_core::dirwrite::hold_outputs(out)?;
    let space = cfg.tune.clone().unwrap_or_default();
    space.check_searchable(&cfg.model)?;
    let pruning = Pruning {
        startup_trials: space.startup_trials,
        prune_after_trials: space.prune_after_trials,
        warmup_epochs: space.warmup_epochs,
    };
    let data = load_data(cfg, progress)?;
    let cm = baseline_predict(Baseline::ContextMean, &data.val, dev)?;
    let context_mean = stats(&cm, &data.val.targets(), data.val.dim).cosine_mean;
    progress.note(&format!(
        "searching {} trials of a {} LVM on {} training / {} validation windows (context mean {:.4})",
        n_trials,
        cfg.model.kind,
        data.train.len(),
        data.val.len(),
        context_mean
    ));
    let obj = LvmSearch {
        cfg,
        space,
        data: &data,
        dev,
        stop: progress,
    };
    let s = search(
        &obj,
        &pruning,
        cfg.training.seed,
        n_trials,
        jobs,
        out,
        report,
    )?;
    let mut best_config = with_params(cfg, &s.best.params);
    // best.yaml lives in another folder: its data paths must not be relative.
    let d = &mut best_config.data;
    for p in std::iter::once(&mut d.train)
        .chain(d.val.as_mut())
        .chain(d.ood.as_mut())
    {
        if let Ok(abs) = std::fs::canonicalize(&*p) {
            *p = abs;
        }
    }
    let best_path = out.join("best.yaml");
    recur_core::fsx::write_atomic(&best_path, best_config.to_yaml().as_bytes())?;
    Ok(LvmTuneResult {
        trials: s.trials,
        best: s.best,
        resumed: s.resumed,
        context_mean,
        best_config,
        best_path,
    })
}
