//! From a file on disk to training windows: tables (CSV, Parquet, UCR `.ts`),
//! binary targets (a label column shifted by a horizon, or a price's future
//! return against a volatility threshold), the split in time with a purge gap,
//! standardisation fitted on train, and windows as index ranges over one
//! float32 buffer.
//!
//! Every check on user data lives here and names the file, column and row at
//! fault, so that nothing further down the pipe sees a NaN or a bad label.

pub mod drift;
pub mod iso_time;
pub mod npz;
pub mod output;
mod parquet_time;
pub mod prepare;
pub mod scaler;
pub mod select;
pub mod split;
pub mod table;
pub mod target;
pub mod ucr;
pub mod windows;

pub use prepare::{
    fixed_length, prepare_inference, prepare_training, prepare_training_sequences,
    sequences_inference, InferenceData, Prepared,
};
pub use scaler::Scaler;
pub use table::{Column, Table};
pub use windows::{Window, WindowSet};
