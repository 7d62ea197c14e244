//! The feature rows `/v1/classify` was sent, kept for the drift figures of
//! `/metrics`, as `recur drift` would read them from a file of the same
//! rows: smoothed as the model reads them (`reference.json` holds the
//! training rows smoothed), and each row once.
//!
//! A live client sends a window per new row, and consecutive windows share
//! all but one row. Counting every row of every window counted a row
//! dozens of times; counting only each window's last rows (as before)
//! missed most rows of long windows and read them unsmoothed, so the
//! training rows themselves showed as drifted. Rows that carry the
//! model's time column are told apart by their time and values; rows that
//! carry no time cannot be, so a window adds the one row it scores.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Rows of `/v1/classify` kept for drift.
pub const SEEN_ROWS: usize = 5000;

/// A row as the model reads it, with the key that tells it apart from the
/// same row sent again (`None`: no time, never taken for another).
pub type KeptRow = (Option<u64>, Vec<f64>);

/// The latest [`SEEN_ROWS`] distinct rows, oldest first.
#[derive(Default)]
pub struct SeenRows {
    rows: VecDeque<KeptRow>,
    keys: HashSet<u64>,
}

impl SeenRows {
    /// Adds `rows` in order, skipping those already held.
    pub fn extend(&mut self, rows: Vec<KeptRow>) {
        for (key, row) in rows {
            if let Some(k) = key {
                if !self.keys.insert(k) {
                    continue;
                }
            }
            if self.rows.len() == SEEN_ROWS {
                if let Some((Some(k), _)) = self.rows.pop_front() {
                    self.keys.remove(&k);
                }
            }
            self.rows.push_back((key, row));
        }
    }

    /// The rows held, flat (row after row), and how many.
    pub fn values(&self) -> (Vec<f64>, usize) {
        let v = self
            .rows
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        (v, self.rows.len())
    }
}

/// The rows one window adds: its `values` (`f` per row, as sent) smoothed
/// over the window with `span` (as the model smooths them), then every row
/// past the smoothing's `warmup` where each of those rows has a time
/// (`times`, one per row: the time column's value as sent), else the last
/// row alone.
pub fn window_rows(
    values: &[f64],
    f: usize,
    times: &[Option<serde_json::Value>],
    span: usize,
    warmup: usize,
) -> Vec<KeptRow> {
    if f == 0 || values.len() < f {
        return Vec::new();
    }
    let n = values.len() / f;
    let mut smooth = values.to_vec();
    recur_data::select::ewma(&mut smooth, f, span);
    let first = warmup.min(n - 1);
    let timed = (first..n).all(|i| times.get(i).is_some_and(|t| t.is_some()));
    if !timed {
        return vec![(None, smooth[(n - 1) * f..].to_vec())];
    }
    (first..n)
        .map(|i| {
            let mut h = DefaultHasher::new();
            times[i].as_ref().map(|t| t.to_string()).hash(&mut h);
            for x in &values[i * f..(i + 1) * f] {
                x.to_bits().hash(&mut h);
            }
            (Some(h.finish()), smooth[i * f..(i + 1) * f].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A live feed's windows share rows: each row is kept once, smoothed
    /// from the window's first row, past the warm-up.
    #[test]
    fn overlapping_timed_windows_keep_each_row_once_smoothed() {
        let series: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let times: Vec<Option<serde_json::Value>> = (0..10).map(|i| Some(json!(i))).collect();
        let mut seen = SeenRows::default();
        for end in 4..=10 {
            let start = end - 4;
            seen.extend(window_rows(
                &series[start..end],
                1,
                &times[start..end],
                1,
                0,
            ));
        }
        let (v, n) = seen.values();
        assert_eq!(n, 10);
        assert_eq!(v, series);
        // Smoothed, from the row after the warm-up.
        let rows = window_rows(&[0.0, 2.0, 4.0], 1, &times[..3], 3, 1);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].1[0], rows[1].1[0]), (1.0, 2.5));
        // Without times, the row scored, every time.
        let untimed = vec![None; 3];
        let mut seen = SeenRows::default();
        seen.extend(window_rows(&[0.0, 2.0, 4.0], 1, &untimed, 3, 1));
        seen.extend(window_rows(&[0.0, 2.0, 4.0], 1, &untimed, 3, 1));
        assert_eq!(seen.values(), (vec![2.5, 2.5], 2));
        // Another series at the same time with other values is its own row.
        let mut seen = SeenRows::default();
        seen.extend(window_rows(&[1.0], 1, &[Some(json!("d"))], 1, 0));
        seen.extend(window_rows(&[2.0], 1, &[Some(json!("d"))], 1, 0));
        seen.extend(window_rows(&[2.0], 1, &[Some(json!("d"))], 1, 0));
        assert_eq!(seen.values().1, 2);
    }

    #[test]
    fn the_oldest_rows_go_past_the_limit_and_can_come_back() {
        let mut seen = SeenRows::default();
        let row = |i: usize| window_rows(&[i as f64], 1, &[Some(json!(i))], 1, 0);
        for i in 0..SEEN_ROWS + 10 {
            seen.extend(row(i));
        }
        let (v, n) = seen.values();
        assert_eq!((n, v[0]), (SEEN_ROWS, 10.0));
        // Row 0 went out with its key: sent again, it is kept again.
        seen.extend(row(0));
        assert_eq!(seen.values().0[SEEN_ROWS - 1], 0.0);
    }
}
