//! What the training tests share: a small LCG, so the data does not depend
//! on any crate's generator, and the base config of a whole-series test.

#![allow(dead_code)]

use recur_core::config::{ClassifierKind, Config, Layout};
use std::path::Path;

/// A small LCG: the same data on every machine and crate version.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value, uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

/// A config of the sequences layout on the `.ts` file `path`: labels from
/// the file, a shuffled split, a small `kind` model trained fast.
pub fn sequences_config(path: &Path, kind: ClassifierKind) -> Config {
    let mut c = Config::default();
    c.data.path = Some(path.to_path_buf());
    c.data.layout = Layout::Sequences;
    c.data.time_column = None;
    c.data.features = None;
    c.data.target.column = None;
    c.data.split.shuffle = Some(true);
    c.model.kind = kind;
    c.training.learning_rate = 0.01;
    c
}
