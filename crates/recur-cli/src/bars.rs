//! The CLI's [`Progress`]: each stage of long library work as an
//! indicatif bar on stderr, each note as a line above it. `-q` gives the
//! libraries `Silent` instead.

use indicatif::{ProgressBar, ProgressStyle};
use recur_core::progress::{Progress, Units, SILENT};
use std::sync::Mutex;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

static BARS: Bars = Bars {
    bar: Mutex::new(None),
};

/// What the libraries report to: bars when `show`, nothing otherwise.
pub fn reporter(show: bool) -> &'static dyn Progress {
    if show {
        &BARS
    } else {
        &SILENT
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64, units: Units) {
        let b = ProgressBar::new(total);
        let template = match units {
            Units::Items => "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            Units::Bytes => "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        };
        b.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(stage.to_string());
        if let Some(old) = self.bar.lock().expect("bar lock").replace(b) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64, status: &str) {
        if let Some(b) = &*self.bar.lock().expect("bar lock") {
            b.inc(n);
            if !status.is_empty() {
                b.set_message(status.to_string());
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("bar lock").take() {
            b.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        match &*self.bar.lock().expect("bar lock") {
            Some(b) => b.println(recur_core::terminal::printable(line)),
            None => errln!("{line}"),
        }
    }
}
