//! One error type for the library crates. Every variant carries the file,
//! field or key it is about, so the CLI can print it as it stands and the
//! user knows what to fix.

use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    // Not marked as the source: the message holds it already, and a
    // source would be printed a second time by error chains.
    // File names are kept on one line: a newline in one started a line
    // the user took for recur's (`error: forged`).
    #[error("{}: {io}", crate::terminal::inline(&path.display().to_string()))]
    Io { path: PathBuf, io: std::io::Error },
    /// A config file or value is wrong; `at` names the file or key.
    #[error("config {at}: {msg}")]
    Config { at: String, msg: String },
    /// Input data is wrong; `file` names the data file.
    #[error("{}: {msg}", crate::terminal::inline(file))]
    Data { file: String, msg: String },
    /// A checkpoint does not match what the code expects, or is damaged.
    #[error("checkpoint {}: {msg}", crate::terminal::inline(path))]
    Checkpoint { path: String, msg: String },
    /// A tensor operation failed (a bug in recur, or an exhausted device).
    #[error("tensor operation failed: {0}")]
    Candle(candle_core::Error),
    /// The run was asked to stop (Ctrl-C, or a progress reporter's
    /// `stop_requested`) and wrote nothing.
    #[error("interrupted: the run was asked to stop; nothing was written")]
    Interrupted,
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// A failed read or write of `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            io: source,
        }
    }
    /// A wrong config value; `at` names the file and key.
    pub fn config(at: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            at: at.into(),
            msg: msg.into(),
        }
    }
    /// Wrong input data; `file` names the data file.
    pub fn data(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Data {
            file: file.into(),
            msg: msg.into(),
        }
    }
    /// A checkpoint that does not match or is damaged.
    pub fn checkpoint(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }
}

impl From<candle_core::Error> for Error {
    /// Without the backtrace candle attaches under `RUST_BACKTRACE`: it
    /// is for candle's developers, and a user read it inside the message.
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(without_backtrace(e))
    }
}

/// `e` without the backtraces candle wraps it in under `RUST_BACKTRACE`.
pub fn without_backtrace(mut e: candle_core::Error) -> candle_core::Error {
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = *inner;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candle_error_loses_its_backtrace() {
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("d_model (8) must equal 16".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert_eq!(
            Error::from(e).to_string(),
            "tensor operation failed: d_model (8) must equal 16"
        );
    }
}
