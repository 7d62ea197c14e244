//! Which AVX-512 operations run beside the multiply-adds on this core and
//! which take their slot: twelve independent FMA chains alone, then with
//! eight (or two) independent chains of another operation beside them,
//! nanoseconds per iteration, best of 3. On Zen 4 (one 512-bit FMA a
//! cycle): adds, max, rounding, bit operations and a blend by a constant
//! mask cost nothing beside the FMAs; multiplies, compares, `vscalefps`
//! and a ternary-logic op take FMA slots. That is what bounds the LSTM
//! cell's activations in `lstm_tile` (see `act.rs`), and 12 FMAs per
//! iteration also give the clock: 12 / (ns per iteration) GHz.
//!
//! `cargo run --release -p recur-kernels --example port_probe`

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;

    #[target_feature(enable = "avx512f")]
    fn run(kind: u32, n: usize) -> f32 {
        let mut a = [_mm512_setzero_ps(); 12];
        for (j, a) in a.iter_mut().enumerate() {
            *a = _mm512_set1_ps(black_box(1.0 + j as f32 * 0.01));
        }
        let mut b = [_mm512_setzero_ps(); 8];
        for (j, b) in b.iter_mut().enumerate() {
            *b = _mm512_set1_ps(black_box(0.5 + j as f32 * 0.01));
        }
        let x = _mm512_set1_ps(0.999);
        let y = _mm512_set1_ps(0.001);
        // One loop per operation, the operation's match outside it, so
        // that every chain stays in a register.
        macro_rules! beside {
            ($m:expr, $op:expr) => {
                for _ in 0..n {
                    for j in 0..12 {
                        a[j] = _mm512_fmadd_ps(a[j], x, y);
                    }
                    for j in 0..$m {
                        b[j] = $op(b[j]);
                    }
                }
            };
        }
        let bits = |v: __m512| _mm512_castps_si512(v);
        match kind {
            1 => beside!(8, |v| _mm512_add_ps(v, y)),
            2 => beside!(8, |v| _mm512_max_ps(v, y)),
            3 => beside!(8, |v| _mm512_mul_ps(v, x)),
            4 => beside!(8, |v| _mm512_roundscale_ps::<9>(v)),
            5 => beside!(8, |v| _mm512_scalef_ps(v, y)),
            6 => beside!(8, |v| _mm512_castsi512_ps(_mm512_xor_si512(
                bits(v),
                bits(y)
            ))),
            7 => beside!(2, |v| _mm512_div_ps(x, v)),
            8 => beside!(8, |v| {
                let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, y);
                _mm512_mask_blend_ps(m, v, x)
            }),
            9 => beside!(8, |v| _mm512_mask_blend_ps(0x5555, v, x)),
            10 => beside!(8, |v| _mm512_castsi512_ps(
                _mm512_ternarylogic_epi32::<0xE4>(bits(v), bits(y), bits(x))
            )),
            // The FMAs alone: a chain beside them that the compiler drops.
            _ => beside!(1, |v| v),
        }
        let mut s = _mm512_setzero_ps();
        for v in a.iter().chain(&b) {
            s = _mm512_add_ps(s, *v);
        }
        _mm512_reduce_add_ps(s)
    }

    pub fn main() {
        if !is_x86_feature_detected!("avx512f") {
            println!("this CPU has no AVX-512F");
            return;
        }
        let n = 20_000_000;
        let names = [
            "12 FMA alone",
            "+8 add",
            "+8 max",
            "+8 mul",
            "+8 roundscale",
            "+8 scalef",
            "+8 xor",
            "+2 div",
            "+8 compare and blend",
            "+8 blend by a constant",
            "+8 ternary logic",
        ];
        for (k, name) in names.iter().enumerate() {
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                // SAFETY: the CPU has AVX-512F (checked above).
                black_box(unsafe { run(k as u32, n) });
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("{name:24} {:.3} ns per iteration", best / n as f64 * 1e9);
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    probe::main();
}
