//! `recur tune`: hyperparameter search for the Job A classifier (SYSTEM.md
//! Job A, step 14) with TPE as Optuna does it: the first trials at random,
//! then per parameter a Parzen estimator of the good trials against the
//! bad ones (the `tpe` crate), on a log scale for the sequence length,
//! hidden size and learning rate. Trials that fall behind are pruned by the
//! median rule: after the warm-up epochs, a trial whose best validation AUC
//! so far is below the median of the finished trials' AUC at the same epoch
//! stops. Every finished trial is written at once (atomically) to
//! `trials.json`, which a later run reads and goes on from, so a killed
//! run loses only the trials it was running.

use crate::trainer::{fit_watched, FitOptions};
use candle_core::Device;
use rand10::{RngExt, SeedableRng};
use recur_core::config::{Config, TuneConfig};
use recur_core::fsx::{read_json, write_json};
use recur_core::{Error, Result};
use recur_data::prepare_training;
use recur_deploy::report::EpochRecord;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// One point of the search space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub sequence_length: usize,
    pub hidden_size: usize,
    pub learning_rate: f64,
    pub dropout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Complete,
    Pruned,
}

/// A finished trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub number: usize,
    pub params: Params,
    pub state: State,
    /// Validation ROC AUC after each epoch.
    pub curve: Vec<f64>,
    /// Validation AUC of the kept weights (best validation loss).
    pub value: f64,
    pub best_epoch: usize,
    pub seconds: f64,
}

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
    let ln = |r: [usize; 2]| ((r[0] as f64).ln(), (r[1] as f64 + 0.499).ln());
    [
        ln(s.sequence_length),
        ln(s.hidden_size),
        (s.learning_rate[0].ln(), s.learning_rate[1].ln()),
        (s.dropout[0], s.dropout[1]),
    ]
}

/// TPE over the four parameters; minimises what it is told.
pub struct Sampler {
    space: TuneConfig,
    optim: Vec<tpe::TpeOptimizer>,
    seed: u64,
    told: usize,
}

impl Sampler {
    /// A sampler over `space`, seeded with `seed`.
    pub fn new(space: &TuneConfig, seed: u64) -> Result<Sampler> {
        let optim = bounds(space)
            .iter()
            .map(|&(lo, hi)| {
                let hi = if hi > lo { hi } else { lo + 1e-9 };
                tpe::range(lo, hi)
                    .map(|r| tpe::TpeOptimizer::new(tpe::parzen_estimator(), r))
                    .map_err(|e| Error::Msg(format!("tune range {lo}..{hi}: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Sampler {
            space: space.clone(),
            optim,
            seed,
            told: 0,
        })
    }

    /// The point for trial `number`: at random for the first
    /// `startup_trials`, then TPE. Its random draws come from the seed and
    /// the trial number alone, so a search resumed from its trials file
    /// asks what the uninterrupted search would have asked (one job), and
    /// never replays the first trials' draws.
    pub fn ask(&mut self, number: usize) -> Result<Params> {
        let b = bounds(&self.space);
        let mut rng = rand10::rngs::StdRng::seed_from_u64(
            self.seed ^ (number as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut v = [0.0; 4];
        for (k, o) in self.optim.iter_mut().enumerate() {
            v[k] = if self.told < self.space.startup_trials {
                rng.random_range(b[k].0..=b[k].1)
            } else {
                o.ask(&mut rng)
                    .map_err(|e| Error::Msg(format!("TPE failed: {e}")))?
            };
        }
        Ok(decode(v, &self.space))
    }

    /// Records a result (lower is better).
    pub fn tell(&mut self, p: &Params, value: f64) -> Result<()> {
        let b = bounds(&self.space);
        for (k, (o, x)) in self.optim.iter_mut().zip(encode(p)).enumerate() {
            o.tell(x.clamp(b[k].0, b[k].1), value)
                .map_err(|e| Error::Msg(format!("TPE failed: {e}")))?;
        }
        self.told += 1;
        Ok(())
    }
}

/// The median rule: prune when, after `warmup` epochs and with at least
/// `min_trials` finished trials, the best value so far is below the median
/// of the finished trials' values at the same epoch.
pub fn should_prune(
    curve: &[f64],
    finished: &[Vec<f64>],
    warmup: usize,
    min_trials: usize,
) -> bool {
    let e = curve.len();
    if e <= warmup || finished.len() < min_trials {
        return false;
    }
    let mut at: Vec<f64> = finished
        .iter()
        .filter_map(|c| c.get(e - 1).copied())
        .collect();
    if at.len() < min_trials {
        return false;
    }
    at.sort_by(f64::total_cmp);
    let m = at.len();
    let median = if m % 2 == 1 {
        at[m / 2]
    } else {
        (at[m / 2 - 1] + at[m / 2]) / 2.0
    };
    let best = curve.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    best < median
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
            "{:>5}  {:>7} {:>6} {:>9.2e} {:>7.3}  {:<8} {:>7.4} {:>6} {:>7.1}",
            self.number,
            self.params.sequence_length,
            self.params.hidden_size,
            self.params.learning_rate,
            self.params.dropout,
            match self.state {
                State::Complete => "complete",
                State::Pruned => "pruned",
            },
            self.value,
            self.curve.len(),
            self.seconds
        )
    }
}

/// Every trial, the best config and where it was written.
impl std::fmt::Display for TuneResult {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "{TRIAL_HEADER}")?;
        for t in &self.trials {
            writeln!(f, "{t}")?;
        }
        let path = self.best_path.display();
        writeln!(f, "\nthe best config:\n{}", self.best_config.to_yaml())?;
        let start = self.trials.iter().find(|t| t.number == 0);
        writeln!(
            f,
            "best: trial {} with validation AUC {:.4}{}; its config is {path} (recur train --config {path})",
            self.best.number,
            self.best.value,
            start.map_or(String::new(), |s| format!(
                " (trial 0, the config as given: {:.4})",
                s.value
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

/// Runs one trial to completion or pruning.
fn run_trial(
    cfg: &Config,
    number: usize,
    p: Params,
    dev: &Device,
    finished: &Mutex<Vec<Trial>>,
    space: &TuneConfig,
) -> Result<Trial> {
    let start = Instant::now();
    let c = with_params(cfg, &p);
    let prep = prepare_training(&c)?;
    let mut curve = Vec::new();
    let mut pruned = false;
    let r = fit_watched(
        &prep,
        &c,
        dev,
        &FitOptions::default(),
        &mut |rec: &EpochRecord| {
            curve.push(rec.val_auc.unwrap_or(0.5));
            let done: Vec<Vec<f64>> = finished
                .lock()
                .expect("trials lock")
                .iter()
                .filter(|t| t.state == State::Complete)
                .map(|t| t.curve.clone())
                .collect();
            pruned = should_prune(&curve, &done, space.warmup_epochs, space.prune_after_trials);
            !pruned
        },
    )?;
    let value = r.history[r.best_epoch - 1].val_auc.unwrap_or(0.5);
    Ok(Trial {
        number,
        params: p,
        state: if pruned {
            State::Pruned
        } else {
            State::Complete
        },
        curve,
        value,
        best_epoch: r.best_epoch,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Runs the search until `out/trials.json` holds `n_trials` trials, `jobs`
/// at a time; `report` is called with each finished trial. The best
/// trial's config is written to `out/best.yaml`, ready for `recur train`.
///
/// ```no_run
/// # fn main() -> recur_core::Result<()> {
/// let cfg = recur_core::config::Config::from_file("configs/rainfall.yaml".as_ref())?;
/// let dev = candle_core::Device::Cpu;
/// let each = |t: &recur_train::tune::Trial| println!("{t}");
/// let r = recur_train::tune::tune(&cfg, 20, 1, "runs/tune".as_ref(), &dev, &each)?;
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
    report: &(dyn Fn(&Trial) + Sync),
) -> Result<TuneResult> {
    let space = cfg.tune.clone().unwrap_or_default();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let file = out.join("trials.json");
    let mut done: Vec<Trial> = if file.exists() {
        read_json(&file)?
    } else {
        Vec::new()
    };
    done.sort_by_key(|t| t.number);
    let resumed = done.len();
    let mut sampler = Sampler::new(&space, cfg.training.seed)?;
    for t in &done {
        sampler.tell(&t.params, -t.value)?;
    }
    // Trial 0 is the config as it stands (as Optuna's enqueue_trial), so
    // the search reports against the default it started from.
    let enqueued = if done.iter().any(|t| t.number == 0) {
        None
    } else {
        Some(Params {
            sequence_length: cfg.model.sequence_length,
            hidden_size: cfg.model.hidden_size,
            learning_rate: cfg.training.learning_rate,
            dropout: cfg.model.dropout,
        })
    };
    // (sampler, next trial number, the enqueued first point, trials running)
    let state = Mutex::new((
        sampler,
        done.iter().map(|t| t.number + 1).max().unwrap_or(0),
        enqueued,
        0usize,
    ));
    let finished = Mutex::new(done);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let next = {
                    let n_done = finished.lock().expect("trials lock").len();
                    let mut st = state.lock().expect("sampler lock");
                    if n_done + st.3 >= n_trials
                        || first_error.lock().expect("error lock").is_some()
                    {
                        None
                    } else {
                        let number = st.1;
                        st.1 += 1;
                        st.3 += 1;
                        match st.2.take() {
                            Some(p) => Some(Ok((number, p))),
                            None => Some(st.0.ask(number).map(|p| (number, p))),
                        }
                    }
                };
                let (number, p) = match next {
                    None => break,
                    Some(Err(e)) => {
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                    Some(Ok(x)) => x,
                };
                let outcome = run_trial(cfg, number, p, dev, &finished, &space);
                match outcome {
                    Ok(t) => {
                        let mut f = finished.lock().expect("trials lock");
                        f.push(t.clone());
                        f.sort_by_key(|t| t.number);
                        let write = write_json(&file, &*f);
                        let tell = {
                            let mut st = state.lock().expect("sampler lock");
                            st.3 -= 1;
                            st.0.tell(&t.params, -t.value)
                        };
                        drop(f);
                        if let Err(e) = write.and(tell) {
                            first_error.lock().expect("error lock").get_or_insert(e);
                            break;
                        }
                        report(&t);
                    }
                    Err(e) => {
                        state.lock().expect("sampler lock").3 -= 1;
                        first_error
                            .lock()
                            .expect("error lock")
                            .get_or_insert(Error::Msg(format!(
                                "trial {number} ({p:?}) failed: {e}"
                            )));
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }
    let trials = finished.into_inner().expect("trials lock");
    let best = trials
        .iter()
        .filter(|t| t.state == State::Complete)
        .max_by(|a, b| a.value.total_cmp(&b.value).then(b.number.cmp(&a.number)))
        .cloned()
        .ok_or_else(|| Error::Msg("no trial completed".into()))?;
    let mut best_config = best_config(cfg, &best);
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
        trials,
        best,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth toy objective with its minimum inside the space.
    fn toy(p: &Params) -> f64 {
        let l = |x: f64, c: f64| (x.ln() - c.ln()).powi(2);
        l(p.learning_rate, 2e-3)
            + l(p.hidden_size as f64, 48.0)
            + l(p.sequence_length as f64, 20.0)
            + 4.0 * (p.dropout - 0.2).powi(2)
    }

    fn best_of(space: &TuneConfig, seed: u64, budget: usize) -> f64 {
        let mut s = Sampler::new(space, seed).unwrap();
        let mut best = f64::INFINITY;
        for i in 0..budget {
            let p = s.ask(i).unwrap();
            let v = toy(&p);
            s.tell(&p, v).unwrap();
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
        let mut a = Sampler::new(&space, 7).unwrap();
        let mut history = Vec::new();
        for i in 0..30 {
            let p = a.ask(i).unwrap();
            a.tell(&p, toy(&p)).unwrap();
            history.push(p);
        }
        // "Killed" after 12 trials (startup and TPE both covered), resumed.
        for cut in [3, 12] {
            let mut b = Sampler::new(&space, 7).unwrap();
            for p in &history[..cut] {
                b.tell(p, toy(p)).unwrap();
            }
            for (i, want) in history.iter().enumerate().skip(cut).take(5) {
                let p = b.ask(i).unwrap();
                assert_eq!(
                    format!("{p:?}"),
                    format!("{want:?}"),
                    "trial {i} after {cut}"
                );
                b.tell(&p, toy(&p)).unwrap();
            }
        }
        let distinct: std::collections::HashSet<String> =
            history.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(distinct.len(), history.len(), "a point was asked twice");
    }

    #[test]
    fn points_stay_inside_the_space() {
        let space = TuneConfig::default();
        let mut s = Sampler::new(&space, 3).unwrap();
        for i in 0..40 {
            let p = s.ask(i).unwrap();
            assert!(
                (8..=64).contains(&p.sequence_length) && (16..=128).contains(&p.hidden_size),
                "{p:?}"
            );
            assert!(
                (1e-4..=1e-2).contains(&p.learning_rate) && (0.0..=0.5).contains(&p.dropout),
                "{p:?}"
            );
            s.tell(&p, i as f64).unwrap();
        }
    }

    #[test]
    fn the_median_rule_prunes_only_trials_behind_after_the_warmup() {
        let finished = vec![
            vec![0.6, 0.65, 0.70, 0.72],
            vec![0.6, 0.66, 0.69, 0.70],
            vec![0.55, 0.60, 0.65, 0.71],
        ];
        // Median at epoch 4 of 0.72, 0.70, 0.71 is 0.71.
        assert!(should_prune(&[0.5, 0.6, 0.65, 0.66], &finished, 3, 3));
        assert!(!should_prune(&[0.5, 0.6, 0.65, 0.715], &finished, 3, 3));
        // The best so far counts, not the last epoch.
        assert!(!should_prune(&[0.5, 0.72, 0.65, 0.66], &finished, 3, 3));
        // Not within the warm-up, nor with too few finished trials.
        assert!(!should_prune(&[0.1, 0.1, 0.1], &finished, 3, 3));
        assert!(!should_prune(&[0.5, 0.6, 0.65, 0.66], &finished[..2], 3, 3));
    }
}
