//! The split in time. Rows are cut into train, validation and test by row
//! order with `gap` rows left out between parts, and a window belongs to a
//! part only when all its rows *and* the row its label comes from lie inside
//! that part. So no window spans two parts and no training label is read
//! from a validation row: the leak of the original (overlapping windows
//! split at random, bug 5 of SYSTEM.md) cannot happen.

use recur_core::config::SplitConfig;
use recur_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Rows `start..end` of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRange {
    pub start: usize,
    pub end: usize,
}

impl RowRange {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    /// Whether the range holds no row.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Whether rows `first..=last` and the label row all lie inside.
    pub fn holds(&self, first: usize, last: usize, label_row: usize) -> bool {
        first >= self.start && last < self.end && label_row < self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeSplit {
    pub train: RowRange,
    pub val: RowRange,
    pub test: RowRange,
    pub gap: usize,
}

/// Cuts `n` rows into train / gap / val / gap / test.
pub fn time_split(source: &str, n: usize, cfg: &SplitConfig, gap: usize) -> Result<TimeSplit> {
    // Saturating: a gap of 2^63 doubled to 0 and passed.
    let usable = n.saturating_sub(gap.saturating_mul(2));
    let n_train = (usable as f64 * cfg.train).round() as usize;
    let n_val = (usable as f64 * cfg.val).round() as usize;
    if usable == 0 || n_train == 0 || n_val == 0 || n_train + n_val > usable {
        return Err(Error::data(
            source,
            format!(
                "{n} rows are too few to split into train/val/test with a gap of {gap} rows \
                 between parts (the gap is data.split.gap, else the larger of \
                 model.sequence_length - 1 and data.target.horizon)"
            ),
        ));
    }
    let train = RowRange {
        start: 0,
        end: n_train,
    };
    let val = RowRange {
        start: n_train + gap,
        end: n_train + gap + n_val,
    };
    let test = RowRange {
        start: (val.end + gap).min(n),
        end: n,
    };
    Ok(TimeSplit {
        train,
        val,
        test,
        gap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_ordered_and_separated_by_the_gap() {
        let s = time_split("f", 1000, &SplitConfig::default(), 31).unwrap();
        assert_eq!(s.train, RowRange { start: 0, end: 657 });
        assert_eq!(s.val.start - s.train.end, 31);
        assert_eq!(s.test.start - s.val.end, 31);
        assert_eq!(s.test.end, 1000);
        assert!(time_split("f", 60, &SplitConfig::default(), 31).is_err());
        // A gap whose double does not fit is too large, not zero.
        let e = time_split("f", 1000, &SplitConfig::default(), 1 << 63).unwrap_err();
        assert!(e.to_string().contains("too few to split"), "{e}");
    }
}
