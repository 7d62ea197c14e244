//! Adam and AdamW exactly as PyTorch defines them (bias-corrected moments;
//! Adam adds `weight_decay * p` to the gradient, AdamW decays the weight
//! itself), with gradient-norm clipping as `clip_grad_norm_`: one global L2
//! norm over all gradients, scaled by `max / (norm + 1e-6)` when above max.
//! candle-nn has AdamW but no clipping and no L2-style Adam.

use candle_core::{backprop::GradStore, Result, Tensor, Var};

pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW's decoupled decay instead of Adam's L2 term.
    pub decoupled: bool,
    step: usize,
}

impl Adam {
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64, decoupled: bool) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
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

    /// The global L2 norm of the gradients.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut s = 0f64;
        for var in &self.vars {
            if let Some(g) = grads.get(var) {
                s += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(s.sqrt())
    }

    /// One update; clips to `max_norm` first when it is above 0. Returns the
    /// gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, max_norm: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        let scale = if max_norm > 0.0 && norm > max_norm {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let mut g = if scale != 1.0 {
                g.affine(scale, 0.0)?
            } else {
                g.clone()
            };
            let mut p = var.as_tensor().detach();
            if self.weight_decay > 0.0 {
                if self.decoupled {
                    p = p.affine(1.0 - self.lr * self.weight_decay, 0.0)?;
                } else {
                    g = (g + p.affine(self.weight_decay, 0.0)?)?;
                }
            }
            self.m[i] = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let denom = ((self.v[i].sqrt()? / bc2.sqrt())? + self.eps)?;
            let upd = ((&self.m[i] / denom)? * (self.lr / bc1))?;
            var.set(&(p - upd)?)?;
        }
        Ok(norm)
    }
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
}
