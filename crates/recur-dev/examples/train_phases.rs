//! The w2 / w2-gru training step of `recur bench lstm` alone, timed by
//! phase: the forward pass, the backward pass and the optimiser step, in
//! milliseconds per step, and sequences per second overall. For A/B
//! timing of changes to training: run it alternately on two builds.
//!
//! `cargo run --release -p recur-dev --example train_phases -- THREADS SECONDS [lstm|gru]`
//!
//! Set up as the `recur` binary runs a command: mimalloc keeping freed
//! memory, and the steps on a worker of a pool of THREADS threads.

mod setup;
use candle_core::{Device, Result, Tensor};
use recur_core::rng::Rng;
use recur_models::lvm::{l2_normalize, LvmKind};
use recur_models::{Lvm, LvmArch};
use recur_train::optim::Adam;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let (threads, seconds, kind) = setup::args("usage: train_phases THREADS SECONDS [lstm|gru]")?;
    setup::run(threads, || run(kind, seconds))
}

fn run(kind: LvmKind, seconds: f64) -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(42);
    let model = Lvm::init(LvmArch::new(kind, 768, 512, 4, 5), &mut rng, &dev)?;
    let mut data = Vec::new();
    for _ in 0..8 {
        let x: Vec<f32> = (0..64 * 5 * 768).map(|_| rng.normal()).collect();
        let y: Vec<f32> = (0..64 * 768).map(|_| rng.normal()).collect();
        data.push((
            l2_normalize(&Tensor::from_vec(x, (64, 5, 768), &dev)?)?,
            l2_normalize(&Tensor::from_vec(y, (64, 768), &dev)?)?,
        ));
    }
    let mut opt = Adam::new(model.vars(), 1e-3, 0.01, true)?;
    let mut phases = [Duration::ZERO; 3];
    let mut step = |i: usize, phases: &mut [Duration; 3]| -> Result<()> {
        let (x, y) = &data[i % data.len()];
        let t0 = Instant::now();
        let loss = (model.forward(x, None)? - y)?.sqr()?.mean_all()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads, 0.0)?;
        drop(grads);
        phases[0] += t1 - t0;
        phases[1] += t2 - t1;
        phases[2] += t2.elapsed();
        Ok(())
    };
    for i in 0..3 {
        step(i, &mut [Duration::ZERO; 3])?;
    }
    let t0 = Instant::now();
    let mut n = 0;
    while n < 10 || t0.elapsed().as_secs_f64() < seconds {
        step(n, &mut phases)?;
        n += 1;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "{:.1} seq/s  forward {:.2}  backward {:.2}  optimiser {:.2} ms/step ({n} steps)",
        (n * 64) as f64 / t0.elapsed().as_secs_f64(),
        ms(phases[0]),
        ms(phases[1]),
        ms(phases[2]),
    );
    Ok(())
}
