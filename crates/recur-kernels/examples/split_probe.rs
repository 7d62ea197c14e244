//! Products of the LVM's training step timed two ways at the same thread
//! count: one `gemm` call that the crate splits between threads, and one
//! one-thread call per thread over its own columns (`SPLIT=n`) or rows
//! (`SPLIT=m`); with whether the two give the same bits. Best of 3.
//!
//! `cargo run --release -p recur-kernels --example split_probe -- THREADS`

mod probe;
use std::time::Instant;

/// dst [m, n] = lhs (rs, cs) [m, k] @ rhs (rs, cs) [k, n]
#[allow(clippy::too_many_arguments)]
unsafe fn g(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    lrs: isize,
    lcs: isize,
    rhs: *const f32,
    rrs: isize,
    rcs: isize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m, n, k, dst, 1, dst_rs, false, lhs, lcs, lrs, rhs, rcs, rrs, 0.0, 1.0, false, false,
        false, par,
    );
}

#[derive(Clone, Copy)]
struct P(*mut f32);
unsafe impl Send for P {}
unsafe impl Sync for P {}
#[derive(Clone, Copy)]
struct C(*const f32);
unsafe impl Send for C {}
unsafe impl Sync for C {}

fn main() {
    let threads = probe::threads_from_args();
    // (m, n, k, lhs transposed, rhs transposed): dx: [320,2048]x[2048,512]; fwd: [320,512]x[512,2048] rhs = W^T; dW: [2048,320]x[320,512] lhs = dxp^T
    for (name, m, n, k, lt, rt) in [
        ("dx", 320, 512, 2048, false, false),
        ("fwd", 320, 2048, 512, false, true),
        ("dW", 2048, 512, 320, true, false),
        ("in fwd", 320, 512, 768, false, true),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.001 - 0.5)
            .collect();
        let b: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729) % 1009) as f32 * 0.001 - 0.5)
            .collect();
        let (lrs, lcs) = if lt {
            (1isize, m as isize)
        } else {
            (k as isize, 1)
        };
        let (rrs, rcs) = if rt {
            (1isize, k as isize)
        } else {
            (n as isize, 1)
        };
        let mut y1 = vec![0f32; m * n];
        let mut y2 = vec![0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        let reps = (3e9 / flops) as usize + 1;
        let run1 = |y: &mut [f32]| unsafe {
            g(
                m,
                n,
                k,
                y.as_mut_ptr(),
                n as isize,
                a.as_ptr(),
                lrs,
                lcs,
                b.as_ptr(),
                rrs,
                rcs,
                if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                },
            );
        };
        let split_n = std::env::var("SPLIT").map(|v| v == "n").unwrap_or(n > m);
        let run2 = |y: &mut [f32]| {
            let yp = P(y.as_mut_ptr());
            let (ap, bp) = (C(a.as_ptr()), C(b.as_ptr()));
            rayon::scope(|s| {
                for t in 0..threads {
                    s.spawn(move |_| unsafe {
                        let (yp, ap, bp) = (yp, ap, bp);
                        if split_n {
                            let c0 = n * t / threads;
                            let c1 = n * (t + 1) / threads;
                            g(
                                m,
                                c1 - c0,
                                k,
                                yp.0.add(c0),
                                n as isize,
                                ap.0,
                                lrs,
                                lcs,
                                bp.0.offset(c0 as isize * rcs),
                                rrs,
                                rcs,
                                gemm::Parallelism::None,
                            );
                        } else {
                            let r0 = m * t / threads;
                            let r1 = m * (t + 1) / threads;
                            g(
                                r1 - r0,
                                n,
                                k,
                                yp.0.add(r0 * n),
                                n as isize,
                                ap.0.offset(r0 as isize * lrs),
                                lrs,
                                lcs,
                                bp.0,
                                rrs,
                                rcs,
                                gemm::Parallelism::None,
                            );
                        }
                    });
                }
            });
        };
        run1(&mut y1);
        run2(&mut y2);
        let same = y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits());
        let mut best = [f64::MAX; 2];
        for _ in 0..3 {
            let t = Instant::now();
            for _ in 0..reps {
                run1(&mut y1);
            }
            best[0] = best[0].min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            for _ in 0..reps {
                run2(&mut y2);
            }
            best[1] = best[1].min(t.elapsed().as_secs_f64());
        }
        println!("{name} [{m},{k}]x[{k},{n}]: gemm par {:.1} GFLOP/s, split {} {:.1} GFLOP/s, same bits {same}", flops * reps as f64 / best[0] / 1e9, if split_n {"n"} else {"m"}, flops * reps as f64 / best[1] / 1e9);
    }
}
