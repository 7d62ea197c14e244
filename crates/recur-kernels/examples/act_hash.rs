//! A hash of `exp`, `sigmoid` and `tanh` over every f32 (NaNs counted as
//! one), for a rewrite of the activations that must keep their bits: run
//! it before and after and compare (`lanes.rs`'s test compares the
//! register form with the scalar one on every 127th value; this covers all
//! 2^32 of the scalar form, which the multiversioned loops vectorise).
//! About 7 minutes on one Zen 4 core.
//!
//! `cargo run --release -p recur-kernels --example act_hash`
use recur_kernels::act::{exp, sigmoid, tanh};
fn main() {
    for (name, f) in [
        ("exp", exp as fn(f32) -> f32),
        ("sigmoid", sigmoid),
        ("tanh", tanh),
    ] {
        let mut h: u64 = 1469598103934665603;
        let mut v = vec![0f32; 1 << 20];
        for block in 0..(1u64 << 12) {
            let base = (block << 20) as u32;
            for (j, o) in v.iter_mut().enumerate() {
                *o = f(f32::from_bits(base + j as u32));
            }
            for o in &v {
                let b = if o.is_nan() { 0x7fc00000 } else { o.to_bits() };
                h = (h ^ b as u64).wrapping_mul(1099511628211);
            }
        }
        println!("{name} {h:016x}");
    }
}
