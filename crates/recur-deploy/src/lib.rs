//! What a trained model is once it leaves training: the model directory
//! of both jobs (written as a unit, checked on load), the predictor that
//! applies the whole Job A model (features, scaler, LSTM, trees, blend,
//! calibrators, threshold), the metrics and reports it is judged by,
//! scoring and evaluating files, LVM scoring and the leaderboard, and the
//! PyTorch importer. The service and the Python package depend on this
//! crate, never on training.

pub mod calibrate;
pub mod decision;
pub mod drift;
pub mod ensemble;
pub mod import;
pub mod leaderboard;
pub mod lvm_eval;
pub mod metrics;
pub mod model_dir;
pub mod multiclass;
pub mod predictor;
pub mod report;
pub mod scoring;
pub mod tables;

pub use metrics::Metrics;
pub use model_dir::{load_model_dir, save_model_dir, ModelDir, Report};
pub use predictor::{Prediction, Predictor, Series, Values};
pub use scoring::{evaluate, score_file, score_table, write_predictions, Evaluation, FileScores};
