//! What the targets share: the input written to a file, since recur's
//! readers take paths (and judge the format by the extension).

use std::path::PathBuf;

/// `data` written to a file of extension `ext` in /dev/shm (one per
/// target and process, rewritten each run).
pub fn file(ext: &str, data: &[u8]) -> PathBuf {
    let p = PathBuf::from(format!(
        "/dev/shm/recur-fuzz-{}-{}.{ext}",
        env!("CARGO_BIN_NAME"),
        std::process::id()
    ));
    std::fs::write(&p, data).expect("write the input to /dev/shm");
    p
}
