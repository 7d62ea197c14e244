//! The arithmetic of the activation functions, for one `f32` or for
//! sixteen in an AVX-512 register, so that [`crate::act`] writes `exp`,
//! `sigmoid` and `tanh` once and both forms give the same bits.
//!
//! The scalar form is what the multiversioned loops inline and the
//! compiler vectorises, at whatever width the CPU has. `F32x16` is for
//! kernels that hold their values in registers already and should not
//! store them to run a loop over memory: the LSTM's inference tiles
//! (`lstm_tile`) apply the cell to a product's sums as they
//! come out of the multiply-adds, all rows of a tile at once (`Rows`).
//! Each of its operations is the one
//! instruction the compiler emits for the scalar operation, in the same
//! order, except `y * 2^n` (the end of `exp`), which is one `vscalefps`
//! instead of the portable form's add, shift and multiply; both round
//! once, so they agree, which the tests check for every result that could
//! round (the subnormal ones).

use std::ops::{Add, Mul, Neg, Sub};

/// One or more f32 lanes with the operations the activations use.
pub trait Lanes:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Neg<Output = Self>
{
    /// Per-lane truth of a comparison.
    type Mask: Copy;
    fn splat(v: f32) -> Self;
    /// `self * a + b`, rounded once.
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    /// `f32::clamp` (a NaN stays NaN).
    fn clamp(self, lo: f32, hi: f32) -> Self;
    /// `self.clamp(-inf, hi)`: the clamp of a value known not to be below
    /// its low end, one instruction fewer.
    fn at_most(self, hi: f32) -> Self;
    /// `self.copysign(sign)`: the magnitude of `self`, the sign of `sign`.
    fn copysign(self, sign: Self) -> Self;
    fn lt(self, other: Self) -> Self::Mask;
    /// `a` where `m`, else `b`.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// `self * 2^n` for `n` integral in [-126, 127].
    fn scale_pow2(self, n: Self) -> Self;
    /// `num / self`.
    fn recip_times(self, num: f32) -> Self;
}

impl Lanes for f32 {
    type Mask = bool;
    #[inline(always)]
    fn splat(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn mul_add(self, a: f32, b: f32) -> f32 {
        f32::mul_add(self, a, b)
    }
    #[inline(always)]
    fn abs(self) -> f32 {
        f32::abs(self)
    }
    #[inline(always)]
    fn floor(self) -> f32 {
        f32::floor(self)
    }
    #[inline(always)]
    fn clamp(self, lo: f32, hi: f32) -> f32 {
        f32::clamp(self, lo, hi)
    }
    #[inline(always)]
    fn at_most(self, hi: f32) -> f32 {
        // As f32::clamp's upper half: a NaN stays NaN (f32::min would not).
        if self > hi {
            hi
        } else {
            self
        }
    }
    #[inline(always)]
    fn copysign(self, sign: f32) -> f32 {
        f32::copysign(self, sign)
    }
    #[inline(always)]
    fn lt(self, other: f32) -> bool {
        self < other
    }
    #[inline(always)]
    fn select(m: bool, a: f32, b: f32) -> f32 {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn scale_pow2(self, n: f32) -> f32 {
        // 2^n from its exponent bits, n + 127 << 23, read off the low bits
        // of n + 1.5 * 2^23 + 127 (exact for integral n in range): a
        // float add, a shift and a multiply, which vectorise, and defined
        // for every n (a NaN gives a NaN product); an int conversion would
        // saturate (`as`) or be undefined outside i32 (`to_int_unchecked`).
        let e = (n + (12_582_912.0 + 127.0)).to_bits() << 23;
        self * f32::from_bits(e)
    }
    #[inline(always)]
    fn recip_times(self, num: f32) -> f32 {
        num / self
    }
}

/// Sixteen lanes in an AVX-512 register. Its methods are only to be used
/// inside functions compiled with `#[target_feature(enable = "avx512f")]`
/// on a CPU that has it (they are inlined there, where the intrinsics
/// become single instructions). Crate-private: its operators are safe
/// functions, which safe code elsewhere could call on a CPU without
/// AVX-512.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct F32x16(pub(crate) std::arch::x86_64::__m512);

#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{F32x16, Lanes};
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Neg, Sub};

    // SAFETY (every `unsafe` block of this module): the intrinsics need
    // AVX-512F, which the callers' `target_feature` and run-time check
    // guarantee (see `F32x16`).

    impl Add for F32x16 {
        type Output = F32x16;
        #[inline(always)]
        fn add(self, o: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_add_ps(self.0, o.0)) }
        }
    }
    impl Sub for F32x16 {
        type Output = F32x16;
        #[inline(always)]
        fn sub(self, o: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_sub_ps(self.0, o.0)) }
        }
    }
    impl Mul for F32x16 {
        type Output = F32x16;
        #[inline(always)]
        fn mul(self, o: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_mul_ps(self.0, o.0)) }
        }
    }
    impl Neg for F32x16 {
        type Output = F32x16;
        #[inline(always)]
        fn neg(self) -> F32x16 {
            unsafe {
                let sign = _mm512_set1_epi32(i32::MIN);
                F32x16(_mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(self.0),
                    sign,
                )))
            }
        }
    }

    impl Lanes for F32x16 {
        type Mask = __mmask16;
        #[inline(always)]
        fn splat(v: f32) -> F32x16 {
            unsafe { F32x16(_mm512_set1_ps(v)) }
        }
        #[inline(always)]
        fn mul_add(self, a: F32x16, b: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_fmadd_ps(self.0, a.0, b.0)) }
        }
        #[inline(always)]
        fn abs(self) -> F32x16 {
            unsafe { F32x16(_mm512_abs_ps(self.0)) }
        }
        #[inline(always)]
        fn floor(self) -> F32x16 {
            unsafe {
                F32x16(_mm512_roundscale_ps::<
                    { _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC },
                >(self.0))
            }
        }
        #[inline(always)]
        fn clamp(self, lo: f32, hi: f32) -> F32x16 {
            // `max(lo, x)` is `lo > x ? lo : x`, and `min(hi, .)` likewise:
            // a NaN in x comes through, as in f32::clamp.
            unsafe {
                let x = _mm512_max_ps(_mm512_set1_ps(lo), self.0);
                F32x16(_mm512_min_ps(_mm512_set1_ps(hi), x))
            }
        }
        #[inline(always)]
        fn at_most(self, hi: f32) -> F32x16 {
            unsafe { F32x16(_mm512_min_ps(_mm512_set1_ps(hi), self.0)) }
        }
        #[inline(always)]
        fn copysign(self, sign: F32x16) -> F32x16 {
            // Bit operations, not a compare and a blend: on Zen 4 these run
            // beside the multiply-adds, where a compare takes their slot.
            unsafe {
                let bit = _mm512_set1_epi32(i32::MIN);
                let mag = _mm512_andnot_si512(bit, _mm512_castps_si512(self.0));
                let sgn = _mm512_and_si512(bit, _mm512_castps_si512(sign.0));
                F32x16(_mm512_castsi512_ps(_mm512_or_si512(mag, sgn)))
            }
        }
        #[inline(always)]
        fn lt(self, o: F32x16) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn select(m: __mmask16, a: F32x16, b: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_mask_blend_ps(m, b.0, a.0)) }
        }
        #[inline(always)]
        fn scale_pow2(self, n: F32x16) -> F32x16 {
            unsafe { F32x16(_mm512_scalef_ps(self.0, n.0)) }
        }
        #[inline(always)]
        fn recip_times(self, num: f32) -> F32x16 {
            unsafe { F32x16(_mm512_div_ps(_mm512_set1_ps(num), self.0)) }
        }
    }
}

/// `M` registers of [`F32x16`], each operation applied to one after the
/// other: the rows of an LSTM tile through the cell side by side, so that
/// the out-of-order core has `M` independent chains to overlap where one
/// row's activations are a single chain of dependent operations.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Rows<const M: usize>(pub(crate) [F32x16; M]);

#[cfg(target_arch = "x86_64")]
mod rows {
    use super::{F32x16, Lanes, Rows};
    use std::arch::x86_64::__mmask16;
    use std::ops::{Add, Mul, Neg, Sub};

    /// `$out` with every register `j` set to `$e`, by a plain loop: the
    /// closures of `array::from_fn` were left uninlined in the tiles, which
    /// then called out for every intrinsic.
    macro_rules! each {
        ($out:expr, $j:ident => $e:expr) => {{
            let mut out = $out;
            for $j in 0..M {
                out.0[$j] = $e;
            }
            out
        }};
    }

    impl<const M: usize> Add for Rows<M> {
        type Output = Self;
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            each!(self, j => self.0[j] + o.0[j])
        }
    }
    impl<const M: usize> Sub for Rows<M> {
        type Output = Self;
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            each!(self, j => self.0[j] - o.0[j])
        }
    }
    impl<const M: usize> Mul for Rows<M> {
        type Output = Self;
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            each!(self, j => self.0[j] * o.0[j])
        }
    }
    impl<const M: usize> Neg for Rows<M> {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            each!(self, j => -self.0[j])
        }
    }
    impl<const M: usize> Lanes for Rows<M> {
        type Mask = [__mmask16; M];
        #[inline(always)]
        fn splat(v: f32) -> Self {
            Rows([F32x16::splat(v); M])
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            each!(self, j => self.0[j].mul_add(a.0[j], b.0[j]))
        }
        #[inline(always)]
        fn abs(self) -> Self {
            each!(self, j => self.0[j].abs())
        }
        #[inline(always)]
        fn floor(self) -> Self {
            each!(self, j => self.0[j].floor())
        }
        #[inline(always)]
        fn clamp(self, lo: f32, hi: f32) -> Self {
            each!(self, j => self.0[j].clamp(lo, hi))
        }
        #[inline(always)]
        fn at_most(self, hi: f32) -> Self {
            each!(self, j => self.0[j].at_most(hi))
        }
        #[inline(always)]
        fn copysign(self, sign: Self) -> Self {
            each!(self, j => self.0[j].copysign(sign.0[j]))
        }
        #[inline(always)]
        fn lt(self, o: Self) -> [__mmask16; M] {
            let mut m = [0; M];
            for (j, m) in m.iter_mut().enumerate() {
                *m = self.0[j].lt(o.0[j]);
            }
            m
        }
        #[inline(always)]
        fn select(m: [__mmask16; M], a: Self, b: Self) -> Self {
            each!(a, j => F32x16::select(m[j], a.0[j], b.0[j]))
        }
        #[inline(always)]
        fn scale_pow2(self, n: Self) -> Self {
            each!(self, j => self.0[j].scale_pow2(n.0[j]))
        }
        #[inline(always)]
        fn recip_times(self, num: f32) -> Self {
            each!(self, j => self.0[j].recip_times(num))
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::act::{exp, exp_lanes, sigmoid, sigmoid_lanes, tanh, tanh_lanes};

    /// Runs `f` over `xs` sixteen at a time (the tail masked) in a function
    /// compiled for AVX-512F.
    #[target_feature(enable = "avx512f")]
    fn wide_map(xs: &[f32], out: &mut [f32], f: impl Fn(F32x16) -> F32x16) {
        use std::arch::x86_64::*;
        assert!(xs.len() <= out.len());
        for j in (0..xs.len()).step_by(16) {
            let mask = ((1u32 << (xs.len() - j).min(16)) - 1) as __mmask16;
            // SAFETY: the masked lanes are within both slices.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, xs.as_ptr().add(j));
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(j), mask, f(F32x16(v)).0);
            }
        }
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// `vscalefps` against the portable exponent-bits product: every
    /// mantissa in [0.5, 2) at the two powers whose products can be
    /// subnormal (the only ones that round), and a sample at every other.
    #[test]
    fn scale_by_a_power_of_two_is_the_portable_product() {
        if !is_x86_feature_detected!("avx512f") {
            // F32x16 cannot run on this CPU; the scalar form is all there is.
            return;
        }
        let all: Vec<f32> = (0..1u32 << 24)
            .map(|m| f32::from_bits((126 << 23) + m))
            .collect();
        let sample: Vec<f32> = all.iter().step_by(997).copied().collect();
        let mut out = vec![0f32; all.len()];
        for n in -126..=127 {
            let ys = if n <= -125 { &all } else { &sample };
            let nf = n as f32;
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { wide_map(ys, &mut out, |y| y.scale_pow2(F32x16::splat(nf))) };
            for (y, v) in ys.iter().zip(&out) {
                assert!(same(*v, y.scale_pow2(nf)), "{y:e} * 2^{n}: {v:e}");
            }
        }
    }

    /// exp, sigmoid and tanh on sixteen lanes against the scalar forms
    /// (what the multiversioned loops vectorise), bit for bit, over
    /// every 127th f32 (both signs, every exponent: zeros, subnormals, the
    /// clamps of exp, infinities, NaN).
    #[test]
    fn activations_in_registers_equal_the_scalar_ones() {
        if !is_x86_feature_detected!("avx512f") {
            // F32x16 cannot run on this CPU; the scalar form is all there is.
            return;
        }
        let xs: Vec<f32> = (0..u32::MAX / 127)
            .map(|i| f32::from_bits(i * 127))
            .chain([
                0.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                0.625,
                -0.625,
            ])
            .collect();
        let mut out = vec![0f32; xs.len()];
        type Pair = (fn(F32x16) -> F32x16, fn(f32) -> f32);
        let cases: [(&str, Pair); 3] = [
            ("exp", (exp_lanes, exp)),
            ("sigmoid", (sigmoid_lanes, sigmoid)),
            ("tanh", (tanh_lanes, tanh)),
        ];
        for (name, (wide, scalar)) in cases {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { wide_map(&xs, &mut out, wide) };
            for (x, v) in xs.iter().zip(&out) {
                assert!(
                    same(*v, scalar(*x)),
                    "{name}({x:e}): {v:e} against {:e}",
                    scalar(*x)
                );
            }
        }
    }
}
