//! The search loop behind `recur tune`, shared by both jobs: TPE as Optuna
//! does it (the first trials at random, then per parameter a Parzen
//! estimator of the good trials against the bad ones, from the `tpe`
//! crate), the median pruning rule, and a trials file written atomically
//! after every finished trial, which a later run reads and goes on from.
//!
//! What a job searches is an [`Objective`]: its parameters encoded as a
//! point of a box (logs where log-scaled), the config it starts from, and
//! one training run that reports its validation score after each epoch.
//! Job A's lives in `tune`, Job B's in `tune_lvm`; this module knows
//! neither.

use rand10::{RngExt, SeedableRng};
use recur_core::fsx::{read_json, write_json};
use recur_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// TPE over a box of `bounds.len()` dimensions; minimises what it is told.
pub struct Sampler {
    bounds: Vec<(f64, f64)>,
    optim: Vec<tpe::TpeOptimizer>,
    startup: usize,
    seed: u64,
    told: usize,
}

impl Sampler {
    /// A sampler over `bounds`, at random for the first `startup` points,
    /// seeded with `seed`.
    pub fn new(bounds: &[(f64, f64)], startup: usize, seed: u64) -> Result<Sampler> {
        let optim = bounds
            .iter()
            .map(|&(lo, hi)| {
                // The `tpe` crate's range leaves out its top, where a
                // config's own value (trial 0) may lie, as `dropout: 0.5`
                // at the default range's top did: that trial's `tell`
                // failed, and every resume after it. So the top is moved
                // just past `hi`, and what is told is clamped to the box.
                let hi = if hi > lo { hi } else { lo + 1e-9 };
                let top = hi + (hi - lo) * 1e-9;
                tpe::range(lo, top)
                    .map(|r| tpe::TpeOptimizer::new(tpe::parzen_estimator(), r))
                    .map_err(|e| Error::Msg(format!("tune range {lo}..{hi}: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Sampler {
            bounds: bounds.to_vec(),
            optim,
            startup,
            seed,
            told: 0,
        })
    }

    /// The point for trial `number`. Its random draws come from the seed
    /// and the trial number alone, so a search resumed from its trials file
    /// asks what the uninterrupted search would have asked (one job), and
    /// never replays the first trials' draws.
    pub fn ask(&mut self, number: usize) -> Result<Vec<f64>> {
        let mut rng = rand10::rngs::StdRng::seed_from_u64(
            self.seed ^ (number as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut v = vec![0.0; self.bounds.len()];
        for (k, o) in self.optim.iter_mut().enumerate() {
            let (lo, hi) = self.bounds[k];
            v[k] = if self.told < self.startup {
                rng.random_range(lo..=hi)
            } else {
                o.ask(&mut rng)
                    .map_err(|e| Error::Msg(format!("TPE failed: {e}")))?
                    .clamp(lo, hi)
            };
        }
        Ok(v)
    }

    /// Records a result (lower is better) for the point `x`.
    pub fn tell(&mut self, x: &[f64], value: f64) -> Result<()> {
        for (k, (o, &x)) in self.optim.iter_mut().zip(x).enumerate() {
            let (lo, hi) = self.bounds[k];
            o.tell(x.clamp(lo, hi), value)
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
    // No finished trial reached this epoch: no median to compare with
    // (`prune_after_trials: 0` asked before one had).
    if at.is_empty() || at.len() < min_trials {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Complete,
    Pruned,
    /// Its training refused its parameters (a sequence longer than the
    /// data allows, say): recorded with the reason, and the search goes
    /// on, as Optuna's FAIL.
    Failed,
}

impl State {
    /// The state as the trial tables print it.
    pub fn name(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::Pruned => "pruned",
            State::Failed => "failed",
        }
    }
}

/// The table both jobs print at the end of a search: the header, a line
/// per trial (each job's `Display` of its trial) and the best config.
pub fn write_table<P>(
    f: &mut std::fmt::Formatter,
    header: &str,
    trials: &[Trial<P>],
    best_config: &str,
) -> std::fmt::Result
where
    Trial<P>: std::fmt::Display,
{
    writeln!(f, "{header}")?;
    for t in trials {
        writeln!(f, "{t}")?;
    }
    writeln!(f, "\nthe best config:\n{best_config}")
}

/// A finished trial with the parameters `P` of its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial<P> {
    pub number: usize,
    pub params: P,
    pub state: State,
    /// The validation score after each epoch.
    pub curve: Vec<f64>,
    /// The validation score of the kept weights.
    pub value: f64,
    pub best_epoch: usize,
    pub seconds: f64,
    /// Why a failed trial failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<P> Trial<P> {
    /// The figure of trial 0 as the best line gives it ("the config as
    /// given: ..."): a failed one said 0.0000.
    pub fn start_shown(&self) -> String {
        match self.state {
            State::Failed => "failed".into(),
            State::Pruned => format!("{:.4}, pruned", self.value),
            State::Complete => format!("{:.4}", self.value),
        }
    }

    /// The score column of a trial table: the value, or `-` for a trial
    /// that failed.
    pub fn shown_value(&self) -> String {
        match self.state {
            State::Failed => "-".into(),
            _ => format!("{:.4}", self.value),
        }
    }
}

/// The search's settings, from a job's `tune:` section.
#[derive(Debug, Clone, Copy)]
pub struct Pruning {
    /// Trials sampled at random before TPE takes over.
    pub startup_trials: usize,
    /// Completed trials before the median rule prunes anything.
    pub prune_after_trials: usize,
    /// Epochs every trial runs before it can be pruned.
    pub warmup_epochs: usize,
}

/// What one trial's training returns: the score of the weights it keeps
/// and the epoch they are from.
pub struct Outcome {
    pub value: f64,
    pub best_epoch: usize,
}

/// A job's search: its parameters, their box and one training run.
pub trait Objective: Sync {
    type Params: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send;
    /// The box the parameters are searched in (logs where log-scaled).
    fn bounds(&self) -> Vec<(f64, f64)>;
    fn encode(&self, p: &Self::Params) -> Vec<f64>;
    /// A point of the box as parameters, rounded and clamped to the ranges.
    fn decode(&self, x: &[f64]) -> Self::Params;
    /// The config's own parameters: trial 0, as Optuna's `enqueue_trial`,
    /// so the search reports against the config it started from.
    fn start(&self) -> Self::Params;
    /// Trains with `p`, calling `epoch` with the validation score after
    /// every epoch; training stops when it returns false.
    fn run(&self, p: &Self::Params, epoch: &mut dyn FnMut(f64) -> bool) -> Result<Outcome>;
    /// What the trials' scores depend on besides their parameters (the
    /// config without its `tune:` section, as a digest): a search resumes
    /// only trials run on the same. An error when a data file cannot be
    /// read: the search cannot run, and a digest without the file's bytes
    /// read as another search's.
    fn fingerprint(&self) -> Result<String>;
}

/// What [`Objective::fingerprint`] digests: the config (`config_yaml`,
/// its `tune:` section left out and its paths resolved) and the bytes of
/// each data file it reads, so that a file rewritten in place is other
/// data.
pub fn fingerprint_of<'a>(
    config_yaml: String,
    data: impl IntoIterator<Item = &'a std::path::PathBuf>,
) -> Result<String> {
    let mut text = config_yaml;
    for p in data {
        text += &recur_core::fsx::sha256_file(p)?;
    }
    Ok(recur_core::fsx::sha256_bytes(text.as_bytes()))
}

/// `out/search.json`: the fingerprint of the search `trials.json` belongs to.
#[derive(Serialize, serde::Deserialize)]
struct SearchOf {
    fingerprint: String,
}

/// Every trial in `out/trials.json`, the best complete one, and how many
/// were there before this run.
pub struct Searched<P> {
    pub trials: Vec<Trial<P>>,
    pub best: Trial<P>,
    pub resumed: usize,
}

fn run_trial<O: Objective>(
    obj: &O,
    number: usize,
    p: O::Params,
    finished: &Mutex<Vec<Trial<O::Params>>>,
    pruning: &Pruning,
) -> Result<Trial<O::Params>> {
    let start = Instant::now();
    let mut curve = Vec::new();
    let mut pruned = false;
    let r = obj.run(&p, &mut |score: f64| {
        curve.push(score);
        let done: Vec<Vec<f64>> = finished
            .lock()
            .expect("trials lock")
            .iter()
            .filter(|t| t.state == State::Complete)
            .map(|t| t.curve.clone())
            .collect();
        // Trial 0, the config as given, runs to its end: the figure the
        // others are compared with (resumed last, it was pruned, and its
        // partial score shown as the config's).
        pruned = number != 0
            && should_prune(
                &curve,
                &done,
                pruning.warmup_epochs,
                pruning.prune_after_trials,
            );
        !pruned
    });
    let r = match r {
        Ok(r) => r,
        // Ctrl-C stops the search; anything else is this trial's.
        Err(e) if recur_core::progress::is_interrupted(&e) => return Err(e),
        Err(e) => {
            return Ok(Trial {
                number,
                params: p,
                state: State::Failed,
                curve,
                value: 0.0,
                best_epoch: 0,
                seconds: start.elapsed().as_secs_f64(),
                error: Some(e.to_string()),
            })
        }
    };
    Ok(Trial {
        number,
        params: p,
        state: if pruned {
            State::Pruned
        } else {
            State::Complete
        },
        curve,
        value: r.value,
        best_epoch: r.best_epoch,
        seconds: start.elapsed().as_secs_f64(),
        error: None,
    })
}

/// Refuses resumed trials that no search could have written: parameters
/// outside the search's box (trial 0 other than the config's own),
/// scores that are not finite, a trial number twice.
fn check_resumed<O: Objective>(obj: &O, file: &Path, done: &[Trial<O::Params>]) -> Result<()> {
    let bad = |n: usize, why: String| {
        Err(Error::Msg(format!(
            "{} trial {n}: {why}; no search writes that. Give a new --out, or delete {} to start afresh",
            file.display(),
            file.display()
        )))
    };
    let bounds = obj.bounds();
    let start = serde_json::to_value(obj.start()).ok();
    for (i, t) in done.iter().enumerate() {
        if i > 0 && done[i - 1].number == t.number {
            return bad(t.number, "the number is there twice".into());
        }
        let shown = serde_json::to_string(&t.params).unwrap_or_default();
        if t.number == 0 {
            if serde_json::to_value(&t.params).ok() != start {
                return bad(0, format!("{shown} are not the config's own parameters"));
            }
        } else {
            let x = obj.encode(&t.params);
            let inside = x.len() == bounds.len()
                && x.iter()
                    .zip(&bounds)
                    .all(|(v, (lo, hi))| v.is_finite() && *v >= lo - 1e-9 && *v <= hi + 1e-9);
            if !inside {
                return Err(Error::Msg(format!(
                    "{} trial {}: {shown} lie outside the tune: ranges (narrowed or taken out \
                     since it ran, or edited); widen them or put them back, give a new --out, or \
                     delete {} to start afresh",
                    file.display(),
                    t.number,
                    file.display()
                )));
            }
        }
        if !t.value.is_finite() || t.curve.iter().any(|v| !v.is_finite()) {
            return bad(t.number, "its scores are not finite numbers".into());
        }
    }
    Ok(())
}

/// Runs the search until `out/trials.json` holds `n_trials` trials, `jobs`
/// at a time, maximising the objective's score; `report` is called with
/// each finished trial.
pub fn search<O: Objective>(
    obj: &O,
    pruning: &Pruning,
    seed: u64,
    n_trials: usize,
    jobs: usize,
    out: &Path,
    report: &(dyn Fn(&Trial<O::Params>) + Sync),
) -> Result<Searched<O::Params>> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Msg(format!(
            "{} is not a folder; --out names the folder for the trials (trials.json) and best.yaml",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let file = out.join("trials.json");
    // Trials of another config (other features, another context, the
    // other job) would be resumed as this one's and reported against it.
    let of = out.join("search.json");
    let fingerprint = obj.fingerprint()?;
    if file.exists() && !of.exists() {
        // Which config they ran on cannot be told (a search older than
        // search.json, or the file deleted): they were resumed unchecked.
        return Err(Error::Msg(format!(
            "{} holds trials but {} is missing, so which config they searched cannot be told. \
             Give a new --out, or delete {} to start afresh",
            file.display(),
            of.display(),
            file.display()
        )));
    }
    if file.exists() && of.exists() {
        let was: SearchOf = read_json(&of)?;
        if was.fingerprint != fingerprint {
            return Err(Error::Msg(format!(
                "{} holds the trials of another search: the config (its sections but tune:) or its data file's bytes differ from those they ran on (or a recur before data was counted wrote them). Give a new --out, or delete {} to start afresh",
                file.display(),
                file.display()
            )));
        }
    }
    if !file.exists() {
        // A new search: the best.yaml of one before it (trials.json
        // deleted to start afresh) would read as this one's until it ends.
        match std::fs::remove_file(out.join("best.yaml")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(out.join("best.yaml"), e))
            }
            _ => {}
        }
    }
    recur_core::fsx::write_json(&of, &SearchOf { fingerprint })?;
    let mut done: Vec<Trial<O::Params>> = if file.exists() {
        // A damaged file (cut short, edited) is named with what to do.
        read_json(&file).map_err(|e| {
            Error::Msg(format!(
                "{e}: the trials cannot be resumed from it; restore it, or delete it (or give a \
                 new --out) to start afresh"
            ))
        })?
    } else {
        Vec::new()
    };
    done.sort_by_key(|t| t.number);
    check_resumed(obj, &file, &done)?;
    let resumed = done.len();
    let mut sampler = Sampler::new(&obj.bounds(), pruning.startup_trials, seed)?;
    for t in done.iter().filter(|t| t.state != State::Failed) {
        sampler.tell(&obj.encode(&t.params), -t.value)?;
    }
    let enqueued = if done.iter().any(|t| t.number == 0) {
        None
    } else {
        Some(obj.start())
    };
    // (sampler, next trial number, the enqueued first point, trials running)
    // The config as given is always trial 0: resumed without it (it was
    // in flight when a `--jobs 2` run was killed), it took the next number,
    // where the range check (which exempts trial 0 only) then refused
    // every later resume.
    let first_sampled = done.iter().map(|t| t.number + 1).max().unwrap_or(0);
    let state = Mutex::new((
        sampler,
        first_sampled.max(usize::from(enqueued.is_some())),
        enqueued,
        0usize,
    ));
    let finished = Mutex::new(done);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    // No more threads than trials left to run (a million jobs took 47 s
    // to start and stop).
    let threads = jobs.clamp(1, n_trials.saturating_sub(resumed).max(1));
    std::thread::scope(|scope| {
        for started in 0..threads {
            // The system may refuse a thread (its limit on threads or
            // memory): `spawn` panicked then. The trials run on the threads
            // that started; with none, the search says why.
            let spawned = std::thread::Builder::new().spawn_scoped(scope, || loop {
                let next = {
                    let n_done = finished.lock().expect("trials lock").len();
                    let mut st = state.lock().expect("sampler lock");
                    if n_done + st.3 >= n_trials
                        || first_error.lock().expect("error lock").is_some()
                    {
                        None
                    } else {
                        st.3 += 1;
                        match st.2.take() {
                            Some(p) => Some(Ok((0, p))),
                            None => {
                                let number = st.1;
                                st.1 += 1;
                                Some(st.0.ask(number).map(|x| (number, obj.decode(&x))))
                            }
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
                match run_trial(obj, number, p.clone(), &finished, pruning) {
                    Ok(t) => {
                        let mut f = finished.lock().expect("trials lock");
                        f.push(t.clone());
                        f.sort_by_key(|t| t.number);
                        let write = write_json(&file, &*f);
                        let tell = {
                            let mut st = state.lock().expect("sampler lock");
                            st.3 -= 1;
                            if t.state == State::Failed {
                                Ok(())
                            } else {
                                st.0.tell(&obj.encode(&t.params), -t.value)
                            }
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
                        // A stop stays `Interrupted`, for the caller to
                        // tell it from a failure.
                        let e = if recur_core::progress::is_interrupted(&e) {
                            e
                        } else {
                            Error::Msg(format!(
                                "trial {number} ({}) failed: {e}",
                                serde_json::to_string(&p).unwrap_or_default()
                            ))
                        };
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                }
            });
            if let Err(e) = spawned {
                if started == 0 {
                    first_error
                        .lock()
                        .expect("error lock")
                        .get_or_insert(Error::Msg(format!(
                            "the system refused a thread to run the trials on: {e}"
                        )));
                }
                break;
            }
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
        .ok_or_else(|| {
            let why = trials
                .iter()
                .find_map(|t| {
                    t.error
                        .as_ref()
                        .map(|e| format!(": trial {} failed: {e}", t.number))
                })
                .unwrap_or_default();
            Error::Msg(format!("no trial completed{why}"))
        })?;
    Ok(Searched {
        trials,
        best,
        resumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point at the top of its range, or beyond either end (a config's
    /// own values, trial 0), is told without error, and points asked after
    /// stay inside the box.
    #[test]
    fn points_at_or_beyond_the_bounds_are_told() {
        let bounds = [(0.0, 0.5), ((1e-4f64).ln(), (1e-2f64).ln())];
        let mut s = Sampler::new(&bounds, 2, 7).unwrap();
        s.tell(&[0.5, (1e-2f64).ln()], -0.7).unwrap();
        s.tell(&[0.9, (1e-6f64).ln()], -0.6).unwrap();
        s.tell(&[0.0, (1e-4f64).ln()], -0.5).unwrap();
        for n in 3..20 {
            let x = s.ask(n).unwrap();
            for (v, (lo, hi)) in x.iter().zip(bounds) {
                assert!(*v >= lo && *v <= hi, "{v} outside {lo}..{hi}");
            }
            s.tell(&x, -(n as f64)).unwrap();
        }
    }

    /// One parameter in [0, 1]; training refuses x above 0.6 as a
    /// config a trial's data cannot take, and scores 1 - |x - 0.3| else.
    struct Toy;
    impl Objective for Toy {
        type Params = f64;
        fn bounds(&self) -> Vec<(f64, f64)> {
            vec![(0.0, 1.0)]
        }
        fn encode(&self, p: &f64) -> Vec<f64> {
            vec![*p]
        }
        fn decode(&self, x: &[f64]) -> f64 {
            x[0].clamp(0.0, 1.0)
        }
        fn start(&self) -> f64 {
            0.9
        }
        fn run(&self, p: &f64, epoch: &mut dyn FnMut(f64) -> bool) -> Result<Outcome> {
            if *p > 0.6 {
                return Err(Error::Msg(format!("x {p} does not fit the data")));
            }
            let value = 1.0 - (p - 0.3).abs();
            epoch(value);
            Ok(Outcome {
                value,
                best_epoch: 1,
            })
        }
        fn fingerprint(&self) -> Result<String> {
            Ok("toy".into())
        }
    }

    /// A trial whose training refuses its parameters is recorded as
    /// failed with the reason, and the search goes on (a sequence length
    /// the data could not take stopped the whole search, and every resume
    /// at the same trial); a million jobs start only the trials left.
    #[test]
    fn a_failed_trial_is_recorded_and_the_search_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let pruning = Pruning {
            startup_trials: 4,
            prune_after_trials: 0,
            warmup_epochs: 0,
        };
        let r = search(&Toy, &pruning, 1, 12, 1_000_000, dir.path(), &|_| {}).unwrap();
        assert_eq!(r.trials.len(), 12);
        let t0 = &r.trials[0];
        assert_eq!((t0.state, t0.params), (State::Failed, 0.9));
        assert!(t0
            .error
            .as_deref()
            .unwrap()
            .contains("does not fit the data"));
        assert_eq!(t0.shown_value(), "-");
        assert!(r.best.state == State::Complete && r.best.params <= 0.6);
        // Resumed, they count and are not run again.
        let again = search(&Toy, &pruning, 1, 12, 2, dir.path(), &|_| {}).unwrap();
        assert_eq!((again.resumed, again.trials), (12, r.trials));
    }

    /// Trials no search could have written are refused on resume: a
    /// parameter outside the box, trial 0 other than the config's own, a
    /// number twice.
    #[test]
    fn resumed_trials_are_checked() {
        let pruning = Pruning {
            startup_trials: 2,
            prune_after_trials: 1,
            warmup_epochs: 0,
        };
        type Edit = fn(&mut Vec<serde_json::Value>);
        let edits: [(&str, Edit); 3] = [
            ("outside the tune: ranges", |t| t[1]["params"] = 5.0.into()),
            ("not the config's own", |t| t[0]["params"] = 0.5.into()),
            ("there twice", |t| t[2]["number"] = 1.into()),
        ];
        for (want, edit) in edits {
            let dir = tempfile::tempdir().unwrap();
            search(&Toy, &pruning, 3, 4, 1, dir.path(), &|_| {}).unwrap();
            let file = dir.path().join("trials.json");
            let mut t: Vec<serde_json::Value> =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            edit(&mut t);
            std::fs::write(&file, serde_json::to_string(&t).unwrap()).unwrap();
            let e = search(&Toy, &pruning, 3, 6, 1, dir.path(), &|_| {})
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains(want) && e.contains("trials.json trial"),
                "{want}: {e}"
            );
        }
    }

    /// Trial 0 lost (in flight when a `--jobs 2` run was killed): the
    /// resume runs the config as trial 0, not as the next number, and the
    /// search resumes again after it (the range check, which exempts
    /// trial 0 only, refused every later resume).
    #[test]
    fn a_lost_trial_0_is_run_again_as_trial_0() {
        struct Start(Toy);
        impl Objective for Start {
            type Params = f64;
            fn bounds(&self) -> Vec<(f64, f64)> {
                vec![(0.0, 0.5)]
            }
            fn encode(&self, p: &f64) -> Vec<f64> {
                self.0.encode(p)
            }
            fn decode(&self, x: &[f64]) -> f64 {
                x[0].clamp(0.0, 0.5)
            }
            fn start(&self) -> f64 {
                0.55 // outside the box, as a config's own value may be
            }
            fn run(&self, p: &f64, e: &mut dyn FnMut(f64) -> bool) -> Result<Outcome> {
                self.0.run(p, e)
            }
            fn fingerprint(&self) -> Result<String> {
                Ok("start".into())
            }
        }
        let pruning = Pruning {
            startup_trials: 2,
            prune_after_trials: 100,
            warmup_epochs: 0,
        };
        let dir = tempfile::tempdir().unwrap();
        search(&Start(Toy), &pruning, 3, 4, 1, dir.path(), &|_| {}).unwrap();
        let file = dir.path().join("trials.json");
        let mut t: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        t.remove(0);
        std::fs::write(&file, serde_json::to_string(&t).unwrap()).unwrap();
        // Run last, behind trials that score more, it is not pruned: its
        // figure is the one the others are compared with.
        let eager = Pruning {
            startup_trials: 2,
            prune_after_trials: 1,
            warmup_epochs: 0,
        };
        let r = search(&Start(Toy), &eager, 3, 5, 1, dir.path(), &|_| {}).unwrap();
        let numbers: Vec<usize> = r.trials.iter().map(|t| t.number).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4]);
        assert_eq!(r.trials[0].params, 0.55);
        assert_eq!(r.trials[0].state, State::Complete);
        assert_eq!(r.trials[0].start_shown(), "0.7500");
        let failed = Trial {
            state: State::Failed,
            ..r.trials[0].clone()
        };
        assert_eq!(failed.start_shown(), "failed");
        let again = search(&Start(Toy), &pruning, 3, 6, 1, dir.path(), &|_| {}).unwrap();
        assert_eq!(again.trials.len(), 6);
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
        // `prune_after_trials: 0` before any trial finished, or past the
        // epochs they reached: nothing to compare with (it panicked).
        assert!(!should_prune(&[0.5, 0.6], &[], 0, 0));
        assert!(!should_prune(&[0.5; 6], &finished, 0, 0));
    }
}
