//! `recur tune` for the Job A classifier (SYSTEM.md Job A, step 14): its
//! four parameters (sequence length, hidden size and learning rate on a
//! log scale, dropout) for the TPE search and median pruning of `search`,
//! the objective the validation ROC AUC of the kept weights. Every
//! finished trial is written at once (atomically) to `trials.json`, which
//! a later run reads and goes on from, so a killed run loses only the
//! trials it was running.

use crate::search::{search, Objective, Outcome, Pruning};
pub use crate::search::{should_prune, Sampler, State};
use crate::trainer::{fit_watched, FitOptions};
use candle_core::Device;
use recur_core::config::{Config, TuneConfig};
use recur_core::progress::{Progress, StopOnly};
use recur_core::Result;
use recur_data::prepare_training;
use recur_deploy::report::EpochRecord;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One point of the search space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub sequence_length: usize,
    pub hidden_size: usize,
    pub learning_rate: f64,
    pub dropout: f64,
}

/// A finished trial of the classifier's search.
pub type Trial = crate::search::Trial<Params>;

/// The four parameters in the space TPE searches (logs where log-scaled).
fn encode(p: &Params) -> [f64; 4] {
    [
        (p.sequence_length as f64).ln(),
        (p.hidden_size as f64).ln(),
        p.learning_rate.ln(),
        p.dropout,
    ]
}

fn decode(v: [f64; 4], s: &TuneConfig) -> Params {
    let int = |x: f64, r: [usize; 2]| (x.exp().round() as usize).clamp(r[0], r[1]);
    Params {
        sequence_length: int(v[0], s.sequence_length),
        hidden_size: int(v[1], s.hidden_size),
        learning_rate: v[2].exp().clamp(s.learning_rate[0], s.learning_rate[1]),
        dropout: v[3].clamp(s.dropout[0], s.dropout[1]),
    }
}

fn bounds(s: &TuneConfig) -> [(f64, f64); 4] {
    // Each whole number takes the same width, half a step either side, as
    // Optuna draws them: the low end had half of it ([a, a + 0.5)).
    let ln = |r: [usize; 2]| ((r[0] as f64 - 0.5).ln(), (r[1] as f64 + 0.5).ln());
    [
        ln(s.sequence_length),
        ln(s.hidden_size),
        (s.learning_rate[0].ln(), s.learning_rate[1].ln()),
        (s.dropout[0], s.dropout[1]),
    ]
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct TuneResult {
    pub trials: Vec<Trial>,
    pub best: Trial,
    pub resumed: usize,
    /// The config with the best trial's parameters, its data path made
    /// absolute, as written to `best_path` (`OUT/best.yaml`).
    pub best_config: Config,
    pub best_path: std::path::PathBuf,
}

/// The column heads of `Trial`'s one-line `Display`.
pub const TRIAL_HEADER: &str =
    "trial  seq_len hidden        lr dropout  state    val AUC epochs seconds";

/// One line under `TRIAL_HEADER`.
impl std::fmt::Display for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{:>5}  {:>7} {:>6} {:>9.2e} {:>7.3}  {:<8} {:>7} {:>6} {:>7.1}",
            self.number,
            self.params.sequence_length,
            self.params.hidden_size,
            self.params.learning_rate,
            self.params.dropout,
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

/// Every trial, the best config and where it was written.
impl std::fmt::Display for TuneResult {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let yaml = self.best_config.to_yaml();
        crate::search::write_table(f, TRIAL_HEADER, &self.trials, &yaml)?;
        let path = self.best_path.display();
        let start = self.trials.iter().find(|t| t.number == 0);
        writeln!(
            f,
            "best: trial {} with validation AUC {:.4}{}; its config is {path} (recur train --config {path})",
            self.best.number,
            self.best.value,
            start.map_or(String::new(), |s| format!(
                " (trial 0, the config as given: {})",
                s.start_shown()
            )),
        )
    }
}

fn with_params(cfg: &Config, p: &Params) -> Config {
    let mut c = cfg.clone();
    c.model.sequence_length = p.sequence_length;
    c.model.hidden_size = p.hidden_size;
    c.training.learning_rate = p.learning_rate;
    c.model.dropout = p.dropout;
    c
}

/// The base config with the best trial's parameters.
pub fn best_config(cfg: &Config, best: &Trial) -> Config {
    with_params(cfg, &best.params)
}

/// The classifier's search: each trial prepares its own windows (the
/// sequence length changes them) and trains with early stopping.
struct ClassifierSearch<'a> {
    cfg: &'a Config,
    space: TuneConfig,
    dev: &'a Device,
    /// The caller's reporter, asked by every trial whether to stop (the
    /// trials train silently).
    stop: &'a dyn Progress,
}

impl Objective for ClassifierSearch<'_> {
    type Params = Params;
    fn fingerprint(&self) -> Result<String> {
        // The data by where it is, however the config was reached.
        let mut c = self.cfg.clone();
        c.tune = None;
        if let Some(p) = c.data.path.as_mut() {
            *p = recur_core::fsx::resolve(p).unwrap_or(p.clone());
        }
        crate::search::fingerprint_of(c.to_yaml_as_given(), &c.data.path)
    }
    fn bounds(&self) -> Vec<(f64, f64)> {
        bounds(&self.space).to_vec()
    }
    fn encode(&self, p: &Params) -> Vec<f64> {
        encode(p).to_vec()
    }
    fn decode(&self, x: &[f64]) -> Params {
        decode([x[0], x[1], x[2], x[3]], &self.space)
    }
    fn start(&self) -> Params {
        Params {
            sequence_length: self.cfg.model.sequence_length,
            hidden_size: self.cfg.model.hidden_size,
            learning_rate: self.cfg.training.learning_rate,
            dropout: self.cfg.model.dropout,
        }
    }
    fn run(&self, p: &Params, epoch: &mut dyn FnMut(f64) -> bool) -> Result<Outcome> {
        let c = with_params(self.cfg, p);
        let prep = prepare_training(&c)?;
        // What best.yaml's training will refuse (an XGBoost model without
        // names, an input named twice) fails each trial, not the search's end.
        crate::job_a::check_trees(&prep, &c)?;
        let r = fit_watched(
            &prep,
            &c,
            self.dev,
            &FitOptions {
                progress: &StopOnly(self.stop),
            },
            &mut |rec: &EpochRecord| epoch(rec.val_auc.unwrap_or(0.5)),
        )?;
        Ok(Outcome {
            value: r.history[r.best_epoch - 1].val_auc.unwrap_or(0.5),
            best_epoch: r.best_epoch,
        })
    }
}

/// Runs the search until `out/trials.json` holds `n_trials` trials, `jobs`
/// at a time; `report` is called with each finished trial. The best
/// trial's config is written to `out/best.yaml`, ready for `recur train`.
/// `progress` is asked, between every trial's batches, whether to stop: a stopped search ends with
/// [`recur_core::Error::Interrupted`], its finished trials kept in
/// `out/trials.json` for the next run to go on from.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// let cfg = recur_core::config::Config::from_file("configs/rainfall.yaml".as_ref())?;
/// let dev = candle_core::Device::Cpu;
/// let each = |t: &recur_train::tune::Trial| println!("{t}");
/// let silent = &recur_core::progress::SILENT;
/// let r = recur_train::tune::tune(&cfg, 20, 1, "runs/tune".as_ref(), &dev, silent, &each)?;
/// println!("best AUC {:.4}, config in {}", r.best.value, r.best_path.display());
/// # Ok(())
/// # }
/// ```
pub fn tune(
    cfg: &Config,
    n_trials: usize,
    jobs: usize,
    out: &Path,
    dev: &Device,
    progress: &dyn Progress,
    report: &(dyn Fn(&Trial) + Sync),
) -> Result<TuneResult> {
    // One search at a time writes `out`: two interleaved their trials
    // and left a search.json of one beside the trials of the other.
    // Checked once, before the folder is touched: each trial would fail
    // alone on a config changed in code that a file could not hold.
    cfg.validate("the config")?;
    let _hold = recur_core::dirwrite::hold_outputs(out)?;
    let space = cfg.tune.clone().unwrap_or_default();
    let pruning = Pruning {
        startup_trials: space.startup_trials,
        prune_after_trials: space.prune_after_trials,
        warmup_epochs: space.warmup_epochs,
    };
    let obj = ClassifierSearch {
        cfg,
        space,
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
    let mut best_config = best_config(cfg, &s.best);
    // best.yaml lives in another folder: its data path must not be relative.
    if let Some(p) = best_config.data.path.as_mut() {
        if let Ok(abs) = std::fs::canonicalize(&*p) {
            *p = abs;
        }
    }
    let best_path = out.join("best.yaml");
    recur_core::fsx::write_atomic(&best_path, best_config.to_yaml().as_bytes())?;
    Ok(TuneResult {
        best_config,
        best_path,
        trials: s.trials,
        best: s.best,
        resumed: s.resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every whole number of a range takes the same width of the sampled
    /// line, half a step either side (the low end had half of it), and
    /// both ends decode back inside the range.
    #[test]
    fn whole_numbers_are_drawn_evenly() {
        let s = TuneConfig {
            sequence_length: [4, 5],
            hidden_size: [1, 2],
            ..Default::default()
        };
        let b = bounds(&s);
        assert!((b[0].0 - 3.5f64.ln()).abs() < 1e-12 && (b[0].1 - 5.5f64.ln()).abs() < 1e-12);
        assert!((b[1].0 - 0.5f64.ln()).abs() < 1e-12 && (b[1].1 - 2.5f64.ln()).abs() < 1e-12);
        let edge = |v0: f64, v1: f64| {
            let p = decode([v0, v1, s.learning_rate[0].ln(), s.dropout[0]], &s);
            (p.sequence_length, p.hidden_size)
        };
        assert_eq!(edge(b[0].0, b[1].0), (4, 1));
        assert_eq!(edge(b[0].1, b[1].1), (5, 2));
    }

    /// A smooth toy objective with its minimum inside the space.
    fn toy(p: &Params) -> f64 {
        let l = |x: f64, c: f64| (x.ln() - c.ln()).powi(2);
        l(p.learning_rate, 2e-3)
            + l(p.hidden_size as f64, 48.0)
            + l(p.sequence_length as f64, 20.0)
            + 4.0 * (p.dropout - 0.2).powi(2)
    }

    fn sampler(space: &TuneConfig, seed: u64) -> Sampler {
        Sampler::new(&bounds(space), space.startup_trials, seed).unwrap()
    }

    fn ask(s: &mut Sampler, space: &TuneConfig, i: usize) -> Params {
        let x = s.ask(i).unwrap();
        decode([x[0], x[1], x[2], x[3]], space)
    }

    fn tell(s: &mut Sampler, p: &Params, v: f64) {
        s.tell(&encode(p), v).unwrap();
    }

    fn best_of(space: &TuneConfig, seed: u64, budget: usize) -> f64 {
        let mut s = sampler(space, seed);
        let mut best = f64::INFINITY;
        for i in 0..budget {
            let p = ask(&mut s, space, i);
            let v = toy(&p);
            tell(&mut s, &p, v);
            best = best.min(v);
        }
        best
    }

    #[test]
    fn tpe_beats_random_search_with_the_same_budget() {
        let tpe = TuneConfig::default();
        let random = TuneConfig {
            startup_trials: usize::MAX,
            ..Default::default()
        };
        let (mut a, mut b) = (0.0, 0.0);
        for seed in 0..20 {
            a += best_of(&tpe, seed, 60);
            b += best_of(&random, seed, 60);
        }
        assert!(
            a < 0.7 * b,
            "TPE mean best {} vs random {}",
            a / 20.0,
            b / 20.0
        );
    }

    #[test]
    fn a_sampler_rebuilt_from_its_history_asks_what_the_first_would_have() {
        let space = TuneConfig::default();
        let mut a = sampler(&space, 7);
        let mut history = Vec::new();
        for i in 0..30 {
            let p = ask(&mut a, &space, i);
            tell(&mut a, &p, toy(&p));
            history.push(p);
        }
        // "Killed" after 12 trials (startup and TPE both covered), resumed.
        for cut in [3, 12] {
            let mut b = sampler(&space, 7);
            for p in &history[..cut] {
                tell(&mut b, p, toy(p));
            }
            for (i, want) in history.iter().enumerate().skip(cut).take(5) {
                let p = ask(&mut b, &space, i);
                assert_eq!(
                    format!("{p:?}"),
                    format!("{want:?}"),
                    "trial {i} after {cut}"
                );
                tell(&mut b, &p, toy(&p));
            }
        }
        let distinct: std::collections::HashSet<String> =
            history.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(distinct.len(), history.len(), "a point was asked twice");
    }

    #[test]
    fn points_stay_inside_the_space() {
        let space = TuneConfig::default();
        let mut s = sampler(&space, 3);
        for i in 0..40 {
            let p = ask(&mut s, &space, i);
            assert!(
                (8..=64).contains(&p.sequence_length) && (16..=128).contains(&p.hidden_size),
                "{p:?}"
            );
            assert!(
                (1e-4..=1e-2).contains(&p.learning_rate) && (0.0..=0.5).contains(&p.dropout),
                "{p:?}"
            );
            tell(&mut s, &p, i as f64);
        }
    }
}
