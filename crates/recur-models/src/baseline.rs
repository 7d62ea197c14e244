//! The two untrained baselines every LVM must beat to be worth serving
//! (SYSTEM.md): the last context vector, and the mean of the context, both
//! L2-normalised like the models' outputs so MSE compares like with like.

use crate::lvm::l2_normalize;
use candle_core::{IndexOp, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    CopyLast,
    ContextMean,
}

impl Baseline {
    pub const ALL: [Baseline; 2] = [Baseline::CopyLast, Baseline::ContextMean];

    /// The name used in reports (`copy_last`, `context_mean`).
    pub fn name(self) -> &'static str {
        match self {
            Baseline::CopyLast => "copy_last",
            Baseline::ContextMean => "context_mean",
        }
    }

    /// Predictions `[B, D]` for contexts `[B, C, D]`.
    pub fn predict(self, x: &Tensor) -> Result<Tensor> {
        let c = x.dim(1)?;
        let y = match self {
            Baseline::CopyLast => x.i((.., c - 1, ..))?,
            Baseline::ContextMean => x.mean(1)?,
        };
        l2_normalize(&y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn copy_last_and_mean_are_normalised() {
        let x = Tensor::new(&[[[3.0f32, 0.0], [0.0, 2.0]]], &Device::Cpu).unwrap();
        let last: Vec<Vec<f32>> = Baseline::CopyLast.predict(&x).unwrap().to_vec2().unwrap();
        assert_eq!(last, [[0.0, 1.0]]);
        let mean: Vec<Vec<f32>> = Baseline::ContextMean
            .predict(&x)
            .unwrap()
            .to_vec2()
            .unwrap();
        // mean (1.5, 1.0) / |.|
        let n = (1.5f32 * 1.5 + 1.0).sqrt();
        assert!((mean[0][0] - 1.5 / n).abs() < 1e-6 && (mean[0][1] - 1.0 / n).abs() < 1e-6);
    }
}
