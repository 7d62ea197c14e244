//! A reader of XGBoost's JSON model format (`Booster.save_model("m.json")`,
//! XGBoost 1.0 and later), so a model a user already trained with XGBoost
//! can take the place of recur's trees. Only what a binary classifier
//! needs: `gbtree` boosters with numeric splits and the `binary:logistic`
//! (or `reg:logistic`, `binary:logitraw`) objective; anything else is
//! refused with the reason rather than scored wrongly.
//!
//! Scoring follows XGBoost: inputs and split values are float32, a value
//! goes left when `x < split`, a missing value (NaN) follows the node's
//! default direction, leaves hold their value in `split_conditions`, and
//! the margin starts from `logit(base_score)` (from `base_score` itself for
//! `binary:logitraw`, which XGBoost stores as a margin). The probability is
//! the margin's sigmoid for every objective: `binary:logitraw`'s margin is
//! the log-odds its logistic loss trained, though XGBoost returns it raw.
//!
//! Early stopping: a model fitted with `early_stopping_rounds` holds every
//! round it trained (best_iteration + 1 + early_stopping_rounds of them)
//! and names the round it kept in `learner.attributes.best_iteration`.
//! XGBoost's scikit-learn `predict_proba` scores with `iteration_range=(0,
//! best_iteration + 1)`: the first (best_iteration + 1) × num_parallel_tree
//! trees. recur does the same and drops the rest when reading. (A bare
//! `Booster.predict` without `iteration_range` would use them all.)
//!
//! Importance is total gain, as `get_score(importance_type="total_gain")`
//! computes it on the trees used: each split node's `loss_changes`, summed
//! per feature. (XGBoost's own `get_score` reads every tree in the file.)

use recur_core::{Error, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone)]
struct Tree {
    left: Vec<i32>,
    right: Vec<i32>,
    feature: Vec<usize>,
    split: Vec<f32>,
    default_left: Vec<bool>,
    /// The loss reduction of each split (`loss_changes`; 0 at leaves).
    gain: Vec<f32>,
}

/// An XGBoost binary classifier read from JSON.
#[derive(Debug, Clone)]
pub struct XgbModel {
    trees: Vec<Tree>,
    base_margin: f64,
    /// Feature names the model was trained with (may be empty).
    pub feature_names: Vec<String>,
    pub n_features: usize,
    pub objective: String,
    /// The round early stopping kept (`learner.attributes.best_iteration`),
    /// when the model has one: only rounds `0..=best_iteration` score.
    pub best_iteration: Option<usize>,
    /// Trees per boosting round (`num_parallel_tree`, 1 unless a forest).
    pub trees_per_round: usize,
    rounds_in_file: usize,
}

#[derive(Deserialize)]
struct File {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    attributes: Attributes,
    #[serde(default)]
    feature_names: Vec<String>,
    learner_model_param: ModelParam,
    objective: Objective,
    gradient_booster: Booster,
}

/// XGBoost writes every attribute as a string: `"best_iteration": "14"`.
#[derive(Deserialize, Default)]
struct Attributes {
    #[serde(default)]
    best_iteration: Option<String>,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    num_feature: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    #[serde(default)]
    model: Option<GbModel>,
}

#[derive(Deserialize)]
struct GbModel {
    #[serde(default)]
    gbtree_model_param: Option<GbTreeParam>,
    trees: Vec<JsonTree>,
}

#[derive(Deserialize)]
struct GbTreeParam {
    /// Absent before XGBoost 1.6 or so: one tree a round.
    #[serde(default)]
    num_parallel_tree: Option<String>,
}

#[derive(Deserialize)]
struct JsonTree {
    left_children: Vec<i32>,
    right_children: Vec<i32>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<serde_json::Value>,
    #[serde(default)]
    split_type: Vec<i64>,
    /// Absent: no gains, so no importance.
    #[serde(default)]
    loss_changes: Vec<f32>,
}

fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
        _ => false,
    }
}

/// XGBoost's number text without its brackets: `"[4E-1]"` -> `4E-1`.
fn unbracket(s: &str) -> &str {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
}

/// `"[4E-1]"` or `"4E-1"` -> 0.4.
fn parse_number(s: &str) -> Option<f64> {
    unbracket(s).parse().ok()
}

/// `"14"` or `"[14]"` -> 14; not a whole number -> None.
fn parse_count(s: &str) -> Option<usize> {
    unbracket(s).parse().ok()
}

impl XgbModel {
    /// Reads an XGBoost model saved as JSON (`save_model("m.json")`).
    pub fn load(path: &Path) -> Result<XgbModel> {
        let text = recur_core::fsx::read_text_bounded(path, recur_core::fsx::MAX_DATA_FILE)?;
        XgbModel::from_json(&text, &path.display().to_string())
    }

    /// Parses a model; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<XgbModel> {
        let bad = |msg: String| Error::data(origin, msg);
        let f: File = serde_json::from_str(text).map_err(|e| {
            // A gblinear model is valid JSON without trees: name the
            // booster rather than the field it lacks.
            let booster = serde_json::from_str::<serde_json::Value>(text).ok().and_then(|v| {
                v.pointer("/learner/gradient_booster/name")
                    .and_then(|n| n.as_str().map(str::to_string))
            });
            match booster {
                Some(b) if b != "gbtree" => bad(format!(
                    "booster `{b}` is not supported: recur reads gbtree models"
                )),
                _ => bad(format!(
                    "not an XGBoost JSON model ({e}); save one with Booster.save_model(\"model.json\") from XGBoost 1.0 or later"
                )),
            }
        })?;
        let l = f.learner;
        let objective = l.objective.name;
        let logistic = match objective.as_str() {
            "binary:logistic" | "reg:logistic" => true,
            "binary:logitraw" => false,
            other => {
                return Err(bad(format!(
                    "objective `{other}` is not supported: recur reads binary classifiers \
                     (binary:logistic, reg:logistic or binary:logitraw)"
                )))
            }
        };
        // One class pair and one target: what a binary classifier has.
        let over_one =
            |v: &Option<String>| v.as_deref().and_then(parse_number).filter(|&n| n > 1.0);
        if let Some(n) = over_one(&l.learner_model_param.num_class) {
            return Err(bad(format!(
                "a {n}-class model; recur reads binary classifiers"
            )));
        }
        if let Some(n) = over_one(&l.learner_model_param.num_target) {
            return Err(bad(format!(
                "a model of {n} targets; recur reads binary classifiers of one"
            )));
        }
        if l.gradient_booster.name != "gbtree" {
            return Err(bad(format!(
                "booster `{}` is not supported: recur reads gbtree models",
                l.gradient_booster.name
            )));
        }
        let n_features = parse_number(&l.learner_model_param.num_feature)
            .ok_or_else(|| bad("learner_model_param.num_feature is not a number".into()))?
            as usize;
        let base = parse_number(&l.learner_model_param.base_score)
            .ok_or_else(|| bad("learner_model_param.base_score is not a number".into()))?;
        let base_margin = if logistic {
            if !(base > 0.0 && base < 1.0) {
                return Err(bad(format!("base_score {base} is not a probability")));
            }
            (base / (1.0 - base)).ln()
        } else {
            base
        };
        let model = l
            .gradient_booster
            .model
            .ok_or_else(|| bad("the booster holds no trees".into()))?;
        let per_round = match model
            .gbtree_model_param
            .as_ref()
            .and_then(|p| p.num_parallel_tree.as_deref())
        {
            None => 1,
            Some(s) => parse_count(s).filter(|&n| n > 0).ok_or_else(|| {
                bad(format!(
                    "gbtree_model_param.num_parallel_tree `{s}` should be a whole number of 1 or more"
                ))
            })?,
        };
        let mut trees = Vec::with_capacity(model.trees.len());
        for (k, t) in model.trees.into_iter().enumerate() {
            let n = t.left_children.len();
            if t.right_children.len() != n
                || t.split_indices.len() != n
                || t.split_conditions.len() != n
                || t.default_left.len() != n
                || (!t.loss_changes.is_empty() && t.loss_changes.len() != n)
            {
                return Err(bad(format!("tree {k}: its node arrays differ in length")));
            }
            if n == 0 {
                return Err(bad(format!(
                    "tree {k} has no nodes (a tree has at least its root)"
                )));
            }
            if t.split_type.iter().any(|&s| s != 0) {
                return Err(bad(format!(
                    "tree {k} has categorical splits, which recur does not read"
                )));
            }
            for i in 0..n {
                let (lc, rc) = (t.left_children[i], t.right_children[i]);
                let leaf = lc == -1;
                let in_range = |c: i32| c > i as i32 && (c as usize) < n;
                if !leaf && (!in_range(lc) || !in_range(rc)) {
                    return Err(bad(format!(
                        "tree {k} node {i}: children {lc}, {rc} out of range"
                    )));
                }
                if !leaf && !(0..n_features as i64).contains(&t.split_indices[i]) {
                    return Err(bad(format!(
                        "tree {k} node {i} splits on feature {} of {n_features}",
                        t.split_indices[i]
                    )));
                }
            }
            trees.push(Tree {
                left: t.left_children,
                right: t.right_children,
                feature: t.split_indices.iter().map(|&v| v.max(0) as usize).collect(),
                split: t.split_conditions,
                default_left: t.default_left.iter().map(truthy).collect(),
                gain: if t.loss_changes.is_empty() {
                    vec![0.0; n]
                } else {
                    t.loss_changes
                },
            });
        }
        if !trees.len().is_multiple_of(per_round) {
            return Err(bad(format!(
                "{} trees are not whole rounds of num_parallel_tree = {per_round} trees",
                trees.len()
            )));
        }
        let rounds_in_file = trees.len() / per_round;
        let best_iteration = match l.attributes.best_iteration.as_deref() {
            None => None,
            Some(s) => {
                let b = parse_count(s).ok_or_else(|| {
                    bad(format!(
                        "learner.attributes.best_iteration `{s}` should be a round number (0, 1, ...)"
                    ))
                })?;
                if b >= rounds_in_file {
                    return Err(bad(format!(
                        "learner.attributes.best_iteration is {b}, but the file holds only \
                         {rounds_in_file} rounds ({} trees): the round early stopping kept \
                         should be one of them, below {rounds_in_file}",
                        trees.len()
                    )));
                }
                Some(b)
            }
        };
        if let Some(b) = best_iteration {
            // As predict_proba: iteration_range=(0, best_iteration + 1).
            trees.truncate((b + 1) * per_round);
        }
        if !l.feature_names.is_empty() && l.feature_names.len() != n_features {
            return Err(bad(format!(
                "{} feature names for {n_features} features",
                l.feature_names.len()
            )));
        }
        Ok(XgbModel {
            trees,
            base_margin,
            feature_names: l.feature_names,
            n_features,
            objective,
            best_iteration,
            trees_per_round: per_round,
            rounds_in_file,
        })
    }

    /// The margin (log-odds) of one row of `n_features` values (NaN = missing).
    pub fn margin(&self, row: &[f64]) -> f64 {
        let mut m = self.base_margin;
        for t in &self.trees {
            let mut i = 0usize;
            while t.left[i] != -1 {
                let x = row[t.feature[i]] as f32;
                let left = if x.is_nan() {
                    t.default_left[i]
                } else {
                    x < t.split[i]
                };
                i = if left { t.left[i] } else { t.right[i] } as usize;
            }
            m += t.split[i] as f64;
        }
        m
    }

    /// P(class 1) for each row of a row-major `[n, n_features]` buffer:
    /// the sigmoid of the margin, for `binary:logitraw` too, whose margin
    /// is the log-odds its logistic loss trained (XGBoost itself returns
    /// the margin; as a probability it was deployed below 0 and above 1).
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        x.chunks(self.n_features.max(1))
            .map(|r| recur_core::stats::sigmoid(self.margin(r)))
            .collect()
    }

    /// Trees that score: all, or those of rounds `0..=best_iteration`.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Boosting rounds that score.
    pub fn n_rounds(&self) -> usize {
        self.trees.len() / self.trees_per_round
    }

    /// Boosting rounds in the file, those after `best_iteration` included.
    pub fn n_rounds_in_file(&self) -> usize {
        self.rounds_in_file
    }

    /// Total gain of each feature over the trees that score: the sum of
    /// `loss_changes` over the feature's split nodes.
    pub fn total_gain(&self) -> Vec<f64> {
        let mut g = vec![0.0; self.n_features];
        for t in &self.trees {
            for ((&left, &f), &gain) in t.left.iter().zip(&t.feature).zip(&t.gain) {
                if left != -1 {
                    g[f] += gain as f64;
                }
            }
        }
        g
    }

    /// Total-gain importance normalised to sum 1 (all 0 when no split
    /// gains), largest first, ties by name; features are named as the
    /// model names them, `f0`, `f1`, ... when it does not.
    pub fn importance(&self) -> Vec<(String, f64)> {
        self.importance_named(&self.feature_names)
    }

    /// [`Self::importance`] with feature `i` called `names[i]` (`f{i}`
    /// past the end of `names`).
    pub fn importance_named(&self, names: &[String]) -> Vec<(String, f64)> {
        let g = self.total_gain();
        let sum: f64 = g.iter().sum();
        let mut v: Vec<(String, f64)> = g
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let name = names.get(i).cloned().unwrap_or_else(|| format!("f{i}"));
                (name, if sum > 0.0 { x / sum } else { 0.0 })
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}
