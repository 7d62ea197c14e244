//! Training and evaluation of the classifier: the loss with `pos_weight`,
//! Adam with gradient-norm clipping, the epoch loop with early stopping that
//! restores a real copy of the best weights, the metrics, and the model
//! directory that holds everything a prediction needs.

pub mod demo;
pub mod job_a;
pub mod loss;
pub mod lvm;
pub mod optim;
pub mod pipeline;
pub mod report_html;
pub mod search;
pub mod trainer;
pub mod tune;
pub mod tune_lvm;

pub use pipeline::{train_sequences_to_dir, train_table_to_dir, train_to_dir};
pub use trainer::{fit, FitOptions, FitResult};

/// `training.precision` as the kernels' setting.
fn precision_of(name: &str) -> recur_core::Result<recur_kernels::precision::Precision> {
    name.parse()
        .map_err(|e: String| recur_core::Error::config("training.precision", e))
}
