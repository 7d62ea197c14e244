//! The w2 / w2-gru batch-1 forward of `recur bench lstm` alone, repeated
//! for SECONDS: p50 and p95 latency over every call, for `perf record` and
//! for A/B timing of changes to the batch-1 path (run it alternately on two
//! builds; the bench's own figure is 200 calls), on the model loaded for
//! inference as `recur serve` holds it (`Lvm::for_inference`), or as it is
//! with `RECUR_UNPACKED=1`.
//!
//! `cargo run --release -p recur-dev --example predict_b1 -- THREADS SECONDS [lstm|gru]`
//!
//! Set up as the `recur` binary runs a command: mimalloc keeping freed
//! memory, and the calls on a worker of a pool of THREADS threads.

mod setup;
use candle_core::{Device, Result, Tensor};
use recur_core::rng::Rng;
use recur_models::lvm::{l2_normalize, LvmKind};
use recur_models::{Lvm, LvmArch};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let (threads, seconds, kind) = setup::args("usage: predict_b1 THREADS SECONDS [lstm|gru]")?;
    setup::run(threads, || run(kind, seconds))
}

fn run(kind: LvmKind, seconds: f64) -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(42);
    let mut model = Lvm::init(LvmArch::new(kind, 768, 512, 4, 5), &mut rng, &dev)?;
    if std::env::var_os("RECUR_UNPACKED").is_none() {
        model = model.for_inference()?;
    }
    let x: Vec<f32> = (0..5 * 768).map(|_| rng.normal()).collect();
    let x = l2_normalize(&Tensor::from_vec(x, (1, 5, 768), &dev)?)?;
    for _ in 0..10 {
        model.predict(&x)?;
    }
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while lat.len() < 100 || t0.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        model.predict(&x)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let at = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "batch-1 p50 {:.3} ms  p95 {:.3} ms  min {:.3} ms ({} calls)",
        at(0.5),
        at(0.95),
        lat[0],
        lat.len()
    );
    Ok(())
}
