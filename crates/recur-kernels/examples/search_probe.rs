//! The exact bank search at the bundled bank's size (29,808 unit rows of
//! 384), batches of 1 and 32 queries ([`UnitRows::nearest`], k = 5), best
//! of 20.
//!
//! `cargo run --release -p recur-kernels --example search_probe -- THREADS`

mod probe;
use recur_kernels::search::UnitRows;
use std::time::Instant;

fn main() {
    let threads = probe::threads_from_args();
    let (n, d) = (29_808, 384);
    let mut s = 1u64;
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let unit = |v: &mut [f32]| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    };
    let mut rows: Vec<f32> = (0..n * d).map(|_| rnd()).collect();
    rows.chunks_mut(d).for_each(unit);
    let mut queries: Vec<f32> = (0..32 * d).map(|_| rnd()).collect();
    queries.chunks_mut(d).for_each(unit);
    let bank = UnitRows::new(rows, d);
    for b in [1, 32] {
        let q = &queries[..b * d];
        let mut two = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            std::hint::black_box(bank.nearest(q, 5, threads));
            two = two.min(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("{b} queries, {threads} thread(s): two-pass search {two:.2} ms");
    }
}
