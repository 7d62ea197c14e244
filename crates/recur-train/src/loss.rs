//! Binary cross-entropy on logits with `pos_weight`, in PyTorch's stable
//! form: `(1 - y) z + (1 + (w - 1) y) (log1p(exp(-|z|)) + max(-z, 0))`.
//! candle has no such loss; this one is built from ops with backward passes.

use candle_core::{Result, Tensor};
use recur_core::config::PosWeight;

/// `neg / pos` counted on the training labels; 1.0 when there are no positives.
pub fn auto_pos_weight(labels: &[f32]) -> f64 {
    let pos = labels.iter().filter(|v| **v > 0.5).count();
    if pos == 0 {
        1.0
    } else {
        (labels.len() - pos) as f64 / pos as f64
    }
}

/// The positive-class weight of `cfg`: a number, `none` (1), or `auto`
/// (negatives over positives on the training labels).
pub fn resolve_pos_weight(cfg: &PosWeight, train_labels: &[f32]) -> f64 {
    match cfg {
        PosWeight::Number(v) => *v,
        PosWeight::Named(n) if n == "none" => 1.0,
        PosWeight::Named(_) => auto_pos_weight(train_labels),
    }
}

/// Mean weighted BCE of logits `z [B]` against labels `y [B]`.
pub fn bce_with_logits(z: &Tensor, y: &Tensor, pos_weight: f64) -> Result<Tensor> {
    let softplus_neg = ((z.abs()?.neg()?.exp()? + 1.0)?.log()? + z.neg()?.relu()?)?;
    let one_minus_y = y.affine(-1.0, 1.0)?;
    let lw = y.affine(pos_weight - 1.0, 1.0)?;
    ((one_minus_y * z)? + (lw * softplus_neg)?)?.mean_all()
}

/// The same loss in f64 on plain numbers (validation loss for early stopping).
pub fn bce_with_logits_f64(z: &[f32], y: &[f32], pos_weight: f64) -> f64 {
    let s: f64 = z
        .iter()
        .zip(y)
        .map(|(&z, &y)| {
            let (z, y) = (z as f64, y as f64);
            let sp = (-z.abs()).exp().ln_1p() + (-z).max(0.0);
            (1.0 - y) * z + (1.0 + (pos_weight - 1.0) * y) * sp
        })
        .sum();
    s / z.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pos_weight_is_neg_over_pos() {
        assert_eq!(auto_pos_weight(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 2.5);
        assert_eq!(auto_pos_weight(&[0.0, 0.0]), 1.0);
        assert_eq!(
            resolve_pos_weight(&PosWeight::Named("none".into()), &[1.0, 0.0, 0.0]),
            1.0
        );
        assert_eq!(resolve_pos_weight(&PosWeight::Number(3.0), &[1.0]), 3.0);
    }

    #[test]
    fn loss_matches_the_definition_and_the_f64_twin() {
        let z = [2.0f32, -1.0, 0.5, -30.0];
        let y = [1.0f32, 0.0, 0.0, 1.0];
        let w = 2.5;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let want: f64 = z
            .iter()
            .zip(&y)
            .map(|(&z, &y)| {
                let p = sig(z as f64);
                if y > 0.5 {
                    -w * p.ln()
                } else {
                    -(1.0 - p).ln()
                }
            })
            .sum::<f64>()
            / 4.0;
        let dev = Device::Cpu;
        let got: f32 = bce_with_logits(
            &Tensor::new(&z, &dev).unwrap(),
            &Tensor::new(&y, &dev).unwrap(),
            w,
        )
        .unwrap()
        .to_scalar()
        .unwrap();
        assert!(((got as f64) - want).abs() < 1e-4 * want, "{got} vs {want}");
        assert!((bce_with_logits_f64(&z, &y, w) - want).abs() < 1e-9);
    }
}
