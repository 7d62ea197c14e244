//! The rainfall classifier's recurrent layer in inference (w1: L 32, B 512,
//! I 16, H 64), the input-fused forward without saved state; best of many
//! runs, and sequences per second as `recur bench lstm` counts them; then
//! one sequence alone (batch-1 latency, best of 2,000); then the same
//! layer with its input projected beforehand (`lstm::forward`, the layer of
//! classifiers with more inputs than half their hidden size), batches of
//! 512 and 64. `RECUR_NO_TILE=1` runs them without the register tiles.
//!
//! `cargo run --release -p recur-kernels --example w1_probe -- THREADS [SECONDS]`

mod probe;
use recur_kernels::lstm;
use std::time::Instant;

fn main() {
    let threads = probe::threads_from_args();
    let seconds: f64 = std::env::args()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let (l, b, i, h) = (32, 512, 16, 64);
    let d = lstm::Dims {
        steps: l,
        batch: b,
        hidden: h,
    };
    let v = probe::values;
    let (x, w) = (v(l * b * i, 1.0), v(4 * h * (i + h + 1), 0.15));
    let mut y = vec![0f32; l * b * h];
    let (mut best, mut runs) = (f64::MAX, 0usize);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || runs < 10 {
        let t = Instant::now();
        lstm::forward_fused(d, &x, &w, &mut y, None);
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    let total = start.elapsed().as_secs_f64();
    let flops = 2.0 * (l * b * 4 * h * (i + h)) as f64;
    println!(
        "threads {threads}: w1 layer inference best {:.3} ms ({:.0} seq/s), mean {:.3} ms; products {:.1} GFLOP/s at the best; checksum {:.6}",
        best * 1e3,
        b as f64 / best,
        total / runs as f64 * 1e3,
        flops / best / 1e9,
        y.iter().map(|&a| a as f64).sum::<f64>()
    );
    // The path the classifier's inference takes: batch-major input as it
    // comes, the last hidden state alone.
    let mut y_last = vec![0f32; b * h];
    let (mut best_last, mut runs) = (f64::MAX, 0usize);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || runs < 10 {
        let t = Instant::now();
        lstm::forward_fused_last(d, &x, &w, &mut y_last);
        best_last = best_last.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    println!(
        "threads {threads}: w1 last state, batch-major input, best {:.3} ms ({:.0} seq/s), mean {:.3} ms",
        best_last * 1e3,
        b as f64 / best_last,
        start.elapsed().as_secs_f64() / runs as f64 * 1e3,
    );
    let d1 = lstm::Dims { batch: 1, ..d };
    let (x1, mut y1) = (v(l * i, 1.0), vec![0f32; l * h]);
    let mut best1 = f64::MAX;
    for _ in 0..2000 {
        let t = Instant::now();
        lstm::forward_fused(d1, &x1, &w, &mut y1, None);
        best1 = best1.min(t.elapsed().as_secs_f64());
    }
    println!(
        "threads {threads}: w1 layer batch-1 best {:.1} us",
        best1 * 1e6
    );
    let w_hh = v(4 * h * h, 0.15);
    for batch in [512, 64] {
        let dp = lstm::Dims { batch, ..d };
        let (xp, mut yp) = (v(l * batch * 4 * h, 1.0), vec![0f32; l * batch * h]);
        let mut best = f64::MAX;
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds / 2.0 {
            let t = Instant::now();
            lstm::forward(dp, &xp, &w_hh, &mut yp, None);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "threads {threads}: projected layer (L {l}, H {h}) batch {batch} best {:.3} ms",
            best * 1e3
        );
    }
}
