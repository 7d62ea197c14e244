//! `recur bench lstm`: the seed's two workloads on synthetic data, measured
//! exactly as `benches/torch_lstm_bench.py` measures PyTorch, so that
//! `benches/compare_lstm.py` can put the two side by side.
//!
//! - `w1`: the classifier (F 16, L 32, hidden 64, dropout 0.3, Linear -> 1),
//!   BCE with pos_weight 7/3, Adam 5e-4, clipping 1.0, batch 512.
//! - `w2` / `w2-gru`: the recurrent LVM (768 -> 512, 4 residual blocks with
//!   LayerNorm, last step, 512 -> 768, L2-normalised), MSE, AdamW 1e-3
//!   (decay 0.01), batch 64, context 5.
//!
//! Protocol, in one process: RSS before training; training (3 warm-up
//! steps, then timed steps until at least `min_seconds` and 10 steps); peak
//! RSS; inference at the training batch size (3 warm-ups, then the same
//! rule); batch-1 latency (10 warm-ups, 200 timed forwards, p50/p95/mean;
//! an LVM's on a copy loaded for inference, as `recur serve` holds it).
//! Eight input batches are drawn up front and cycled through.

use candle_core::{Device, Result, Tensor};
use recur_core::rng::Rng;
use recur_models::lvm::LvmKind;
use recur_models::{ClassifierArch, LstmClassifier, Lvm, LvmArch};
use recur_train::loss::bce_with_logits;
use recur_train::optim::Adam;
use serde::Serialize;
use std::time::Instant;

const N_BATCHES: usize = 8;
const TRAIN_WARMUP: usize = 3;
const INFER_WARMUP: usize = 3;
const MIN_ITERS: usize = 10;
const LAT_WARMUP: usize = 10;
const LAT_ITERS: usize = 200;

/// What one run measured; the keys match the PyTorch script's.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub version: String,
    pub workload: String,
    pub threads: usize,
    /// `f32` or `bf16` (with the instructions that ran it, when any:
    /// `bf16 (AMX, AVX512-BF16)`, `bf16 (AVX512-BF16)`, or `bf16 (f32
    /// units)`).
    pub precision: String,
    pub params: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub train_steps: usize,
    pub train_seq_per_s: f64,
    pub infer_seq_per_s: f64,
    pub lat_b1_p50_ms: f64,
    pub lat_b1_p95_ms: f64,
    pub lat_b1_mean_ms: f64,
    pub rss_before_train_mb: f64,
    pub peak_rss_mb: f64,
}

/// The layout of the PyTorch script's output.
impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let r = self;
        writeln!(
            f,
            "recur {}  workload {}  threads {}  precision {}  params {}  batch {}  seq_len {}",
            r.version, r.workload, r.threads, r.precision, r.params, r.batch, r.seq_len
        )?;
        writeln!(
            f,
            "  train  {:10.1} seq/s  ({} steps)",
            r.train_seq_per_s, r.train_steps
        )?;
        writeln!(f, "  infer  {:10.1} seq/s", r.infer_seq_per_s)?;
        writeln!(
            f,
            "  b1 latency  p50 {:.3} ms  p95 {:.3} ms  mean {:.3} ms",
            r.lat_b1_p50_ms, r.lat_b1_p95_ms, r.lat_b1_mean_ms
        )?;
        writeln!(
            f,
            "  RSS before training {:.1} MB  peak {:.1} MB",
            r.rss_before_train_mb, r.peak_rss_mb
        )
    }
}

/// The precision products run in on this thread, and on what.
fn precision_name() -> String {
    use recur_kernels::precision::{bf16_units, current, Precision};
    match current() {
        Precision::F32 => "f32".into(),
        Precision::Bf16 => format!("bf16 ({})", bf16_units().unwrap_or("f32 units")),
    }
}

pub const WORKLOADS: [&str; 3] = ["w1", "w2", "w2-gru"];

/// A model under test, behind one interface.
enum Model {
    Classifier(LstmClassifier),
    Lvm(Lvm),
}

/// Runs one workload. `threads` is what the caller configured (recorded).
pub fn run(workload: &str, threads: usize, min_seconds: f64, seed: u64) -> Result<BenchResult> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(seed);
    let (model, batch, seq_len, feats) = match workload {
        "w1" => {
            let arch = ClassifierArch::new(16, 64, 1, 0.3, 32);
            (
                Model::Classifier(LstmClassifier::init(arch, &mut rng, &dev)?),
                512,
                32,
                16,
            )
        }
        "w2" | "w2-gru" => {
            let kind = if workload == "w2" {
                LvmKind::Lstm
            } else {
                LvmKind::Gru
            };
            let arch = LvmArch::new(kind, 768, 512, 4, 5);
            (Model::Lvm(Lvm::init(arch, &mut rng, &dev)?), 64, 5, 768)
        }
        w => candle_core::bail!("unknown workload {w:?}; expected one of {WORKLOADS:?}"),
    };
    // Inputs and targets, drawn once.
    let mut data = Vec::with_capacity(N_BATCHES);
    for _ in 0..N_BATCHES {
        let x: Vec<f32> = (0..batch * seq_len * feats).map(|_| rng.normal()).collect();
        let x = Tensor::from_vec(x, (batch, seq_len, feats), &dev)?;
        let (x, y) = match model {
            Model::Classifier(_) => {
                let y: Vec<f32> = (0..batch).map(|_| f32::from(rng.unit() < 0.3)).collect();
                (x, Tensor::from_vec(y, batch, &dev)?)
            }
            Model::Lvm(_) => {
                let y: Vec<f32> = (0..batch * feats).map(|_| rng.normal()).collect();
                let y = Tensor::from_vec(y, (batch, feats), &dev)?;
                (
                    recur_models::lvm::l2_normalize(&x)?,
                    recur_models::lvm::l2_normalize(&y)?,
                )
            }
        };
        data.push((x, y));
    }
    let (vars, params) = match &model {
        Model::Classifier(m) => (
            m.params().iter().map(|(_, v)| v.clone()).collect(),
            m.n_params(),
        ),
        Model::Lvm(m) => (m.vars(), m.n_params()),
    };
    let mut opt = match model {
        Model::Classifier(_) => Adam::new(vars, 5e-4, 0.0, false)?,
        Model::Lvm(_) => Adam::new(vars, 1e-3, 0.01, true)?,
    };
    let mut dropout_rng = Rng::stream(seed, 2);

    let rss_before = current_rss_mb();
    let mut train_step = |i: usize| -> Result<()> {
        let (x, y) = &data[i % N_BATCHES];
        match &model {
            Model::Classifier(m) => {
                let z = m.forward(x, Some(&mut dropout_rng))?;
                let loss = bce_with_logits(&z, y, 7.0 / 3.0)?;
                opt.step(&loss.backward()?, 1.0)?;
            }
            Model::Lvm(m) => {
                let loss = (m.forward(x, None)? - y)?.sqr()?.mean_all()?;
                opt.step(&loss.backward()?, 0.0)?;
            }
        }
        Ok(())
    };
    let (train_steps, train_s) = timed(&mut train_step, TRAIN_WARMUP, min_seconds)?;
    let peak = peak_rss_mb();

    let forward = |x: &Tensor| -> Result<Tensor> {
        match &model {
            Model::Classifier(m) => m.forward(x, None),
            Model::Lvm(m) => m.predict(x),
        }
    };
    let mut infer = |i: usize| forward(&data[i % N_BATCHES].0).map(drop);
    let (infer_passes, infer_s) = timed(&mut infer, INFER_WARMUP, min_seconds)?;

    // Batch-1 latency of the model as `recur serve` holds it: an LVM
    // loaded for inference packs its weights once (`Lvm::for_inference`),
    // as ONNX Runtime's session does at its start.
    let served = match &model {
        Model::Lvm(m) => {
            let weights = m.snapshot()?.into_iter().collect();
            Some(Lvm::from_tensors(m.arch.clone(), weights)?.for_inference()?)
        }
        Model::Classifier(_) => None,
    };
    let forward1 = |x: &Tensor| -> Result<Tensor> {
        match &served {
            Some(m) => m.predict(x),
            None => forward(x),
        }
    };
    let x1 = data[0].0.narrow(0, 0, 1)?.contiguous()?;
    for _ in 0..LAT_WARMUP {
        forward1(&x1)?;
    }
    let mut lat = Vec::with_capacity(LAT_ITERS);
    for _ in 0..LAT_ITERS {
        let t0 = Instant::now();
        forward1(&x1)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    Ok(BenchResult {
        implementation: "recur".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        workload: workload.into(),
        threads,
        precision: precision_name(),
        params,
        batch,
        seq_len,
        train_steps,
        train_seq_per_s: (train_steps * batch) as f64 / train_s,
        infer_seq_per_s: (infer_passes * batch) as f64 / infer_s,
        lat_b1_p50_ms: percentile(&lat, 50.0),
        lat_b1_p95_ms: percentile(&lat, 95.0),
        lat_b1_mean_ms: lat.iter().sum::<f64>() / lat.len() as f64,
        rss_before_train_mb: rss_before,
        peak_rss_mb: peak,
    })
}

/// Warm-up calls, then timed calls until both `min_seconds` and
/// [`MIN_ITERS`] are reached: (calls, seconds).
fn timed(
    step: &mut dyn FnMut(usize) -> Result<()>,
    warmup: usize,
    min_seconds: f64,
) -> Result<(usize, f64)> {
    for i in 0..warmup {
        step(i)?;
    }
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        step(warmup + n)?;
        n += 1;
        let s = t0.elapsed().as_secs_f64();
        if n >= MIN_ITERS && s >= min_seconds {
            return Ok((n, s));
        }
    }
}

pub use recur_core::stats::percentile;

/// Resident set size now, from /proc (0 where there is no /proc).
fn current_rss_mb() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Peak resident set size of the process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
