//! What a trained model is once it leaves training: the rules it applies
//! at inference (the metrics it is judged by, its calibrators, the blend of
//! the LSTM and the trees, the decision threshold). The service and the
//! Python package depend on this crate, never on training.

pub mod calibrate;
pub mod decision;
pub mod ensemble;
pub mod leaderboard;
pub mod lvm_eval;
pub mod metrics;
pub mod report;

pub use metrics::Metrics;
