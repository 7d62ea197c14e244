//! A model's trainable tensors in a fixed order with their PyTorch names,
//! built from the names and shapes the model declares. Shared by every
//! model so snapshot/restore (bug 3 of the original: a "restore" that kept a
//! reference to the live weights) is written once.

use candle_core::{DType, Result, Tensor, Var};
use recur_core::checkpoint::TensorSpec;
use std::collections::HashMap;

pub struct ParamSet {
    vars: Vec<(String, Var)>,
}

impl ParamSet {
    /// Takes the tensors named by `specs` out of `tensors` (already checked
    /// against the specs by the checkpoint layer), as f32 variables.
    pub fn from_tensors(
        specs: &[TensorSpec],
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let vars = specs
            .iter()
            .map(|s| {
                let t = tensors
                    .remove(&s.name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {}", s.name)))?;
                if t.dims() != s.shape.as_slice() {
                    candle_core::bail!(
                        "tensor {}: shape {:?}, expected {:?}",
                        s.name,
                        t.dims(),
                        s.shape
                    );
                }
                // Detached, so that a tensor of another model's variable
                // is copied, not shared: training that model must not
                // change this one (nor the weights it packed to serve).
                Ok((
                    s.name.clone(),
                    Var::from_tensor(&t.to_dtype(DType::F32)?.detach())?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(ParamSet { vars })
    }

    /// The named parameters, in the order they were declared.
    pub fn all(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The parameters, for an optimiser.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// The number of trainable parameters.
    pub fn n_params(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The tensor called `name`; the names are fixed by construction.
    pub fn get(&self, name: &str) -> &Tensor {
        self.var(name).as_tensor()
    }

    /// The variable called `name` (to `set` it in place).
    pub fn var(&self, name: &str) -> &Var {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("model has no parameter {name}"))
    }

    /// A real copy of every weight.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    /// Overwrites the weights with a snapshot.
    pub fn restore(&self, snap: &[(String, Tensor)]) -> Result<()> {
        for ((n, v), (sn, t)) in self.vars.iter().zip(snap) {
            debug_assert_eq!(n, sn);
            v.set(t)?;
        }
        Ok(())
    }
}
