//! The products of a w2 LVM's batch-1 forward (context 5), on the weights
//! packed once (`PackedLinear`), timed as a whole forward: the input
//! projection (5 rows, 768 -> 512), per layer the input projection (5 rows,
//! 512 -> 2048) and four recurrent steps (1 row, 512 -> 2048), and the
//! output projection (1 row, 512 -> 768). p50 and min over many runs.
//!
//! `cargo run --release -p recur-kernels --example few_rows_probe -- THREADS`

mod probe;
use recur_kernels::packed::PackedLinear;
use std::time::Instant;

fn main() {
    let threads = probe::threads_from_args();
    let v = probe::values;
    let inp = PackedLinear::new(&v(512 * 768, 0.05), 768, None);
    let layers: Vec<(PackedLinear, PackedLinear)> = (0..4)
        .map(|l| {
            (
                PackedLinear::new(&v(2048 * 512 + l, 0.05)[l..], 512, None),
                PackedLinear::new(&v(2048 * 512 + l + 1, 0.05)[l + 1..], 512, None),
            )
        })
        .collect();
    let out = PackedLinear::new(&v(768 * 512, 0.05), 512, None);
    let x = v(5 * 768, 1.0);
    let (mut a, mut g, h, mut y) = (
        vec![0f32; 5 * 512],
        vec![0f32; 5 * 2048],
        v(512, 1.0),
        vec![0f32; 768],
    );
    let mut times = Vec::new();
    for it in 0..3000 {
        let t = Instant::now();
        inp.forward(&x, &mut a, threads);
        for (wih, whh) in &layers {
            wih.forward(&a, &mut g, threads);
            for s in 0..4 {
                whh.forward(&h, &mut g[s * 2048..(s + 1) * 2048], threads);
            }
        }
        out.forward(&h, &mut y, threads);
        if it >= 100 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "w2 batch-1 products on packed weights: p50 {:.3} ms, min {:.3} ms ({threads} threads; y[0] {})",
        times[times.len() / 2],
        times[0],
        y[0]
    );
}
