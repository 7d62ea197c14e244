//! Models as plain structs with a `forward`, weights named as in PyTorch so
//! checkpoints move both ways. Each model lists the tensors it expects
//! ([`LstmClassifier::tensor_specs`]) and an architecture description, which
//! the checkpoint layer compares against a file before loading it.

pub mod baseline;
pub mod classifier;
pub mod classifiers;
pub mod init;
pub mod lstm;
pub mod lstm_fcn;
pub mod lvm;
mod lvm_packed;
pub mod mlp;
pub mod params;
pub mod start;
pub mod transformer;
pub mod trees;
pub mod xgboost;

pub use baseline::Baseline;
pub use classifier::{ClassifierArch, LstmClassifier};
pub use classifiers::{Arch, Classifier};
pub use lvm::{Lvm, LvmArch, Start};
