//! Adam and AdamW exactly as PyTorch defines them (bias-corrected moments;
//! Adam adds `weight_decay * p` to the gradient, AdamW decays the weight
//! itself), with gradient-norm clipping as `clip_grad_norm_`: one global L2
//! norm over all gradients, scaled by `max / (norm + 1e-6)` when above max.
//! candle-nn has AdamW but no clipping and no L2-style Adam.
//!
//! The update is one in-place pass per tensor over the parameter, its
//! gradient and the two moments (plain `Vec<f32>`), as PyTorch's fused
//! Adam: written with tensor operations it allocated about ten temporaries
//! the size of the model per step, which at the LVM's 9.2M parameters cost
//! more than a tenth of a training step in page faults alone.
//!
//! Both the update and the norm run on the command's thread pool, and
//! neither depends on the thread count: the update is element-wise, so
//! splitting a tensor into pieces changes nothing; the norm sums each
//! tensor's squares in a fixed order ([`tensor_sum_squares`]), several
//! tensors at a time, and adds the tensors' sums in their order. Without
//! clipping the update itself sums the squares, piece by piece in the same
//! order, so the gradients are read once. Serial, they held the
//! second core idle for 7% of a w2 training step. Both loops are compiled
//! for AVX-512 and AVX2 too, picked at run time.

use candle_core::{
    backprop::GradStore, bail, CpuStorage, DType, InplaceOp2, Layout, Result, Tensor, Var,
};
use multiversion::multiversion;
use rayon::prelude::*;
use std::sync::Mutex;

/// Elements per piece of a parallel update: 256 KiB of each of the four
/// arrays, small enough to split the LVM's 1M-element weights over a few
/// cores, large enough that a piece costs far more than handing it out.
const PIECE: usize = 1 << 16;

pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW's decoupled decay instead of Adam's L2 term.
    pub decoupled: bool,
    step: usize,
}

/// The contiguous f32 data of a CPU tensor.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        candle_core::Storage::Cpu(CpuStorage::F32(v)) => Ok(f(
            &v[l.start_offset()..l.start_offset() + l.shape().elem_count()]
        )),
        _ => bail!("the optimiser takes f32 tensors on the CPU"),
    }
}

impl Adam {
    /// Adam over `vars`; `decoupled` makes it AdamW.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64, decoupled: bool) -> Result<Self> {
        for v in &vars {
            if v.dtype() != DType::F32 || !v.device().is_cpu() {
                bail!("the optimiser takes f32 parameters on the CPU");
            }
        }
        let m: Vec<Vec<f32>> = vars.iter().map(|v| vec![0.0; v.elem_count()]).collect();
        let v = m.clone();
        Ok(Adam {
            vars,
            m,
            v,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            step: 0,
        })
    }

    /// The global L2 norm of the gradients: each tensor's squares summed
    /// piece by piece ([`tensor_sum_squares`]), the tensors' sums added in
    /// their order.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let sums = self
            .vars
            .par_iter()
            .map(|var| match grads.get(var) {
                Some(g) => with_data(g, tensor_sum_squares),
                None => Ok(0.0),
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(sums.iter().fold(0f64, |s, &t| s + t).sqrt())
    }

    /// One update; clips to `max_norm` first when it is above 0. Returns the
    /// gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, max_norm: f64) -> Result<f64> {
        // Clipping needs the norm before the update; without it the update
        // sums each piece's squares as it reads the piece (the same sums in
        // the same order), which saves a pass over the gradients.
        let clip = max_norm > 0.0;
        let norm = if clip { self.grad_norm(grads)? } else { 0.0 };
        let scale = if clip && norm > max_norm {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let k = Piece {
            scale: scale as f32,
            b1: self.beta1 as f32,
            b2: self.beta2 as f32,
            step: (self.lr / bc1) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
            eps: self.eps as f32,
            wd: self.weight_decay as f32,
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            decay_mode: match (self.weight_decay > 0.0, self.decoupled) {
                (false, _) => Decay::None,
                (true, true) => Decay::Decoupled,
                (true, false) => Decay::L2,
            },
        };
        // The tensors side by side (each large one also split into pieces),
        // so that the small ones do not leave the other threads waiting.
        let sums = self
            .vars
            .par_iter()
            .zip(self.m.par_iter_mut())
            .zip(self.v.par_iter_mut())
            .map(|((var, m), v)| -> Result<f64> {
                let Some(g) = grads.get(var) else {
                    return Ok(0.0);
                };
                let g = g.contiguous()?;
                let op = AdamUpdate {
                    m: Mutex::new(m),
                    v: Mutex::new(v),
                    k,
                    squares: (!clip).then(|| Mutex::new(0.0)),
                };
                var.as_tensor().inplace_op2(&g, &op)?;
                Ok(op.squares.map_or(0.0, |s| s.into_inner().expect("sum")))
            })
            .collect::<Result<Vec<f64>>>()?;
        if clip {
            return Ok(norm);
        }
        Ok(sums.iter().fold(0f64, |s, &t| s + t).sqrt())
    }
}

/// One tensor's update, in place on the parameter's storage.
struct AdamUpdate<'a> {
    m: Mutex<&'a mut Vec<f32>>,
    v: Mutex<&'a mut Vec<f32>>,
    k: Piece,
    /// Where the update also sums the gradient's squares (no clipping).
    squares: Option<Mutex<f64>>,
}

impl InplaceOp2 for AdamUpdate<'_> {
    fn name(&self) -> &'static str {
        "recur-adam"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        l: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (dst, gs) else {
            bail!("the optimiser takes f32 tensors");
        };
        if !l.is_contiguous() || !gl.is_contiguous() {
            bail!("the optimiser takes contiguous tensors");
        }
        let n = l.shape().elem_count();
        let p = &mut p[l.start_offset()..l.start_offset() + n];
        let g = &g[gl.start_offset()..gl.start_offset() + n];
        let mut m = self.m.lock().expect("adam moment");
        let mut v = self.v.lock().expect("adam moment");
        let c = self.k;
        let want_squares = self.squares.is_some();
        // Each piece's squares are summed just before its update reads it
        // again, from cache (the order of `tensor_sum_squares`).
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            let s = if want_squares { sum_squares(g) } else { 0.0 };
            adam_piece(p, g, m, v, &c);
            s
        };
        let sums: Vec<f64> = if n <= PIECE {
            vec![update(p, g, &mut m[..], &mut v[..])]
        } else {
            p.par_chunks_mut(PIECE)
                .zip(g.par_chunks(PIECE))
                .zip(m.par_chunks_mut(PIECE))
                .zip(v.par_chunks_mut(PIECE))
                .map(|(((p, g), m), v)| update(p, g, m, v))
                .collect()
        };
        if let Some(total) = &self.squares {
            *total.lock().expect("sum") = sums.iter().fold(0f64, |s, &t| s + t);
        }
        Ok(())
    }
}

/// Weight decay as the update applies it.
#[derive(Clone, Copy)]
enum Decay {
    None,
    /// AdamW: the weight shrinks by `decay` before the step.
    Decoupled,
    /// Adam: `wd * p` joins the gradient.
    L2,
}

/// The per-element constants of an update, in f32 as the loop uses them.
#[derive(Clone, Copy)]
struct Piece {
    scale: f32,
    b1: f32,
    b2: f32,
    step: f32,
    sqrt_bc2: f32,
    eps: f32,
    wd: f32,
    decay: f32,
    decay_mode: Decay,
}

/// The update of one piece. Compiled for AVX-512 and AVX2 as well as the
/// baseline and picked at run time: every operation is element-wise and
/// correctly rounded (Rust never fuses the multiply-adds), so each
/// version gives the same bits, 16 lanes at a time instead of SSE2's 4.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn adam_piece(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Piece) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let (b1, b2, step, sqrt_bc2, eps) = (c.b1, c.b2, c.step, c.sqrt_bc2, c.eps);
    // One loop per decay mode, so that none of them branches inside.
    macro_rules! each {
        (|$p:ident, $g:ident| $pre:expr) => {
            for i in 0..n {
                let $p = &mut p[i];
                let $g = g[i] * c.scale;
                let g = $pre;
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                *$p -= step * m[i] / (v[i].sqrt() / sqrt_bc2 + eps);
            }
        };
    }
    match c.decay_mode {
        Decay::None => each!(|p, g| g),
        Decay::Decoupled => each!(|p, g| {
            *p *= c.decay;
            g
        }),
        Decay::L2 => each!(|p, g| g + c.wd * *p),
    }
}

/// The sum of squares of a tensor's elements in f64: [`sum_squares`] of
/// each piece of `PIECE` elements, added in order from the first. The
/// pieces are the update's, so that an update can sum them as it goes
/// (`Adam::step` without clipping); they do not depend on the thread count.
pub fn tensor_sum_squares(x: &[f32]) -> f64 {
    x.par_chunks(PIECE)
        .map(sum_squares)
        .collect::<Vec<f64>>()
        .iter()
        .fold(0f64, |s, &t| s + t)
}

/// The sum of squares of `x` in f64: 64 running sums (sixteen 256-bit
/// registers, which is how LLVM lays them out), added pairwise at the end,
/// then the tail in order. A single running sum is a chain of dependent
/// additions, four cycles each: 7.4 ms of a w2 training step at one
/// thread (5.9 GB/s), for a norm that clipping needs before the update can
/// start; with 64 sums 13-42 GB/s from memory to L2 (16 sums: 11-20).
/// Each square of an f32 is exact in f64, and the order is fixed, so the
/// result depends only on `x`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub fn sum_squares(x: &[f32]) -> f64 {
    const LANES: usize = 64;
    let mut acc = [0f64; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            let v = c[j] as f64;
            acc[j] += v * v;
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            acc[j] += acc[j + width];
        }
    }
    chunks
        .remainder()
        .iter()
        .fold(acc[0], |s, &v| s + v as f64 * v as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_adam_step_moves_each_weight_by_lr_and_clipping_bounds_the_norm() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0], &dev).unwrap();
        let loss = (w.as_tensor() * 100.0).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = Adam::new(vec![w.clone()], 0.1, 0.0, false).unwrap();
        let norm = opt.step(&grads, 1.0).unwrap();
        assert!((norm - (2.0f64 * 100.0 * 100.0).sqrt()).abs() < 1e-3);
        // Adam's first step is lr * sign(g) whatever the scale.
        let got: Vec<f32> = w.as_tensor().to_vec1().unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-6 && (got[1] + 2.1).abs() < 1e-6,
            "{got:?}"
        );
    }

    /// Runs `steps` AdamW steps on a var longer than three pieces (plus a
    /// small one) in a pool of `threads`, clipping at `max_norm`; returns
    /// the weights and norms.
    fn adam_run(threads: usize, steps: usize, max_norm: f64) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let dev = Device::Cpu;
            let n = 3 * PIECE + 5;
            let init: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w = Var::new(init.as_slice(), &dev).unwrap();
            let b = Var::new(&[0.5f32, -0.25, 1.5], &dev).unwrap();
            let mut opt = Adam::new(vec![w.clone(), b.clone()], 0.01, 0.1, true).unwrap();
            let mut norms = Vec::new();
            for _ in 0..steps {
                // loss = sum(w^3) / 3 + sum(b^2): gradients w^2 and 2b.
                let loss = ((w.as_tensor().powf(3.0).unwrap().sum_all().unwrap() / 3.0).unwrap()
                    + b.as_tensor().sqr().unwrap().sum_all().unwrap())
                .unwrap();
                norms.push(opt.step(&loss.backward().unwrap(), max_norm).unwrap());
            }
            (
                w.as_tensor().to_vec1().unwrap(),
                b.as_tensor().to_vec1().unwrap(),
                norms,
            )
        })
    }

    #[test]
    fn parallel_adamw_equals_one_thread_and_the_scalar_formula() {
        let steps = 4;
        let (w1, b1, n1) = adam_run(1, steps, 50.0);
        let (w3, b3, n3) = adam_run(3, steps, 50.0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&w1),
            bits(&w3),
            "weights differ between 1 and 3 threads"
        );
        assert_eq!(bits(&b1), bits(&b3));
        assert_eq!(
            n1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            n3.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        // The same steps written out element by element, in f64, from the
        // formula (gradient clipped to norm 50, decoupled decay 0.1).
        let n = 3 * PIECE + 5;
        let mut w: Vec<f64> = (0..n)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0)
            .collect();
        let mut b = vec![0.5f64, -0.25, 1.5];
        let (lr, wd, be1, be2, eps) = (0.01, 0.1, 0.9f64, 0.999f64, 1e-8);
        let mut mw = vec![0.0; n];
        let mut vw = vec![0.0; n];
        let mut mb = vec![0.0; 3];
        let mut vb = vec![0.0; 3];
        for t in 1..=steps {
            let gw: Vec<f64> = w.iter().map(|x| x * x).collect();
            let gb: Vec<f64> = b.iter().map(|x| 2.0 * x).collect();
            let norm = gw.iter().chain(&gb).map(|g| g * g).sum::<f64>().sqrt();
            assert!(
                (norm - n1[t - 1]).abs() < 1e-4 * norm,
                "norm {norm} vs {}",
                n1[t - 1]
            );
            let scale = if norm > 50.0 {
                50.0 / (norm + 1e-6)
            } else {
                1.0
            };
            let (bc1, bc2) = (1.0 - be1.powi(t as i32), 1.0 - be2.powi(t as i32));
            for (p, g, m, v) in [
                (&mut w, &gw, &mut mw, &mut vw),
                (&mut b, &gb, &mut mb, &mut vb),
            ] {
                for i in 0..p.len() {
                    let g = g[i] * scale;
                    p[i] *= 1.0 - lr * wd;
                    m[i] = be1 * m[i] + (1.0 - be1) * g;
                    v[i] = be2 * v[i] + (1.0 - be2) * g * g;
                    p[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
                }
            }
        }
        for (i, (&got, &want)) in w1.iter().chain(&b1).zip(w.iter().chain(&b)).enumerate() {
            assert!(
                (got as f64 - want).abs() < 1e-5,
                "element {i}: {got} vs {want}"
            );
        }
    }

    /// Without clipping the update sums the squares as it goes: the norms
    /// it returns, and the weights, are those of the clipping path with a
    /// bound never reached, bit for bit, at 1 and 3 threads.
    #[test]
    fn unclipped_steps_return_the_same_norm_from_the_update() {
        let bits64 = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (w, b, n) = adam_run(1, 3, 1e30);
        for threads in [1, 3] {
            let (w0, b0, n0) = adam_run(threads, 3, 0.0);
            assert_eq!(bits64(&n0), bits64(&n), "norms at {threads} threads");
            assert_eq!(bits(&w0), bits(&w), "weights at {threads} threads");
            assert_eq!(bits(&b0), bits(&b));
        }
        // A tensor's sum is its pieces' sums in order.
        let x: Vec<f32> = (0..2 * PIECE + 7).map(|i| (i % 13) as f32 - 6.5).collect();
        let want = x.chunks(PIECE).map(sum_squares).fold(0f64, |s, t| s + t);
        assert_eq!(tensor_sum_squares(&x).to_bits(), want.to_bits());
    }

    /// `sum_squares` gives, bit for bit, the order its comment documents
    /// (64 running sums, halved pairwise, then the tail), across the
    /// lengths where the chunks and the tail meet.
    #[test]
    fn sum_squares_follows_its_documented_order() {
        for n in [0usize, 1, 5, 63, 64, 65, 127, 128, 1000, 4099] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 1.37e-3)
                .collect();
            let mut acc = [0f64; 64];
            let full = n / 64 * 64;
            for (i, &v) in x[..full].iter().enumerate() {
                acc[i % 64] += v as f64 * v as f64;
            }
            let mut w = 64;
            while w > 1 {
                w /= 2;
                for j in 0..w {
                    acc[j] += acc[j + w];
                }
            }
            let want = x[full..]
                .iter()
                .fold(acc[0], |s, &v| s + v as f64 * v as f64);
            assert_eq!(sum_squares(&x).to_bits(), want.to_bits(), "n = {n}");
            let plain: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            assert!((sum_squares(&x) - plain).abs() <= 1e-12 * plain.max(1e-30));
        }
    }

    /// Adam's L2 decay (`decoupled` false, decay above 0): the decay term
    /// joins the gradient before the moments, as `torch.optim.Adam`.
    #[test]
    fn adam_l2_decay_joins_the_gradient() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
        // The gradient 0.1 everywhere; with the decay term -2.0's is -0.9,
        // so that weight moves up, where it would move down without it.
        let loss = (w.as_tensor() * 0.1).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = Adam::new(vec![w.clone()], 0.1, 0.5, false).unwrap();
        opt.step(&grads, 0.0).unwrap();
        opt.step(&grads, 0.0).unwrap();
        // Two steps by the formula, in f64.
        let (be1, be2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut p = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for t in 1..=2 {
            for i in 0..3 {
                let g = 0.1 + 0.5 * p[i];
                m[i] = be1 * m[i] + (1.0 - be1) * g;
                v[i] = be2 * v[i] + (1.0 - be2) * g * g;
                let (bc1, bc2) = (1.0 - be1.powi(t), 1.0 - be2.powi(t));
                p[i] -= 0.1 * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
            }
        }
        let got: Vec<f32> = w.as_tensor().to_vec1().unwrap();
        for i in 0..3 {
            assert!((got[i] as f64 - p[i]).abs() < 1e-5, "{got:?} vs {p:?}");
        }
    }
}
