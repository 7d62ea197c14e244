//! Fast f32 `exp`, `sigmoid`, `tanh`, `erf` and GELU written so the compiler vectorises
//! the loops that call them (Cephes polynomials, no lookup tables, no libm
//! calls). They are `#[inline(always)]` so that they take the SIMD width of
//! the multiversioned cell kernels they are inlined into. Accuracy is a few
//! ulp, far inside the 1e-4 the kernels are held to against PyTorch.

// Cephes coefficients, written as published.
#![allow(clippy::excessive_precision)]

use crate::lanes::Lanes;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for x in about [-87, 88] (clamped outside).
///
/// Polynomials use `mul_add`: one fused instruction in the AVX2/AVX-512/NEON
/// versions the kernels are compiled for (a libm call only on x86 CPUs
/// without FMA, which take the slow generic version of everything).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_lanes(x)
}

/// [`exp`] for any [`Lanes`]: one f32, or sixteen in an AVX-512 register
/// with the same bits.
#[inline(always)]
pub fn exp_lanes<V: Lanes>(x: V) -> V {
    exp_clamped(x.clamp(-87.3, 88.0))
}

/// [`exp_lanes`] of `x` already clamped to [-87.3, 88] (a NaN passes).
#[inline(always)]
fn exp_clamped<V: Lanes>(x: V) -> V {
    let c = V::splat;
    let n = x.mul_add(c(LOG2E), c(0.5)).floor();
    let r = n.mul_add(c(-LN2_LO), n.mul_add(c(-LN2_HI), x));
    let mut p = c(1.987_569_1e-4);
    p = p.mul_add(r, c(1.398_199_9e-3));
    p = p.mul_add(r, c(8.333_452e-3));
    p = p.mul_add(r, c(4.166_579_6e-2));
    p = p.mul_add(r, c(1.666_666_5e-1));
    p = p.mul_add(r, c(5.000_000_1e-1));
    let y = (p * r).mul_add(r, r) + c(1.0);
    // n is an integer in [-126, 127] after the clamp above.
    y.scale_pow2(n)
}

/// The logistic function, as the kernels compute it.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    sigmoid_lanes(x)
}

/// [`sigmoid`] for any [`Lanes`].
#[inline(always)]
pub fn sigmoid_lanes<V: Lanes>(x: V) -> V {
    (V::splat(1.0) + exp_lanes(-x)).recip_times(1.0)
}

/// tanh: an odd polynomial near zero (no cancellation), `1 - 2/(e^2x + 1)`
/// elsewhere; both are computed and one is selected so the loop stays
/// branch-free.
///
/// The large branch is written for the FMA ports, the same bits as
/// `exp(2 * |x|)` with both clamps and a select of `-big` where x < 0:
/// `|x| + |x|` is `2 |x|` exactly (an add, not a multiply), a value not
/// below zero needs no low clamp, and `big` is positive wherever it is
/// selected (|x| >= 0.625), so the sign of x is copied onto it by bit
/// operations instead of a compare and a blend. On Zen 4 a multiply or a
/// compare takes a multiply-add's slot where an add or a bit operation
/// runs beside them: two of the cell's some 77 such operations per
/// register go. The same bits for every f32 (checked over all 2^32).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    tanh_lanes(x)
}

/// [`tanh`] for any [`Lanes`].
#[inline(always)]
pub fn tanh_lanes<V: Lanes>(x: V) -> V {
    let c = V::splat;
    let z = x * x;
    let mut q = c(-5.704_988_7e-3);
    q = q.mul_add(z, c(2.063_908_9e-2));
    q = q.mul_add(z, c(-5.373_971_6e-2));
    q = q.mul_add(z, c(1.333_144_2e-1));
    q = q.mul_add(z, c(-3.333_328_2e-1));
    let small = (q * z).mul_add(x, x);
    let a = x.abs();
    let e = exp_clamped((a + a).at_most(88.0));
    let big = (c(1.0) - (e + c(1.0)).recip_times(2.0)).copysign(x);
    V::select(a.lt(c(0.625)), small, big)
}

/// The error function, `1 - erfc(|x|)` with Numerical Recipes' `erfcc`
/// (Chebyshev fit, fractional error below 1.2e-7 everywhere), odd in x.
/// Branch-free, so a loop of it vectorises; it is what the exact GELU of
/// the sentence encoders needs, where libm's scalar `erff` was a tenth of
/// a forward pass.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / z.mul_add(0.5, 1.0);
    let mut p = 0.170_872_77f32;
    p = p.mul_add(t, -0.822_152_23);
    p = p.mul_add(t, 1.488_515_9);
    p = p.mul_add(t, -1.135_203_98);
    p = p.mul_add(t, 0.278_868_07);
    p = p.mul_add(t, -0.186_288_06);
    p = p.mul_add(t, 0.096_784_18);
    p = p.mul_add(t, 0.374_091_96);
    p = p.mul_add(t, 1.000_023_68);
    p = p.mul_add(t, -1.265_512_23);
    let r = 1.0 - t * exp(p - z * z);
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// GELU as BERT's `gelu` (the exact one): `x/2 (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation (BERT's `gelu_new`, candle's `gelu`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * x * (1.0 + tanh(C * (0.044_715 * x * x).mul_add(x, x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_standard_library_over_the_working_range() {
        let mut worst = (0f64, 0f64, 0f64);
        for k in -40_000..=40_000 {
            let x = k as f32 * 0.001; // [-40, 40]
            let e = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            let s = (sigmoid(x) as f64 - 1.0 / (1.0 + (-(x as f64)).exp())).abs();
            let t = (tanh(x) as f64 - (x as f64).tanh()).abs();
            worst = (worst.0.max(e), worst.1.max(s), worst.2.max(t));
        }
        assert!(worst.0 < 1e-6, "exp relative error {}", worst.0);
        assert!(worst.1 < 1e-6, "sigmoid abs error {}", worst.1);
        assert!(worst.2 < 1e-6, "tanh abs error {}", worst.2);
        // Relative accuracy of tanh near zero, where 1 - 2/(e^2x+1) cancels.
        for x in [1e-6f32, 1e-4, 3e-3, 0.1, 0.6] {
            let rel = ((tanh(x) as f64 - (x as f64).tanh()) / (x as f64).tanh()).abs();
            assert!(rel < 1e-6, "tanh({x}) relative error {rel}");
        }
        assert_eq!(sigmoid(-200.0), 0.0f32.max(sigmoid(-200.0)));
        assert!(sigmoid(200.0) == 1.0 && tanh(200.0) == 1.0 && tanh(-200.0) == -1.0);
    }

    /// erf against a double-precision series/continued-fraction-free
    /// reference: `libm`'s `erf` on f64, over the range GELU sees.
    #[test]
    fn erf_and_gelu_are_close_to_double_precision() {
        let mut worst = (0f64, 0f64, 0f64);
        for k in -20_000..=20_000 {
            let x = k as f32 * 0.0005; // [-10, 10]
            let xd = x as f64;
            let e = (erf(x) as f64 - erf64(xd)).abs();
            let g = (gelu_erf(x) as f64 - 0.5 * xd * (1.0 + erf64(xd / 2f64.sqrt()))).abs();
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let gt = 0.5 * xd * (1.0 + (c * (xd + 0.044715 * xd * xd * xd)).tanh());
            worst = (
                worst.0.max(e),
                worst.1.max(g),
                worst.2.max((gelu_tanh(x) as f64 - gt).abs()),
            );
        }
        assert!(worst.0 < 3e-7, "erf abs error {}", worst.0);
        assert!(worst.1 < 1e-6, "gelu abs error {}", worst.1);
        assert!(worst.2 < 1e-6, "gelu_tanh abs error {}", worst.2);
        assert_eq!((erf(0.0), erf(30.0), erf(-30.0)), (0.0, 1.0, -1.0));
    }

    /// erf in f64 by its Taylor series near zero and the asymptotic
    /// continued fraction of erfc beyond; 1e-13 or better on [-10, 10].
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            // sum_n (-1)^n x^(2n+1) / (n! (2n+1)), in f64 with enough terms.
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        } else {
            // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        r.copysign(x)
    }
}
