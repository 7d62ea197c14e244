//! One w2-sized recurrent layer (L 5, B 64, H 512), training forward and
//! backward, with the recurrent weight packed once per call and with the
//! `gemm` crate re-packing it at every step (`RECUR_NO_PACK`), alternating
//! in one process; best of 40 each, which is robust to a noisy machine.
//!
//! `cargo run --release -p recur-kernels --example lstm_probe -- THREADS`

mod probe;
use recur_kernels::{gru, lstm};
use std::time::Instant;

/// Turns the packed per-step weight on or off (`RECUR_NO_PACK`, read at
/// every call of the kernels).
fn packing(on: bool) {
    if on {
        std::env::remove_var("RECUR_NO_PACK")
    } else {
        std::env::set_var("RECUR_NO_PACK", "1")
    }
}

fn main() {
    let threads = probe::threads_from_args();
    let (l, b, h) = (5, 64, 512);
    let d = lstm::Dims {
        steps: l,
        batch: b,
        hidden: h,
    };
    let v = probe::values;
    let (xp, w, gy) = (v(l * b * 4 * h, 1.0), v(4 * h * h, 0.05), v(l * b * h, 1.0));
    let (xg, wg, bg) = (v(l * b * 3 * h, 1.0), v(3 * h * h, 0.05), v(3 * h, 0.1));
    let mut y = vec![0f32; l * b * h];
    let (mut dxp, mut dw) = (vec![0f32; xp.len()], vec![0f32; w.len()]);
    let (mut dxg, mut dwg, mut dbg) = (
        vec![0f32; xg.len()],
        vec![0f32; wg.len()],
        vec![0f32; bg.len()],
    );
    let mut best = [[f64::MAX; 2]; 2];
    for _ in 0..40 {
        for (vi, pack) in [true, false].into_iter().enumerate() {
            packing(pack);
            let t = Instant::now();
            let mut s = lstm::Saved::default();
            lstm::forward(d, &xp, &w, &mut y, Some(&mut s));
            lstm::backward(d, &w, &y, &s, &gy, &mut dxp, &mut dw);
            best[0][vi] = best[0][vi].min(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let mut s = gru::Saved::default();
            gru::forward(d, &xg, &wg, &bg, &mut y, Some(&mut s));
            gru::backward(d, &wg, &y, &s, &gy, &mut dxg, &mut dwg, &mut dbg);
            best[1][vi] = best[1][vi].min(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    // Inference, the service's batch of about 38 requests.
    let di = lstm::Dims {
        steps: l,
        batch: 38,
        hidden: h,
    };
    let (xi, mut yi) = (v(l * 38 * 4 * h, 1.0), vec![0f32; l * 38 * h]);
    let mut infer = [f64::MAX; 2];
    for _ in 0..40 {
        for (vi, pack) in [true, false].into_iter().enumerate() {
            packing(pack);
            let t = Instant::now();
            lstm::forward(di, &xi, &w, &mut yi, None);
            infer[vi] = infer[vi].min(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "threads {threads}: LSTM layer inference forward, batch 38: {:.3} ms packed, {:.3} ms re-packed per step",
        infer[0], infer[1]
    );
    println!(
        "threads {threads}: LSTM layer forward + backward {:.2} ms packed, {:.2} ms re-packed per step; GRU {:.2} vs {:.2} ms",
        best[0][0], best[0][1], best[1][0], best[1][1]
    );
}
