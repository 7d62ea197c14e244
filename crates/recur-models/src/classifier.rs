//! The seed's classifier: LSTM (`num_layers`, `hidden_size`,
//! unidirectional) -> last hidden state -> dropout -> Linear(hidden, 1) ->
//! logit (Linear(hidden, K) -> logits for K > 2 classes). Tensor names follow PyTorch (`lstm.weight_ih_l0`, `fc.weight`), so
//! a state dict of the equivalent `nn.Module` maps one to one. The LSTM
//! runs on recur's fused kernels, time-major inside.

use crate::init;
use crate::lstm::{lstm_last, lstm_seq, LstmWeights};
use crate::params::ParamSet;
use candle_core::{Device, IndexOp, Result, Tensor, Var};
use recur_core::checkpoint::TensorSpec;
use recur_core::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const KIND: &str = "lstm_classifier";

/// Everything that decides the function the model computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierArch {
    pub kind: String,
    /// Features per time step: the input width, `input_dim` as in
    /// `LvmArch`. Stored as `input_size` (PyTorch's `nn.LSTM` name), the
    /// key every classifier checkpoint holds.
    #[serde(rename = "input_size")]
    pub input_dim: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub dropout: f64,
    pub sequence_length: usize,
    /// Logits out: 1 for two classes (a sigmoid), the class count for more
    /// (a softmax). Left out of binary checkpoints, which stay as they were.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub outputs: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl ClassifierArch {
    /// The architecture of an LSTM classifier with these sizes.
    pub fn new(
        input_dim: usize,
        hidden_size: usize,
        num_layers: usize,
        dropout: f64,
        sequence_length: usize,
    ) -> Self {
        ClassifierArch {
            kind: KIND.into(),
            input_dim,
            hidden_size,
            num_layers,
            dropout,
            sequence_length,
            outputs: 1,
        }
    }
    /// The architecture as stored in a checkpoint's metadata.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("architecture serialises")
    }
}

pub struct LstmClassifier {
    pub arch: ClassifierArch,
    params: ParamSet,
}

impl LstmClassifier {
    /// The tensors this architecture has, by name and shape.
    pub fn tensor_specs(a: &ClassifierArch) -> Vec<TensorSpec> {
        let h = a.hidden_size;
        let mut v = Vec::new();
        for l in 0..a.num_layers {
            let inp = if l == 0 { a.input_dim } else { h };
            v.push(TensorSpec::new(
                format!("lstm.weight_ih_l{l}"),
                &[4 * h, inp],
            ));
            v.push(TensorSpec::new(format!("lstm.weight_hh_l{l}"), &[4 * h, h]));
            v.push(TensorSpec::new(format!("lstm.bias_ih_l{l}"), &[4 * h]));
            v.push(TensorSpec::new(format!("lstm.bias_hh_l{l}"), &[4 * h]));
        }
        v.push(TensorSpec::new("fc.weight", &[a.outputs, h]));
        v.push(TensorSpec::new("fc.bias", &[a.outputs]));
        v
    }

    /// Fresh weights: input weights Xavier uniform, recurrent weights
    /// orthogonal, LSTM biases zero, the head as PyTorch's `nn.Linear`.
    pub fn init(arch: ClassifierArch, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let h = arch.hidden_size;
        let mut tensors = HashMap::new();
        for spec in Self::tensor_specs(&arch) {
            let n: usize = spec.shape.iter().product();
            let data = if spec.name.contains("weight_ih") {
                init::xavier_uniform(rng, spec.shape[0], spec.shape[1])
            } else if spec.name.contains("weight_hh") {
                init::orthogonal(rng, spec.shape[0], spec.shape[1])
            } else if spec.name.starts_with("lstm.bias") {
                vec![0.0; n]
            } else {
                init::linear_default(rng, n, h)
            };
            tensors.insert(
                spec.name.clone(),
                Tensor::from_vec(data, spec.shape.as_slice(), dev)?,
            );
        }
        Self::from_tensors(arch, tensors)
    }

    /// Builds the model from named tensors (already checked against
    /// [`Self::tensor_specs`] by the checkpoint layer).
    pub fn from_tensors(arch: ClassifierArch, tensors: HashMap<String, Tensor>) -> Result<Self> {
        let params = ParamSet::from_tensors(&Self::tensor_specs(&arch), tensors)?;
        Ok(LstmClassifier { arch, params })
    }

    /// Parameters in a fixed order, with their PyTorch names.
    pub fn params(&self) -> &[(String, Var)] {
        self.params.all()
    }

    /// The number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.params.n_params()
    }

    fn p(&self, name: &str) -> &Tensor {
        self.params.get(name)
    }

    /// A real copy of every weight (not a view of the live ones: bug 3 of
    /// the original kept a reference and "restored" the last weights).
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.params.snapshot()
    }

    /// Overwrites the weights with a snapshot.
    pub fn restore(&self, snap: &[(String, Tensor)]) -> Result<()> {
        self.params.restore(snap)
    }

    /// Logits `[B]` for windows `x [B, L, F]` (`[B, K]` with `outputs`
    /// K > 1). With `dropout_rng`, applies
    /// dropout and keeps what backward needs (training); without, the model
    /// runs in evaluation mode on detached weights, so no layer keeps
    /// gradient state (PyTorch's `eval()` plus `no_grad`).
    pub fn forward(&self, x: &Tensor, mut dropout_rng: Option<&mut Rng>) -> Result<Tensor> {
        let a = &self.arch;
        let train = dropout_rng.is_some();
        let p = |name: &str| {
            let t = self.p(name);
            if train {
                t.clone()
            } else {
                t.detach()
            }
        };
        let l = x.dim(1)?;
        // Time-major [L, B, F] through the layers (a view, made contiguous
        // by the layer that takes it).
        let mut h = x.transpose(0, 1)?;
        for layer in 0..a.num_layers {
            let (w_ih, w_hh, b_ih, b_hh) = (
                p(&format!("lstm.weight_ih_l{layer}")),
                p(&format!("lstm.weight_hh_l{layer}")),
                p(&format!("lstm.bias_ih_l{layer}")),
                p(&format!("lstm.bias_hh_l{layer}")),
            );
            let w = LstmWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                b_ih: &b_ih,
                b_hh: &b_hh,
            };
            if !train && a.num_layers == 1 {
                // One layer in inference: its last state straight from
                // the input as it came.
                h = lstm_last(x, &w)?;
            } else {
                h = lstm_seq(&h, &w)?;
                if layer + 1 == a.num_layers {
                    h = h.i(l - 1)?;
                }
            }
            // PyTorch applies nn.LSTM's dropout between layers, and the
            // model's dropout after the last hidden state.
            if let Some(rng) = dropout_rng.as_deref_mut() {
                h = dropout(&h, a.dropout, rng)?;
            }
        }
        let out = h
            .matmul(&p("fc.weight").t()?)?
            .broadcast_add(&p("fc.bias"))?;
        if a.outputs == 1 {
            out.squeeze(1)
        } else {
            Ok(out)
        }
    }
}

/// Inverted dropout with a mask from recur's seeded generator.
pub fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 / (1.0 - p) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.unit() >= p as f32 { keep } else { 0.0 })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn parameter_count_and_names_follow_pytorch() {
        let arch = ClassifierArch::new(16, 64, 1, 0.3, 32);
        let m = LstmClassifier::init(arch, &mut Rng::new(42), &Device::Cpu).unwrap();
        // nn.LSTM(16, 64) has 4*64*(16+64) + 2*4*64 = 20992; Linear(64, 1) 65.
        assert_eq!(m.n_params(), 20992 + 65);
        let names: Vec<&str> = m.params().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "lstm.weight_ih_l0",
                "lstm.weight_hh_l0",
                "lstm.bias_ih_l0",
                "lstm.bias_hh_l0",
                "fc.weight",
                "fc.bias"
            ]
        );
    }

    #[test]
    fn same_seed_same_weights_and_snapshot_is_a_copy() {
        let arch = ClassifierArch::new(3, 8, 2, 0.3, 5);
        let a = LstmClassifier::init(arch.clone(), &mut Rng::new(7), &Device::Cpu).unwrap();
        let b = LstmClassifier::init(arch, &mut Rng::new(7), &Device::Cpu).unwrap();
        let x = Tensor::ones((2, 5, 3), DType::F32, &Device::Cpu).unwrap();
        // Evaluation mode builds no gradient graph; training mode does.
        assert!(!a.forward(&x, None).unwrap().track_op());
        assert!(a.forward(&x, Some(&mut Rng::new(1))).unwrap().track_op());
        let ya: Vec<f32> = a.forward(&x, None).unwrap().to_vec1().unwrap();
        let yb: Vec<f32> = b.forward(&x, None).unwrap().to_vec1().unwrap();
        assert_eq!(ya, yb);
        let snap = a.snapshot().unwrap();
        let w = &a.params()[0].1;
        w.set(&w.as_tensor().affine(2.0, 1.0).unwrap()).unwrap();
        assert_ne!(a.forward(&x, None).unwrap().to_vec1::<f32>().unwrap(), ya);
        a.restore(&snap).unwrap();
        assert_eq!(a.forward(&x, None).unwrap().to_vec1::<f32>().unwrap(), ya);
    }
}
