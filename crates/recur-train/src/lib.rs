//! Training and evaluation of the classifier: the loss with `pos_weight`,
//! Adam with gradient-norm clipping, the epoch loop with early stopping that
//! restores a real copy of the best weights, the metrics, and the model
//! directory that holds everything a prediction needs.

pub mod bench;
pub mod import;
pub mod job_a;
pub mod loss;
pub mod lvm;
pub mod model_dir;
pub mod optim;
pub mod pipeline;
pub mod predictor;
pub mod trainer;
pub mod tune;

pub use model_dir::{load_model_dir, save_model_dir, ModelDir, Report};
pub use pipeline::{evaluate, score_file, train_to_dir, write_predictions, Evaluation, FileScores};
pub use predictor::{Prediction, Predictor, Series};
pub use trainer::{fit, predict_logits, FitOptions, FitResult};
