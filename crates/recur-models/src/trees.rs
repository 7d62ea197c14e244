//! Gradient-boosted trees beside the LSTM (SYSTEM.md Job A, step 11), on
//! forust-ml: log loss, early stopping on the validation rows, gain
//! importance. They read the current row's features and, if configured,
//! lagged copies (`temperature_lag1`, ...), so they score every row from
//! the largest lag on: `n - max_lag` rows where the LSTM scores `n - L + 1`.
//! A user's XGBoost model ([`crate::xgboost`]) can take their place.

use crate::xgboost::XgbModel;
use forust_ml::gradientbooster::ImportanceMethod;
use forust_ml::metric::Metric;
use forust_ml::{GradientBooster, Matrix};
use recur_core::config::TreesConfig;
use recur_core::stats::sigmoid;
use recur_core::{Error, Result};
use std::ops::Range;

/// The trees' inputs: one row per scored table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    pub names: Vec<String>,
    /// The table row of each design row.
    pub rows: Vec<usize>,
    /// Row-major `[rows.len(), names.len()]`.
    pub x: Vec<f64>,
}

impl Design {
    /// Features of each row of the row-major `[n, F]` buffer `values`, then a
    /// lagged copy of all of them per lag: every row from the largest lag.
    pub fn new(features: &[String], values: &[f64], lags: &[usize]) -> Design {
        let n = values.len() / features.len().max(1);
        let max_lag = lags.iter().copied().max().unwrap_or(0);
        let rows: Vec<usize> = (max_lag..n).collect();
        Design::at(features, values, lags, &rows)
    }

    /// The design rows of table rows `rows` (each at least the largest lag
    /// and below `values`'s row count).
    pub fn at(features: &[String], values: &[f64], lags: &[usize], rows: &[usize]) -> Design {
        let f = features.len();
        let mut names: Vec<String> = features.to_vec();
        for l in lags {
            names.extend(features.iter().map(|name| format!("{name}_lag{l}")));
        }
        let mut x = Vec::with_capacity(rows.len() * names.len());
        for &r in rows {
            x.extend_from_slice(&values[r * f..(r + 1) * f]);
            for &l in lags {
                x.extend_from_slice(&values[(r - l) * f..(r - l + 1) * f]);
            }
        }
        Design {
            names,
            rows: rows.to_vec(),
            x,
        }
    }

    fn width(&self) -> usize {
        self.names.len()
    }

    /// The design rows `keep` column by column, as forust reads a matrix.
    fn columns(&self, keep: &[usize]) -> Vec<f64> {
        let w = self.width();
        let mut cols = Vec::with_capacity(keep.len() * w);
        for j in 0..w {
            cols.extend(keep.iter().map(|&i| self.x[i * w + j]));
        }
        cols
    }

    /// Column-major values and labels of the design rows whose table row
    /// lies in `range` and has a label.
    fn part(&self, labels: &[Option<f32>], range: &Range<usize>) -> (Vec<f64>, Vec<f64>) {
        let keep: Vec<usize> = (0..self.rows.len())
            .filter(|&i| range.contains(&self.rows[i]) && labels[self.rows[i]].is_some())
            .collect();
        let cols = self.columns(&keep);
        let y = keep
            .iter()
            .map(|&i| labels[self.rows[i]].unwrap_or(0.0) as f64)
            .collect();
        (cols, y)
    }
}

/// Trees trained by recur, or read from XGBoost.
pub enum TreeModel {
    Forust {
        booster: Box<GradientBooster>,
        names: Vec<String>,
    },
    Xgboost {
        model: XgbModel,
        /// The design column of each of the model's features.
        columns: Vec<usize>,
        /// The design name of each of the model's features.
        names: Vec<String>,
    },
}

impl TreeModel {
    /// Trains on the labelled rows in `train`, stopping early on those in `val`.
    pub fn fit(
        d: &Design,
        labels: &[Option<f32>],
        train: Range<usize>,
        val: Range<usize>,
        cfg: &TreesConfig,
        seed: u64,
    ) -> Result<TreeModel> {
        let (xt, yt) = d.part(labels, &train);
        let (xv, yv) = d.part(labels, &val);
        if yt.is_empty() || yv.is_empty() {
            return Err(Error::Msg(format!(
                "the trees need labelled rows in training ({}) and validation ({}); a row needs its lags, so trees.lags (largest {}) must leave rows of each part",
                yt.len(),
                yv.len(),
                cfg.lags.iter().max().copied().unwrap_or(0)
            )));
        }
        let (wt, wv) = (vec![1.0; yt.len()], vec![1.0; yv.len()]);
        let mut b = GradientBooster::default()
            .set_iterations(cfg.iterations)
            .set_learning_rate(cfg.learning_rate as f32)
            .set_max_depth(cfg.max_depth)
            .set_early_stopping_rounds(Some(cfg.early_stopping_rounds))
            .set_evaluation_metric(Some(Metric::LogLoss))
            .set_seed(seed)
            // One thread: histogram sums in a fixed order, so the same seed
            // gives the same trees.
            .set_parallel(false);
        let mt = Matrix::new(&xt, yt.len(), d.width());
        let mv = Matrix::new(&xv, yv.len(), d.width());
        b.fit(&mt, &yt, &wt, Some(vec![(mv, &yv, &wv)]))
            .map_err(|e| Error::Msg(format!("the trees failed to train: {e}")))?;
        Ok(TreeModel::Forust {
            booster: Box::new(b),
            names: d.names.clone(),
        })
    }

    /// Trees recur trained, read back from their JSON ([`Self::to_json`]);
    /// `names` are the design's column names.
    pub fn from_forust_json(text: &str, names: Vec<String>, origin: &str) -> Result<TreeModel> {
        let booster = GradientBooster::from_json(text).map_err(|e| {
            Error::data(
                origin,
                format!("not a forust model ({e}); recur writes it at training: retrain"),
            )
        })?;
        // A crafted file must not index past a tree or the inputs, nor
        // loop: forust adds a node's children after it, so a child's index
        // is above its parent's (one pointing back made every prediction
        // walk forever), and a tree has at least its root.
        for (i, t) in booster.trees.iter().enumerate() {
            let n = t.nodes.len();
            if n == 0 {
                return Err(Error::data(
                    origin,
                    format!("tree {i} has no nodes; a tree has at least its root: retrain, or restore the file training wrote"),
                ));
            }
            for (j, node) in t.nodes.iter().enumerate().filter(|(_, x)| !x.is_leaf) {
                let children = [node.left_child, node.right_child, node.missing_node];
                if let Some(c) = children.iter().find(|&&c| c <= j) {
                    return Err(Error::data(
                        origin,
                        format!("tree {i} node {j} has child {c}, not after it: the tree would loop; retrain, or restore the file training wrote"),
                    ));
                }
            }
            for node in t.nodes.iter().filter(|x| !x.is_leaf) {
                if node.split_feature >= names.len()
                    || node.left_child >= n
                    || node.right_child >= n
                    || node.missing_node >= n
                {
                    return Err(Error::data(
                        origin,
                        format!(
                            "tree {i} reads input {} or a node beyond its {n}; the trees read {} inputs ({}): retrain, or restore the file training wrote",
                            node.split_feature,
                            names.len(),
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        if booster
            .prediction_iteration
            .is_some_and(|p| p > booster.trees.len())
        {
            return Err(Error::data(
                origin,
                "prediction_iteration is beyond the trees",
            ));
        }
        Ok(TreeModel::Forust {
            booster: Box::new(booster),
            names,
        })
    }

    /// Uses an XGBoost model; its features are matched to the design by
    /// name (or by position when it has none).
    pub fn xgboost(model: XgbModel, d: &Design, origin: &str) -> Result<TreeModel> {
        let columns: Vec<usize> = if model.feature_names.is_empty() {
            if model.n_features != d.names.len() {
                return Err(Error::data(
                    origin,
                    format!(
                        "the model has {} unnamed features; recur's tree inputs are {}: {}",
                        model.n_features,
                        d.names.len(),
                        d.names.join(", ")
                    ),
                ));
            }
            (0..model.n_features).collect()
        } else {
            model
                .feature_names
                .iter()
                .map(|n| {
                    d.names.iter().position(|m| m == n).ok_or_else(|| {
                        Error::data(
                            origin,
                            format!(
                                "the model reads feature `{n}`, which recur's tree inputs lack ({}); set data.features and trees.lags to match",
                                d.names.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        let names = columns.iter().map(|&c| d.names[c].clone()).collect();
        Ok(TreeModel::Xgboost {
            model,
            columns,
            names,
        })
    }

    /// P(event) for every design row, in order.
    pub fn predict(&self, d: &Design) -> Vec<f64> {
        let w = d.names.len();
        let n = d.rows.len();
        match self {
            TreeModel::Forust { booster, .. } => {
                let all: Vec<usize> = (0..n).collect();
                let cols = d.columns(&all);
                booster
                    .predict(&Matrix::new(&cols, n, w), false)
                    .into_iter()
                    .map(sigmoid)
                    .collect()
            }
            TreeModel::Xgboost { model, columns, .. } => {
                let x: Vec<f64> = (0..n)
                    .flat_map(|i| columns.iter().map(move |&c| d.x[i * w + c]))
                    .collect();
                model.predict(&x)
            }
        }
    }

    /// Feature importance by total gain, normalised, largest first.
    pub fn importance(&self) -> Vec<(String, f64)> {
        match self {
            TreeModel::Forust { booster, names } => {
                let m = booster.calculate_feature_importance(ImportanceMethod::TotalGain, true);
                let mut v: Vec<(String, f64)> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), m.get(&i).copied().unwrap_or(0.0) as f64))
                    .collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                v
            }
            TreeModel::Xgboost { model, names, .. } => model.importance_named(names),
        }
    }

    /// The trees as JSON, for the model directory (forust's own format).
    pub fn to_json(&self) -> Option<String> {
        match self {
            TreeModel::Forust { booster, .. } => booster.json_dump().ok(),
            TreeModel::Xgboost { .. } => None,
        }
    }

    /// Rounds kept after early stopping (forust) or trees that score
    /// (XGBoost: those up to its best_iteration, when it has one).
    pub fn n_trees(&self) -> usize {
        match self {
            TreeModel::Forust { booster, .. } => {
                booster.prediction_iteration.unwrap_or(booster.trees.len())
            }
            TreeModel::Xgboost { model, .. } => model.n_trees(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trees that loop or have no root are refused at load: a child
    /// pointing back made every prediction walk forever (`predict`,
    /// `eval` and `serve`'s readiness hung), and an empty tree panicked.
    #[test]
    fn a_tree_that_loops_or_has_no_nodes_is_refused() {
        let features = vec!["a".to_string(), "b".to_string()];
        let n = 400;
        let values: Vec<f64> = (0..n * 2).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let labels: Vec<Option<f32>> = (0..n)
            .map(|r| Some((values[r * 2] > 5.0) as u8 as f32))
            .collect();
        let d = Design::new(&features, &values, &[1]);
        let cfg = TreesConfig {
            iterations: 5,
            ..TreesConfig::default()
        };
        let m = TreeModel::fit(&d, &labels, 0..300, 300..n, &cfg, 1).unwrap();
        let json = m.to_json().unwrap();
        let load = |text: &str| TreeModel::from_forust_json(text, d.names.clone(), "trees.json");
        assert!(load(&json).is_ok());
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let root = &mut v["trees"][0]["nodes"][0];
        assert_eq!(root["is_leaf"], false);
        for k in ["left_child", "right_child", "missing_node"] {
            root[k] = 0.into();
        }
        let e = load(&v.to_string()).err().unwrap().to_string();
        assert!(e.contains("tree 0 node 0 has child 0, not after it"), "{e}");
        v["trees"][0]["nodes"] = serde_json::json!([]);
        let e = load(&v.to_string()).err().unwrap().to_string();
        assert!(e.contains("tree 0 has no nodes"), "{e}");
    }
}
