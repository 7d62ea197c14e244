//! Running the `recur` binary from the integration tests: one thread and
//! quiet, so outputs are deterministic; `ok` and `err` check the exit code
//! and return what the user would read.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};

pub fn recur(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "-q"])
        .args(args)
        .output()
        .unwrap()
}

/// `recur` with `input` on its standard input.
#[allow(dead_code)]
pub fn recur_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "-q"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "recur failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The error text of a run that must fail with exit code 2, not a panic.
#[allow(dead_code)]
pub fn err(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected an error, got:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// `recur serve --config cfg --port 0`, started: the child, its address
/// (from its first line) and the rest of its standard error.
#[allow(dead_code)]
pub fn serve(cfg: &Path) -> (Child, String, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recur"))
        .args(["--threads", "1", "serve", "--port", "0", "--config"])
        .arg(cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (child, url, lines)
}
