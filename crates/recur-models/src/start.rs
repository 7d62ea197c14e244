//! Where LVM training starts: PyTorch's default initialisation, or the
//! "average" start, which sets a few tensors so that the untrained model
//! already predicts a recency-weighted average of its context.
//!
//! Why: on real sentence embeddings the context mean is a strong
//! predictor (cosine about 0.51 on Wikipedia with MiniLM), and the signal
//! beyond it is small and mostly recency (the best 5 linear weights give
//! +0.007). From PyTorch's random start, every architecture fits the
//! training articles' topics long before it finds the average, and ends
//! below context-mean on held-out articles (measured in PyTorch and in
//! recur). Started at the average, a few epochs at a low learning rate
//! improve on it in and out of distribution. The architecture and its
//! tensors are unchanged: only their starting values differ.
//!
//! Settings (gate orders as PyTorch's; `d_model` must equal the input
//! dimension so that the projections can start as the identity):
//! - `lstm`: projections `I`, bias 0; per block `W_hh = 0`, `b_hh = 0`,
//!   `W_ih` zero but its g block `2I`; `b_ih` = i 2, f 3, g 0, o 2 (the cell
//!   sums its inputs with forgetting 0.95 per step);
//! - `gru`: projections `I`; `W_ih` zero but its n block `0.77 I`; `W_hh`
//!   zero but its n block `I`; `b_hh = 0`; `b_ih` = r +5, z -5, n 0 (so
//!   `h_t ~ tanh(0.77 x_t + h_{t-1})`);
//! - `transformer`: `input_proj = 300 I` (the positions become small
//!   beside the vectors), attention q and k zero (uniform over the causal
//!   prefix), v `4I`, out_proj `I` with bias 0, `linear2` zero (the
//!   feed-forward adds nothing), head.0 `I` with bias 10 (GELU acts as the
//!   identity there and the LayerNorm removes the shift), head.3 `I`;
//! - `amn`: the MLP's last Linear zero, so it starts exactly at the
//!   context mean;
//! - `mlp`: its `output` Linear zero, so it too starts exactly at the
//!   context mean (any `d_model`).

use crate::lvm::{LvmArch, LvmKind};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;

fn eye(n: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0f32; n * n];
    for i in 0..n {
        v[i * n + i] = scale;
    }
    v
}

/// `[g * d, d]`: zero but block `k` is `scale * I`.
fn gate_block(g: usize, d: usize, k: usize, scale: f32) -> Vec<f32> {
    let mut v = vec![0f32; g * d * d];
    for i in 0..d {
        v[(k * d + i) * d + i] = scale;
    }
    v
}

/// `[g * d]` with each gate's `d` entries set to that gate's value.
fn gate_bias(d: usize, values: &[f32]) -> Vec<f32> {
    values.iter().flat_map(|&b| vec![b; d]).collect()
}

/// Overwrites the tensors that the average start sets. The vector
/// dimension and the model width must be equal except for the AMN.
pub fn average(t: &mut HashMap<String, Tensor>, a: &LvmArch, dev: &Device) -> Result<()> {
    let (kind, input, d, layers) = (a.kind, a.input_dim, a.d_model, a.num_layers);
    if !matches!(kind, LvmKind::Amn | LvmKind::Mlp) && d != input {
        candle_core::bail!(
            "model.init `average` starts the projections as the identity, so d_model ({d}) must equal the vector dimension ({input})"
        );
    }
    let mut set = |name: String, v: Vec<f32>| -> Result<()> {
        let shape = t
            .get(&name)
            .map(|x| x.shape().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
        t.insert(name, Tensor::from_vec(v, shape, dev)?);
        Ok(())
    };
    let zeros = |n: usize| vec![0f32; n];
    match kind {
        LvmKind::Lstm | LvmKind::Gru => {
            set("input_proj.weight".into(), eye(d, 1.0))?;
            set("input_proj.bias".into(), zeros(d))?;
            set("output_proj.weight".into(), eye(d, 1.0))?;
            set("output_proj.bias".into(), zeros(d))?;
            for i in 0..layers {
                let p = format!("blocks.{i}.{kind}");
                if kind == LvmKind::Lstm {
                    set(format!("{p}.weight_ih_l0"), gate_block(4, d, 2, 2.0))?;
                    set(format!("{p}.weight_hh_l0"), zeros(4 * d * d))?;
                    set(
                        format!("{p}.bias_ih_l0"),
                        gate_bias(d, &[2.0, 3.0, 0.0, 2.0]),
                    )?;
                    set(format!("{p}.bias_hh_l0"), zeros(4 * d))?;
                } else {
                    set(format!("{p}.weight_ih_l0"), gate_block(3, d, 2, 0.77))?;
                    set(format!("{p}.weight_hh_l0"), gate_block(3, d, 2, 1.0))?;
                    set(format!("{p}.bias_ih_l0"), gate_bias(d, &[5.0, -5.0, 0.0]))?;
                    set(format!("{p}.bias_hh_l0"), zeros(3 * d))?;
                }
            }
        }
        LvmKind::Transformer => {
            set("input_proj.weight".into(), eye(d, 300.0))?;
            set("input_proj.bias".into(), zeros(d))?;
            for i in 0..layers {
                let p = format!("encoder.layers.{i}");
                set(
                    format!("{p}.self_attn.in_proj_weight"),
                    gate_block(3, d, 2, 4.0),
                )?;
                set(format!("{p}.self_attn.in_proj_bias"), zeros(3 * d))?;
                set(format!("{p}.self_attn.out_proj.weight"), eye(d, 1.0))?;
                set(format!("{p}.self_attn.out_proj.bias"), zeros(d))?;
                set(format!("{p}.linear2.weight"), zeros(d * a.ff))?;
                set(format!("{p}.linear2.bias"), zeros(d))?;
            }
            set("head.0.weight".into(), eye(d, 1.0))?;
            set("head.0.bias".into(), vec![10.0; d])?;
            set("head.3.weight".into(), eye(d, 1.0))?;
            set("head.3.bias".into(), zeros(d))?;
        }
        LvmKind::Amn => {
            set("mlp.6.weight".into(), zeros(input * d))?;
            set("mlp.6.bias".into(), zeros(input))?;
        }
        LvmKind::Mlp => {
            set("output.weight".into(), zeros(input * d))?;
            set("output.bias".into(), zeros(input))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lvm::LvmKind;
    use crate::{Lvm, LvmArch, Start};
    use candle_core::{Device, Tensor};
    use recur_core::rng::Rng;

    /// Unit vectors with a shared topic direction, as sentence embeddings.
    fn contexts(b: usize, c: usize, d: usize) -> Tensor {
        let mut rng = Rng::new(5);
        let topic: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
        let mut v = Vec::new();
        for _ in 0..b * c {
            let x: Vec<f32> = topic.iter().map(|t| t + rng.normal()).collect();
            let n = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.extend(x.iter().map(|a| a / n));
        }
        Tensor::from_vec(v, (b, c, d), &Device::Cpu).unwrap()
    }

    fn cos_rows(a: &Tensor, b: &Tensor) -> Vec<f32> {
        let a: Vec<Vec<f32>> = a.to_vec2().unwrap();
        let b: Vec<Vec<f32>> = b.to_vec2().unwrap();
        a.iter()
            .zip(&b)
            .map(|(x, y)| {
                let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                let n = |v: &[f32]| v.iter().map(|p| p * p).sum::<f32>().sqrt();
                dot / (n(x) * n(y))
            })
            .collect()
    }

    #[test]
    fn the_average_start_predicts_a_recency_weighted_mean() {
        let (b, c, d) = (4, 5, 384);
        let x = contexts(b, c, d);
        let mean = x.mean(1).unwrap();
        let last = x.narrow(1, c - 1, 1).unwrap().squeeze(1).unwrap();
        for (kind, d_model) in [
            ("lstm", d),
            ("gru", d),
            ("transformer", d),
            ("amn", 32),
            ("mlp", 32),
        ] {
            let mut a = LvmArch::new(kind.parse().unwrap(), d, d_model, 1, c);
            (a.heads, a.ff, a.dropout) = (4, 32, 0.0);
            let m =
                Lvm::init_from(a.clone(), Start::Average, &mut Rng::new(1), &Device::Cpu).unwrap();
            let y = m.predict(&x).unwrap();
            let to_mean = cos_rows(&y, &mean);
            if kind == "amn" || kind == "mlp" {
                assert!(to_mean.iter().all(|&v| v > 0.99999), "{kind}: {to_mean:?}");
                continue;
            }
            assert!(to_mean.iter().all(|&v| v > 0.9), "{kind}: {to_mean:?}");
            // Recency: closer to the last vector than the plain mean is.
            let ours: f32 = cos_rows(&y, &last).iter().sum();
            let plain: f32 = cos_rows(&mean, &last).iter().sum();
            assert!(ours > plain, "{kind}: {ours} vs {plain}");
            // PyTorch's random start is nowhere near the mean.
            let r = Lvm::init_from(a, Start::Pytorch, &mut Rng::new(1), &Device::Cpu).unwrap();
            let far = cos_rows(&r.predict(&x).unwrap(), &mean);
            assert!(far.iter().all(|&v| v < 0.9), "{kind}: {far:?}");
        }
    }

    #[test]
    fn the_average_start_needs_the_vector_width() {
        let e = Lvm::init_from(
            LvmArch::new(LvmKind::Lstm, 16, 8, 1, 5),
            Start::Average,
            &mut Rng::new(1),
            &Device::Cpu,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("d_model (8) must equal the vector dimension (16)"),
            "{e}"
        );
        assert_eq!(Start::parse("average"), Some(Start::Average));
        assert_eq!(Start::parse("xavier"), None);
    }
}
