//! Binary cross-entropy on logits with `pos_weight`, in PyTorch's stable
//! form: `(1 - y) z + (1 + (w - 1) y) (log1p(exp(-|z|)) + max(-z, 0))`.
//! candle has no such loss; this one is built from ops with backward passes.
//! With more than two classes, softmax cross-entropy with class weights, as
//! PyTorch's `cross_entropy(weight=w)`: `sum_i w[y_i] nll_i / sum_i w[y_i]`.

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

/// Per-class loss weights: `auto` is `n / (K n_c)` on the training labels
/// (a class absent from them gets 1), `none` all ones.
pub fn class_weights(cfg: &str, train_labels: &[f32], k: usize) -> Vec<f64> {
    if cfg == "none" {
        return vec![1.0; k];
    }
    let mut count = vec![0usize; k];
    for &y in train_labels {
        count[y as usize] += 1;
    }
    let n = train_labels.len() as f64;
    count
        .iter()
        .map(|&c| if c == 0 { 1.0 } else { n / (k * c) as f64 })
        .collect()
}

/// Log-softmax over the last axis of `z [B, K]`, stable.
fn log_softmax(z: &Tensor) -> Result<Tensor> {
    let max = z.max_keepdim(1)?.detach();
    let shifted = z.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)
}

/// Weighted softmax cross-entropy of logits `z [B, K]` against class
/// indices `y`.
pub fn cross_entropy(z: &Tensor, y: &[f32], weights: &[f64]) -> Result<Tensor> {
    let (b, k) = z.dims2()?;
    let total: f64 = y.iter().map(|&c| weights[c as usize]).sum();
    let mut m = vec![0f32; b * k];
    for (i, &c) in y.iter().enumerate() {
        m[i * k + c as usize] = (weights[c as usize] / total) as f32;
    }
    let m = Tensor::from_vec(m, (b, k), z.device())?;
    (log_softmax(z)? * m)?.sum_all()?.neg()
}

/// The same loss in f64 on flat logits `[n * K]` (validation loss).
pub fn cross_entropy_f64(z: &[f32], y: &[f32], weights: &[f64]) -> f64 {
    let k = weights.len();
    let (mut s, mut total) = (0.0, 0.0);
    for (row, &c) in z.chunks(k).zip(y) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let lse = max
            + row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        let w = weights[c as usize];
        s += w * (lse - row[c as usize] as f64);
        total += w;
    }
    s / total.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weighted_cross_entropy_matches_pytorch_and_its_f64_twin() {
        // torch.nn.functional.cross_entropy(z, y, weight=w) is
        // sum_i w[y_i] (lse_i - z_i[y_i]) / sum_i w[y_i], written out here.
        let z = [2.0f32, 0.5, -1.0, 0.1, 0.2, 0.3, -0.5, 1.5, 0.0];
        let y = [0.0f32, 2.0, 2.0];
        let w = class_weights("auto", &[0.0, 0.0, 1.0, 2.0], 3);
        assert_eq!(w, vec![4.0 / 6.0, 4.0 / 3.0, 4.0 / 3.0]);
        assert_eq!(class_weights("none", &y, 3), vec![1.0; 3]);
        let lse = |r: &[f32]| r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
        let want = (w[0] * (lse(&z[0..3]) - z[0] as f64)
            + w[2] * (lse(&z[3..6]) - z[5] as f64)
            + w[2] * (lse(&z[6..9]) - z[8] as f64))
            / (w[0] + 2.0 * w[2]);
        let got = cross_entropy_f64(&z, &y, &w);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        let zt = Tensor::from_slice(&z, (3, 3), &Device::Cpu).unwrap();
        let t = cross_entropy(&zt, &y, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((t as f64 - want).abs() < 1e-5, "{t} vs {want}");
    }

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
