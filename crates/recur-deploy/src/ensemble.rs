//! The blend of the trees' and the LSTM's probabilities (SYSTEM.md Job A,
//! step 12). The two score different rows: the trees every row with its
//! lags, the LSTM only rows that end a full window (`n - L + 1`); the
//! original lined them up by position and broke (bug 4). Here every
//! probability carries its row index and the blend joins on it.

use recur_core::config::{EnsembleConfig, WeightMode};
use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Probabilities of the rows both models scored, in row order.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub rows: Vec<usize>,
    pub trees: Vec<f64>,
    pub lstm: Vec<f64>,
}

fn check_sorted(what: &str, v: &[(usize, f64)]) -> Result<()> {
    if let Some(w) = v.windows(2).find(|w| w[0].0 >= w[1].0) {
        return Err(Error::Msg(format!(
            "the {what} predictions must be in increasing row order without repeats (row {} then {})",
            w[0].0, w[1].0
        )));
    }
    Ok(())
}

/// Joins `(row, probability)` lists on the row.
pub fn join(trees: &[(usize, f64)], lstm: &[(usize, f64)]) -> Result<Joined> {
    check_sorted("trees'", trees)?;
    check_sorted("LSTM's", lstm)?;
    let mut out = Joined {
        rows: Vec::new(),
        trees: Vec::new(),
        lstm: Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < trees.len() && j < lstm.len() {
        match trees[i].0.cmp(&lstm[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.rows.push(trees[i].0);
                out.trees.push(trees[i].1);
                out.lstm.push(lstm[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    if out.rows.is_empty() {
        return Err(Error::Msg(
            "the trees and the LSTM scored no row in common: nothing to blend".into(),
        ));
    }
    Ok(out)
}

/// The weights of the blend; they sum to one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub trees: f64,
    pub lstm: f64,
}

impl Weights {
    /// The blended probability of the trees' and the LSTM's.
    pub fn blend(&self, trees: f64, lstm: f64) -> f64 {
        self.trees * trees + self.lstm * lstm
    }
}

/// The config's weights, normalised to sum to one.
pub fn fixed(trees: f64, lstm: f64) -> Weights {
    let s = trees + lstm;
    Weights {
        trees: trees / s,
        lstm: lstm / s,
    }
}

/// `perf = 1 / (1 + logloss)` per model, `w = perf / sum(perf)`, then
/// the trees' weight clipped so that both weights lie in `[min_w, max_w]`
/// (`min_w <= 0.5 <= max_w`, as the config requires), the LSTM's its
/// complement. Clipping each and renormalising, as before, left a weight
/// outside the bounds (0.512 with a maximum of 0.5); for bounds that sum
/// to one (the default 0.1 and 0.9) the two give the same weights.
pub fn dynamic(logloss_trees: f64, logloss_lstm: f64, min_w: f64, max_w: f64) -> Weights {
    let (pt, pl) = (1.0 / (1.0 + logloss_trees), 1.0 / (1.0 + logloss_lstm));
    let w = fixed(pt, pl);
    let (lo, hi) = (min_w.max(1.0 - max_w), max_w.min(1.0 - min_w));
    if (lo..=hi).contains(&w.trees) {
        return w;
    }
    let trees = w.trees.clamp(lo.min(hi), hi);
    Weights {
        trees,
        lstm: 1.0 - trees,
    }
}

/// The weights a config asks for, given the validation log losses.
pub fn weights(cfg: &EnsembleConfig, logloss_trees: f64, logloss_lstm: f64) -> Weights {
    match cfg.weights {
        WeightMode::Fixed => fixed(cfg.trees, cfg.lstm),
        WeightMode::Dynamic => dynamic(logloss_trees, logloss_lstm, cfg.min_weight, cfg.max_weight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_lines_rows_up_by_index_not_by_position() {
        // Trees score rows 0..10; the LSTM (L = 4) rows 3..10.
        let trees: Vec<(usize, f64)> = (0..10).map(|r| (r, r as f64 / 100.0)).collect();
        let lstm: Vec<(usize, f64)> = (3..10).map(|r| (r, 0.5 + r as f64 / 100.0)).collect();
        let j = join(&trees, &lstm).unwrap();
        assert_eq!(j.rows, (3..10).collect::<Vec<_>>());
        for (k, &r) in j.rows.iter().enumerate() {
            assert_eq!(j.trees[k], r as f64 / 100.0);
            assert_eq!(j.lstm[k], 0.5 + r as f64 / 100.0);
        }
        // Gaps on either side are skipped, not shifted.
        let j = join(
            &[(1, 0.1), (4, 0.4), (6, 0.6)],
            &[(4, 0.9), (5, 0.8), (6, 0.7)],
        )
        .unwrap();
        assert_eq!(
            (j.rows, j.trees, j.lstm),
            (vec![4, 6], vec![0.4, 0.6], vec![0.9, 0.7])
        );
        assert!(join(&[(1, 0.1)], &[(2, 0.2)]).is_err());
        assert!(join(&[(2, 0.1), (1, 0.2)], &[(2, 0.2)])
            .unwrap_err()
            .to_string()
            .contains("row 2 then 1"));
    }

    #[test]
    fn weights_sum_to_one_and_respect_the_bounds() {
        let w = fixed(0.7, 0.3);
        assert!((w.trees + w.lstm - 1.0).abs() < 1e-15);
        let w = fixed(7.0, 3.0);
        assert!((w.trees - 0.7).abs() < 1e-15);
        for (a, b) in [(0.3, 0.9), (0.6, 0.6), (0.01, 5.0), (2.0, 0.1)] {
            let w = dynamic(a, b, 0.2, 0.8);
            assert!((w.trees + w.lstm - 1.0).abs() < 1e-12, "{w:?}");
            assert!(w.trees > 0.0 && w.lstm > 0.0);
            // The better (lower log loss) model weighs more.
            if a < b {
                assert!(w.trees > w.lstm);
            }
        }
        // perf = 1/1.5 and 1/3: w = 2/3, 1/3; clipped to [0.4, 0.6]: 0.6, 0.4.
        let w = dynamic(0.5, 2.0, 0.4, 0.6);
        assert!(
            (w.trees - 0.6).abs() < 1e-12 && (w.lstm - 0.4).abs() < 1e-12,
            "{w:?}"
        );
        assert!((fixed(1.0, 1.0).blend(0.2, 0.4) - 0.3).abs() < 1e-15);
        // Bounds that do not sum to one: both weights stay inside them
        // (clipping each and renormalising gave the trees 0.512 > 0.5).
        let w = dynamic(0.5, 2.0, 0.45, 0.5);
        assert!(
            (w.trees - 0.5).abs() < 1e-12 && (w.lstm - 0.5).abs() < 1e-12,
            "{w:?}"
        );
        let w = dynamic(2.0, 0.5, 0.3, 0.6);
        assert!((w.trees - 0.4).abs() < 1e-12 && (w.lstm - 0.6).abs() < 1e-12);
        // Inside the bounds the weights are the performance shares as
        // computed, bit for bit.
        assert_eq!(dynamic(0.6, 0.7, 0.1, 0.9), fixed(1.0 / 1.6, 1.0 / 1.7));
    }
}
