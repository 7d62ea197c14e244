//! The Job A classifiers behind one type, so that training, the model
//! directory, prediction and the service handle every `model.type` alike:
//! the seed's LSTM ([`LstmClassifier`]) and LSTM-FCN ([`LstmFcn`]). Each
//! keeps its own architecture record, tensor list and forward; this module
//! only dispatches, and builds the architecture a config describes.

use crate::classifier::{ClassifierArch, LstmClassifier};
use crate::lstm_fcn::{LstmFcn, LstmFcnArch};
use candle_core::{Device, Result, Tensor, Var};
use recur_core::checkpoint::TensorSpec;
use recur_core::config::{ClassifierKind, ModelConfig};
use recur_core::rng::Rng;
use std::collections::HashMap;

/// Every Job A classifier kind, as checkpoints name it.
pub const KINDS: [&str; 2] = [crate::classifier::KIND, crate::lstm_fcn::KIND];

/// The architecture of either classifier, as stored in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Arch {
    Lstm(ClassifierArch),
    LstmFcn(LstmFcnArch),
}

impl Arch {
    /// The architecture `m` describes for windows of `sequence_length`
    /// steps of `input_dim` features, with `outputs` logits out (1 for two
    /// classes).
    pub fn of(m: &ModelConfig, input_dim: usize, sequence_length: usize, outputs: usize) -> Arch {
        match m.kind {
            ClassifierKind::Lstm => Arch::Lstm(ClassifierArch {
                outputs,
                ..ClassifierArch::new(
                    input_dim,
                    m.hidden_size,
                    m.num_layers,
                    m.dropout,
                    sequence_length,
                )
            }),
            ClassifierKind::LstmFcn => Arch::LstmFcn(LstmFcnArch {
                dropout: m.dropout,
                shuffle: m.shuffle,
                filters: m.filters,
                kernels: m.kernels,
                ..LstmFcnArch::new(input_dim, sequence_length, m.hidden_size, outputs)
            }),
        }
    }

    /// The architecture as a checkpoint's metadata holds it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Arch::Lstm(a) => a.to_json(),
            Arch::LstmFcn(a) => serde_json::to_value(a).expect("architecture serialises"),
        }
    }

    /// Every tensor a checkpoint of this architecture holds.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        match self {
            Arch::Lstm(a) => LstmClassifier::tensor_specs(a),
            Arch::LstmFcn(a) => LstmFcn::tensor_specs(a),
        }
    }

    pub fn sequence_length(&self) -> usize {
        match self {
            Arch::Lstm(a) => a.sequence_length,
            Arch::LstmFcn(a) => a.sequence_length,
        }
    }

    /// Logits per window: 1 (two classes) or the class count.
    pub fn outputs(&self) -> usize {
        match self {
            Arch::Lstm(a) => a.outputs,
            Arch::LstmFcn(a) => a.outputs,
        }
    }

    /// The kind's name in checkpoints (`lstm_classifier`, `lstm_fcn`).
    pub fn kind(&self) -> &str {
        match self {
            Arch::Lstm(a) => &a.kind,
            Arch::LstmFcn(a) => &a.kind,
        }
    }
}

/// A Job A classifier: logits `[B]` for windows `[B, L, F]`, or `[B, K]`
/// for K > 2 classes.
pub enum Classifier {
    Lstm(LstmClassifier),
    LstmFcn(LstmFcn),
}

impl Classifier {
    /// Fresh weights for `arch`, as each model initialises itself.
    pub fn init(arch: Arch, rng: &mut Rng, dev: &Device) -> Result<Classifier> {
        Ok(match arch {
            Arch::Lstm(a) => Classifier::Lstm(LstmClassifier::init(a, rng, dev)?),
            Arch::LstmFcn(a) => Classifier::LstmFcn(LstmFcn::init(a, rng, dev)?),
        })
    }

    /// The model from named tensors already checked against
    /// [`Arch::tensor_specs`].
    pub fn from_tensors(arch: Arch, tensors: HashMap<String, Tensor>) -> Result<Classifier> {
        Ok(match arch {
            Arch::Lstm(a) => Classifier::Lstm(LstmClassifier::from_tensors(a, tensors)?),
            Arch::LstmFcn(a) => Classifier::LstmFcn(LstmFcn::from_tensors(a, tensors)?),
        })
    }

    pub fn arch(&self) -> Arch {
        match self {
            Classifier::Lstm(m) => Arch::Lstm(m.arch.clone()),
            Classifier::LstmFcn(m) => Arch::LstmFcn(m.arch.clone()),
        }
    }

    pub fn sequence_length(&self) -> usize {
        match self {
            Classifier::Lstm(m) => m.arch.sequence_length,
            Classifier::LstmFcn(m) => m.arch.sequence_length,
        }
    }

    /// Logits per window: 1 (two classes) or the class count.
    pub fn outputs(&self) -> usize {
        match self {
            Classifier::Lstm(m) => m.arch.outputs,
            Classifier::LstmFcn(m) => m.arch.outputs,
        }
    }

    /// The trainable parameters, for an optimiser (not the running
    /// statistics of LSTM-FCN's batch norms).
    pub fn params(&self) -> &[(String, Var)] {
        match self {
            Classifier::Lstm(m) => m.params(),
            Classifier::LstmFcn(m) => m.params(),
        }
    }

    /// Windows per forward when scoring many: LSTM-FCN unfolds its
    /// convolutions' input (`T * channels * kernel` values a window), so
    /// it takes fewer at a time.
    pub fn eval_batch(&self) -> usize {
        match self {
            Classifier::Lstm(_) => 2048,
            Classifier::LstmFcn(_) => 64,
        }
    }

    pub fn n_params(&self) -> usize {
        match self {
            Classifier::Lstm(m) => m.n_params(),
            Classifier::LstmFcn(m) => m.n_params(),
        }
    }

    /// A real copy of every tensor a checkpoint holds.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        match self {
            Classifier::Lstm(m) => m.snapshot(),
            Classifier::LstmFcn(m) => m.snapshot(),
        }
    }

    pub fn restore(&self, snap: &[(String, Tensor)]) -> Result<()> {
        match self {
            Classifier::Lstm(m) => m.restore(snap),
            Classifier::LstmFcn(m) => m.restore(snap),
        }
    }

    /// Logits `[B]`; training mode with `dropout_rng`, evaluation without.
    pub fn forward(&self, x: &Tensor, dropout_rng: Option<&mut Rng>) -> Result<Tensor> {
        match self {
            Classifier::Lstm(m) => m.forward(x, dropout_rng),
            Classifier::LstmFcn(m) => m.forward(x, dropout_rng),
        }
    }
}
