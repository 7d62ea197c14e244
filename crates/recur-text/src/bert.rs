//! The BERT encoder forward on recur's own CPU code (`recur_kernels::dense`)
//! instead of candle-transformers' `BertModel`, which spent half its time
//! outside the products: a tensor per op, libm's scalar `erf` for GELU,
//! padded rows carried through every layer, and candle's element-wise pool
//! spinning between ops (`benches/compare_encode.py` measures the two).
//!
//! Sentences are packed end to end with no padding: every product runs on
//! the real tokens only and attention stays within each sentence, which is
//! exactly what a padded batch with an attention mask computes. Every
//! product is against a weight packed once at load time
//! (`recur_kernels::packed`), Q, K and V as one; the residual add and
//! LayerNorm are one pass. Weights keep the names and
//! layout of the checkpoint (`encoder.layer.{i}.attention.self.query.weight`,
//! ...), with candle-transformers' prefix rules (`bert.`, or the model
//! type), so every checkpoint that loaded before loads now.

use candle_core::Result;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use recur_kernels::dense::{activate, add_layer_norm, attention, Activation};
use recur_kernels::packed::PackedLinear;

struct Layer {
    /// `[query; key; value]`: `[3H, H]`.
    qkv: PackedLinear,
    out: PackedLinear,
    ln1: (Vec<f32>, Vec<f32>),
    inter: PackedLinear,
    down: PackedLinear,
    ln2: (Vec<f32>, Vec<f32>),
}

pub(crate) struct Bert {
    hidden: usize,
    heads: usize,
    inter: usize,
    eps: f32,
    act: Activation,
    vocab: usize,
    positions: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    /// Token type 0's row: recur encodes single sentences.
    type0: Vec<f32>,
    emb_ln: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
}

fn take(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Vec<f32>> {
    vb.get(shape, name)?.flatten_all()?.to_vec1::<f32>()
}

fn norm(vb: &VarBuilder, h: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((take(vb, &[h], "weight")?, take(vb, &[h], "bias")?))
}

impl Bert {
    /// The weights of `c` from `vb`; a missing tensor or a wrong shape is
    /// an error naming the tensor.
    pub(crate) fn load(vb: VarBuilder, c: &Config) -> Result<Bert> {
        // Absolute positions are the only kind the config type can hold.
        let PositionEmbeddingType::Absolute = c.position_embedding_type;
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        for (key, v) in [
            ("hidden_size", h),
            ("intermediate_size", inter),
            ("vocab_size", c.vocab_size),
            ("max_position_embeddings", c.max_position_embeddings),
            ("type_vocab_size", c.type_vocab_size),
        ] {
            if v == 0 {
                candle_core::bail!("{key} is 0; a BERT needs it positive");
            }
        }
        if c.num_attention_heads == 0 || !h.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {h} is not a multiple of num_attention_heads {}",
                c.num_attention_heads
            );
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else if let Some(t) = c
            .model_type
            .as_ref()
            .filter(|t| vb.contains_tensor(&format!("{t}.embeddings.word_embeddings.weight")))
        {
            vb.pp(t)
        } else {
            vb
        };
        let e = vb.pp("embeddings");
        let type_rows = take(&e, &[c.type_vocab_size, h], "token_type_embeddings.weight")?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                let p = a.pp("self").pp(part);
                qkv_w.extend(take(&p, &[h, h], "weight")?);
                qkv_b.extend(take(&p, &[h], "bias")?);
            }
            let o = a.pp("output");
            let dense = |vb: &VarBuilder, rows: usize, cols: usize| -> Result<PackedLinear> {
                let w = take(vb, &[rows, cols], "weight")?;
                Ok(PackedLinear::new(
                    &w,
                    cols,
                    Some(&take(vb, &[rows], "bias")?),
                ))
            };
            layers.push(Layer {
                qkv: PackedLinear::new(&qkv_w, h, Some(&qkv_b)),
                out: dense(&o.pp("dense"), h, h)?,
                ln1: norm(&o.pp("LayerNorm"), h)?,
                inter: dense(&l.pp("intermediate").pp("dense"), inter, h)?,
                down: dense(&l.pp("output").pp("dense"), h, inter)?,
                ln2: norm(&l.pp("output").pp("LayerNorm"), h)?,
            });
        }
        Ok(Bert {
            hidden: h,
            heads: c.num_attention_heads,
            inter,
            eps: c.layer_norm_eps as f32,
            act: match c.hidden_act {
                HiddenAct::Gelu => Activation::Gelu,
                HiddenAct::GeluApproximate => Activation::GeluTanh,
                HiddenAct::Relu => Activation::Relu,
            },
            vocab: c.vocab_size,
            positions: c.max_position_embeddings,
            word: take(&e, &[c.vocab_size, h], "word_embeddings.weight")?,
            pos: take(
                &e,
                &[c.max_position_embeddings, h],
                "position_embeddings.weight",
            )?,
            type0: type_rows[..h].to_vec(),
            emb_ln: norm(&e.pp("LayerNorm"), h)?,
            layers,
        })
    }

    /// Width of the hidden states.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden
    }

    /// The last layer's hidden state of every token, `[rows, H]` with the
    /// sentences end to end (`offsets` as [`attention`] reads them).
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> recur_core::Result<(Vec<f32>, Vec<usize>)> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0);
        for s in seqs {
            if s.len() > self.positions {
                return Err(recur_core::Error::Msg(format!(
                    "{} tokens, more than the model's {} positions",
                    s.len(),
                    self.positions
                )));
            }
            offsets.push(offsets.last().unwrap_or(&0) + s.len());
        }
        let rows = *offsets.last().unwrap_or(&0);
        let mut x = vec![0f32; rows * h];
        if rows == 0 {
            return Ok((x, offsets));
        }
        for (s, ids) in seqs.iter().enumerate() {
            for (p, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(recur_core::Error::Msg(format!(
                        "token id {id} is outside the model's vocabulary of {}",
                        self.vocab
                    )));
                }
                let dst = &mut x[(offsets[s] + p) * h..][..h];
                let (w, q) = (&self.word[id * h..][..h], &self.pos[p * h..][..h]);
                for (((d, a), b), c) in dst.iter_mut().zip(w).zip(q).zip(&self.type0) {
                    // PyTorch's order: (word + type) + position.
                    *d = (a + c) + b;
                }
            }
        }
        add_layer_norm(&mut x, None, &self.emb_ln.0, &self.emb_ln.1, self.eps);
        let threads = rayon::current_num_threads();
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut ctx = vec![0f32; rows * h];
        let mut tmp = vec![0f32; rows * h];
        let mut mid = vec![0f32; rows * self.inter];
        for l in &self.layers {
            l.qkv.forward(&x, &mut qkv, threads);
            attention(&qkv, self.heads, &offsets, &mut ctx);
            l.out.forward(&ctx, &mut tmp, threads);
            add_layer_norm(&mut x, Some(&tmp), &l.ln1.0, &l.ln1.1, self.eps);
            l.inter.forward(&x, &mut mid, threads);
            activate(&mut mid, self.inter, self.act);
            l.down.forward(&mid, &mut tmp, threads);
            add_layer_norm(&mut x, Some(&tmp), &l.ln2.0, &l.ln2.1, self.eps);
        }
        Ok((x, offsets))
    }
}
