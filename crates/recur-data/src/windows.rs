//! Windows as index ranges over one float32 buffer. The buffer holds the
//! scaled rows (`[rows, features]`, row-major) once; a window is its first
//! row, the row it is reported against and its label. Batches are gathered
//! from the buffer when the model asks for them, so a data set of `n` rows
//! costs `n * features` floats, not `n * L * features`.
//!
//! Whole series of different lengths (the sequences layout) carry their
//! lengths; [`WindowSet::batches`] then groups windows of one length, so a
//! model never reads padding and a series scores the same in any batch.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// First buffer row of the window; it spans `start .. start + sequence_length`.
    pub start: usize,
    /// The table row the prediction belongs to: the window's last row for a
    /// time series, the sample's row for whole sequences.
    pub row: usize,
    /// The label, where known.
    pub label: Option<f32>,
}

#[derive(Debug, Clone)]
pub struct WindowSet {
    pub buffer: Arc<[f32]>,
    pub n_features: usize,
    /// The windows' length; with `lengths`, the longest one's.
    pub sequence_length: usize,
    pub windows: Vec<Window>,
    /// Each series' length by [`Window::row`], when they differ (the
    /// sequences layout); `None`: every window spans `sequence_length`.
    pub lengths: Option<Arc<[usize]>>,
}

impl WindowSet {
    /// The number of windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }
    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
    /// The labels; windows without one count as 0 (callers keep only labelled windows).
    pub fn labels(&self) -> Vec<f32> {
        self.windows
            .iter()
            .map(|w| w.label.unwrap_or(0.0))
            .collect()
    }
    /// The windows that satisfy `keep`, over the same buffer.
    pub fn filter(&self, keep: impl Fn(&Window) -> bool) -> WindowSet {
        WindowSet {
            windows: self.windows.iter().copied().filter(|w| keep(w)).collect(),
            ..self.clone()
        }
    }
    /// The length of window `i`.
    pub fn len_of(&self, i: usize) -> usize {
        match &self.lengths {
            Some(l) => l[self.windows[i].row],
            None => self.sequence_length,
        }
    }

    /// `order` cut into batches of at most `size` windows of one length:
    /// windows keep their order within a length, and batches come in the
    /// order of their first window in `order`. Without `lengths`, plain
    /// chunks of `order`.
    pub fn batches(&self, order: &[usize], size: usize) -> Vec<Vec<usize>> {
        let size = size.max(1);
        if self.lengths.is_none() {
            return order.chunks(size).map(<[usize]>::to_vec).collect();
        }
        let mut open: std::collections::HashMap<usize, usize> = Default::default();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for &i in order {
            let l = self.len_of(i);
            match open.get(&l) {
                Some(&b) if out[b].len() < size => out[b].push(i),
                _ => {
                    open.insert(l, out.len());
                    out.push(vec![i]);
                }
            }
        }
        out
    }

    /// Copies the windows `idx` into `out` as a `[idx.len(), L, n_features]`
    /// batch, `L` their length (one length a batch: see [`Self::batches`]).
    pub fn gather(&self, idx: &[usize], out: &mut Vec<f32>) {
        let l = idx
            .first()
            .map_or(self.sequence_length, |&i| self.len_of(i));
        debug_assert!(
            idx.iter().all(|&i| self.len_of(i) == l),
            "one length a batch"
        );
        let span = l * self.n_features;
        out.clear();
        out.reserve(idx.len() * span);
        for &i in idx {
            let s = self.windows[i].start * self.n_features;
            out.extend_from_slice(&self.buffer[s..s + span]);
        }
    }
}

/// Every window of length `sequence_length` sliding over `n_rows` rows, each tied to
/// its last row and that row's label: `n_rows - sequence_length + 1` windows.
pub fn sliding(n_rows: usize, sequence_length: usize, labels: &[Option<f32>]) -> Vec<Window> {
    (0..(n_rows + 1).saturating_sub(sequence_length))
        .map(|start| {
            let row = start + sequence_length - 1;
            Window {
                start,
                row,
                label: labels[row],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_tied_to_their_last_row_and_gather_the_right_rows() {
        // 5 rows, 2 features: row r holds (r, 10r).
        let buf: Vec<f32> = (0..5).flat_map(|r| [r as f32, 10.0 * r as f32]).collect();
        let labels: Vec<Option<f32>> = vec![Some(0.0), Some(1.0), Some(0.0), Some(1.0), None];
        let w = sliding(5, 3, &labels);
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            Window {
                start: 0,
                row: 2,
                label: Some(0.0)
            }
        );
        assert_eq!(
            w[2],
            Window {
                start: 2,
                row: 4,
                label: None
            }
        );
        let set = WindowSet {
            buffer: buf.into(),
            n_features: 2,
            sequence_length: 3,
            windows: w,
            lengths: None,
        };
        let mut out = Vec::new();
        set.gather(&[1], &mut out);
        assert_eq!(out, vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0]);
    }

    #[test]
    fn batches_hold_one_length_and_keep_the_order() {
        let windows = (0..6)
            .map(|i| Window {
                start: 0,
                row: i,
                label: None,
            })
            .collect();
        let set = WindowSet {
            buffer: vec![0.0; 8].into(),
            n_features: 1,
            sequence_length: 3,
            windows,
            lengths: Some(vec![3, 2, 3, 3, 2, 1].into()),
        };
        let b = set.batches(&[5, 0, 1, 2, 3, 4], 2);
        assert_eq!(b, vec![vec![5], vec![0, 2], vec![1, 4], vec![3]]);
        let mut out = Vec::new();
        set.gather(&b[2], &mut out);
        assert_eq!(out.len(), 2 * 2);
    }
}
