"""Fixtures for `recur import-torch`: small LVMs written by PyTorch in the
original system's checkpoint format, with inputs and PyTorch's outputs.

For each kind (lstm, gru, amn, transformer, mlp) writes, under --out:
  lvm_<kind>.pt   torch.save({"model_state_dict": ..., "model_config": {...}})
                  with the original's names (input_proj.*, blocks.{i}.<kind>.*_l0,
                  blocks.{i}.norm.*, output_proj.*; the AMN's query.*, key.*, mlp.*;
                  the Transformer's input_proj.*, encoder.layers.{i}.*, head.*;
                  the MLP's input.*, blocks.{i}.norm.*, blocks.{i}.fc.*, output.*)
  lvm_<kind>_io.npz  `x` [B, C, D] float32 inputs and `y` [B, D] float32, the
                  model's own output on them (eval mode).

Usage: .venv-ref/bin/python scripts/make_lvm_fixtures.py [--out crates/recur-deploy/tests/fixtures]
Deterministic: torch.manual_seed(0) per kind.
"""
import argparse, math, os
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

D, d, N_BLOCKS, C, B = 12, 8, 2, 5, 4


class Block(nn.Module):
    def __init__(self, kind):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        setattr(self, kind, rnn(d, d, batch_first=True))
        self.kind = kind
        self.norm = nn.LayerNorm(d)

    def forward(self, h):
        out, _ = getattr(self, self.kind)(h)
        return self.norm(out + h)


class Lvm(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.input_proj = nn.Linear(D, d)
        self.blocks = nn.ModuleList([Block(kind) for _ in range(N_BLOCKS)])
        self.output_proj = nn.Linear(d, D)

    def forward(self, x):
        h = self.input_proj(x)
        for b in self.blocks:
            h = b(h)
        return F.normalize(self.output_proj(h[:, -1]), dim=-1)


class Amn(nn.Module):
    """base = mean(x); a = softmax(q K^T / sqrt(d)); out = normalize(base + MLP([base, ctx]))."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(D, d)
        self.key = nn.Linear(D, d)
        self.mlp = nn.Sequential(nn.Linear(2 * D, 2 * d), nn.GELU(), nn.LayerNorm(2 * d),
                                 nn.Linear(2 * d, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, D))

    def forward(self, x):
        base = x.mean(1)
        q = self.query(base)
        k = self.key(x)
        a = torch.softmax((k @ q.unsqueeze(2)).squeeze(2) / math.sqrt(d), dim=-1)
        ctx = (a.unsqueeze(1) @ x).squeeze(1)
        return F.normalize(base + self.mlp(torch.cat([base, ctx], -1)), dim=-1)


class Transformer(nn.Module):
    """input_proj + sinusoidal positions -> causal encoder -> last step -> head."""

    def __init__(self, heads=2, ff=16, layers=2):
        super().__init__()
        self.input_proj = nn.Linear(D, d)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, D))
        pos = torch.arange(C).unsqueeze(1).double()
        i = torch.arange(0, d, 2).double()
        ang = pos / torch.pow(10000.0, i / d)
        pe = torch.zeros(C, d, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(ang), torch.cos(ang)
        self.pe = pe.float()  # a plain attribute, not a buffer: not in the state dict

    def forward(self, x):
        h = self.input_proj(x) + self.pe[: x.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        h = self.encoder(h, mask=mask, is_causal=True)
        return F.normalize(self.head(h[:, -1]), dim=-1)


class MlpBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)
        self.drop = nn.Dropout(0.1)

    def forward(self, h):
        return h + self.drop(F.gelu(self.fc(self.norm(h))))


class Mlp(nn.Module):
    """flatten(x) -> Linear GELU -> residual blocks -> Linear, added to mean(x), normalised."""

    def __init__(self):
        super().__init__()
        self.input = nn.Linear(C * D, d)
        self.blocks = nn.ModuleList([MlpBlock() for _ in range(N_BLOCKS)])
        self.output = nn.Linear(d, D)

    def forward(self, x):
        h = F.gelu(self.input(x.flatten(1)))
        for b in self.blocks:
            h = b(h)
        return F.normalize(x.mean(1) + self.output(h), dim=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="crates/recur-deploy/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for kind in ["lstm", "gru", "amn", "transformer", "mlp"]:
        torch.manual_seed(0)
        m = {"amn": Amn, "transformer": Transformer, "mlp": Mlp}.get(kind, lambda: Lvm(kind))().eval()
        # Non-trivial LayerNorm parameters, so a wrong mapping shows.
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.LayerNorm):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
        x = F.normalize(torch.randn(B, C, D), dim=-1)
        with torch.no_grad():
            y = m(x)
        cfg = {"input_dim": D, "d_model": d, "num_layers": N_BLOCKS, "dropout": 0.0, "context_length": C}
        if kind == "amn":
            cfg = {"input_dim": D, "hidden_dim": 4 * d, "context_length": C}
        if kind == "transformer":
            cfg = {"input_dim": D, "d_model": d, "num_layers": 2, "nhead": 2, "dropout": 0.1, "context_length": C}
        torch.save({"model_state_dict": m.state_dict(), "model_config": cfg, "epoch": 3},
                   os.path.join(args.out, f"lvm_{kind}.pt"))
        np.savez(os.path.join(args.out, f"lvm_{kind}_io.npz"),
                 x=x.numpy().astype(np.float32), y=y.numpy().astype(np.float32))
        print(kind, sum(p.numel() for p in m.parameters()), "parameters")


if __name__ == "__main__":
    main()
