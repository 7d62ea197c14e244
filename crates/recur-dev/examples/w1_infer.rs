//! The w1 classifier's batch-512 inference forward of `recur bench lstm`
//! alone, repeated for SECONDS, for `perf record` and A/B timing: best and
//! mean per call and sequences per second as the bench counts them.
//!
//! `cargo run --release -p recur-dev --example w1_infer -- THREADS SECONDS`

mod setup;
use candle_core::{Device, Result, Tensor};
use recur_core::rng::Rng;
use recur_models::{ClassifierArch, LstmClassifier};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let (threads, seconds, _) = setup::args("usage: w1_infer THREADS SECONDS")?;
    setup::run(threads, || run(threads, seconds))
}

fn run(threads: usize, seconds: f64) -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(42);
    let model = LstmClassifier::init(ClassifierArch::new(16, 64, 1, 0.3, 32), &mut rng, &dev)?;
    let (b, l, f) = (512, 32, 16);
    let x: Vec<f32> = (0..b * l * f).map(|_| rng.normal()).collect();
    let x = Tensor::from_vec(x, (b, l, f), &dev)?;
    for _ in 0..20 {
        model.forward(&x, None)?;
    }
    let (mut best, mut n) = (f64::MAX, 0usize);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        model.forward(&x, None)?;
        best = best.min(t.elapsed().as_secs_f64());
        n += 1;
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "threads {threads}: w1 inference best {:.3} ms, mean {:.3} ms, {:.0} seq/s (mean)",
        best * 1e3,
        total / n as f64 * 1e3,
        (n * b) as f64 / total
    );
    Ok(())
}
