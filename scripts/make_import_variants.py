"""Fixtures for `recur import-torch` on checkpoints as users bring them:
the same LSTM and Transformer LVMs as `make_lvm_fixtures.py` wrote (read
from `lvm_lstm.pt` / `lvm_transformer.pt`, so their outputs stay those of
`lvm_<kind>_io.npz`), saved again the ways other training code saves them.

Writes, under --out (default crates/recur-deploy/tests/fixtures/variants):
  alias.pt           the state dict and config each named twice (pickle memo)
  dataparallel.pt    every name prefixed `module.` (DataParallel / DDP)
  lightning.pt       {"state_dict": {"model.<name>": ...}, "hyper_parameters": cfg}
  param_state.pt     nn.Parameters carrying a Python attribute (Hugging Face's)
  namespace.pt       model_config as an argparse.Namespace
  numpy_config.pt    model_config's context_length a numpy.int64 (refused)
  norm_first.pt      the Transformer with model_config norm_first: True (refused)
  norm_first_int.pt  the same with norm_first: 1 (refused)
  lstm_eps.pt        the LSTM with model_config layer_norm_eps: 0.1 (refused)
  float8.pt          one tensor as float8_e4m3fn (refused)
  protocol4.pt       torch.save(..., pickle_protocol=4) (refused)
  safetensors.pt     a safetensors file named .pt
  strided.pt         tensors saved as views that are not contiguous (from
                     `.t()`, and every other column of a wider tensor)

Usage: .venv-ref/bin/python scripts/make_import_variants.py
"""
import argparse, argparse as _ap, os
import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "crates", "recur-deploy", "tests", "fixtures")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(FIX, "variants"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda n: os.path.join(args.out, n)
    ck = torch.load(os.path.join(FIX, "lvm_lstm.pt"), weights_only=True)
    sd, cfg = ck["model_state_dict"], ck["model_config"]
    torch.save({"hparams": cfg, "ema_state_dict": sd, "model_state_dict": sd, "model_config": cfg}, out("alias.pt"))
    torch.save({"model_state_dict": {"module." + k: v for k, v in sd.items()}, "model_config": cfg},
               out("dataparallel.pt"))
    torch.save({"state_dict": {"model." + k: v for k, v in sd.items()}, "hyper_parameters": dict(cfg), "epoch": 3},
               out("lightning.pt"))
    params = {}
    for k, v in sd.items():
        p = nn.Parameter(v.clone(), requires_grad=False)
        p._is_hf_initialized = True
        params[k] = p
    torch.save({"model_state_dict": params, "model_config": cfg}, out("param_state.pt"))
    torch.save({"model_state_dict": sd, "model_config": _ap.Namespace(**cfg)}, out("namespace.pt"))
    torch.save({"model_state_dict": sd, "model_config": {**cfg, "context_length": np.int64(cfg["context_length"])}},
               out("numpy_config.pt"))
    f8 = dict(sd)
    f8["output_proj.bias"] = sd["output_proj.bias"].to(torch.float8_e4m3fn)
    torch.save({"model_state_dict": f8, "model_config": cfg}, out("float8.pt"))
    torch.save({"model_state_dict": sd, "model_config": cfg}, out("protocol4.pt"), pickle_protocol=4)
    save_file({k: v.contiguous() for k, v in sd.items()}, out("safetensors.pt"))
    tr = torch.load(os.path.join(FIX, "lvm_transformer.pt"), weights_only=True)
    torch.save({"model_state_dict": tr["model_state_dict"], "model_config": {**tr["model_config"], "norm_first": True}},
               out("norm_first.pt"))
    torch.save({"model_state_dict": tr["model_state_dict"], "model_config": {**tr["model_config"], "norm_first": 1}},
               out("norm_first_int.pt"))
    torch.save({"model_state_dict": sd, "model_config": {**cfg, "layer_norm_eps": 0.1}}, out("lstm_eps.pt"))
    st = dict(sd)
    w = sd["blocks.0.lstm.weight_hh_l0"]
    st["blocks.0.lstm.weight_hh_l0"] = w.t().contiguous().t()
    p = sd["input_proj.weight"]
    st["input_proj.weight"] = torch.stack([p, torch.zeros_like(p)], dim=-1)[..., 0]
    assert not st["blocks.0.lstm.weight_hh_l0"].is_contiguous() and not st["input_proj.weight"].is_contiguous()
    torch.save({"model_state_dict": st, "model_config": cfg}, out("strided.pt"))
    for n in sorted(os.listdir(args.out)):
        print(n, os.path.getsize(out(n)))


if __name__ == "__main__":
    main()
