//! The per-step product shapes of the recurrent layers, timed on the `gemm`
//! crate (which packs its right-hand side on every call) and on
//! [`PackedLinear`] (packed once), alternating per shape; and
//! the cost of packing a 4 MiB weight beside a plain copy of it.
//!
//! `cargo run --release -p recur-kernels --example gemm_probe -- THREADS`

mod probe;
use recur_kernels::packed::PackedLinear;
use std::time::Instant;

/// `y [m, n] = x [m, k] @ w [n, k]^T` on the `gemm` crate.
fn gemm_t(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], y: &mut [f32]) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: x is [m, k], w [n, k] and y [m, n], all row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

fn main() {
    let threads = probe::threads_from_args();
    let w: Vec<f32> = (0..1 << 20).map(|i| i as f32).collect();
    let mut d = vec![0f32; 1 << 20];
    for k in [512usize, 2048] {
        let t = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(PackedLinear::new(&w, k, None));
        }
        let pack = t.elapsed().as_secs_f64() * 10.0;
        let t = Instant::now();
        for _ in 0..100 {
            d.copy_from_slice(&w);
            std::hint::black_box(&d);
        }
        let copy = t.elapsed().as_secs_f64() * 10.0;
        println!("4 MiB weight, k {k}: packing {pack:.3} ms, a plain copy {copy:.3} ms");
    }
    // w2's forward and backward steps at 2 and 1 threads' chunks, w1's.
    for (m, n, k) in [
        (32, 2048, 512),
        (64, 2048, 512),
        (64, 512, 2048),
        (320, 2048, 512),
        (320, 512, 2048),
        (2048, 512, 320),
        (256, 256, 80),
        (512, 256, 80),
    ] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut y = vec![0f32; m * n];
        let p = PackedLinear::new(&w, k, None);
        let flops = 2.0 * (m * n * k) as f64;
        let reps = (2e9 / flops) as usize + 1;
        let (mut g, mut q) = (0f64, 0f64);
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..reps {
                gemm_t(m, n, k, &x, &w, &mut y);
            }
            g = g.max(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
            let t = Instant::now();
            for _ in 0..reps {
                p.forward(&x, &mut y, threads);
            }
            q = q.max(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        println!(
            "[{m}, {k}] x [{k}, {n}]: gemm crate {g:.1} GFLOP/s, packed {q:.1} GFLOP/s (best of 3)"
        );
    }
}
