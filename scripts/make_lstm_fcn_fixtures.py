"""Generate the PyTorch reference fixture for recur's LSTM-FCN
(crates/recur-models/src/lstm_fcn.rs; test crates/recur-models/tests/lstm_fcn.rs).

The reference module is LSTM-FCN as Karim et al. (2017) describe it, in
PyTorch's terms: ``nn.LSTM(T if shuffle else F, H, batch_first=True)`` on the
series (transposed to F steps of T values with the dimension shuffle), the
last hidden state, dropout; beside it three blocks ``Conv1d(padding="same")
-> BatchNorm1d -> ReLU`` and the mean over time; both concatenated into
``nn.Linear(H + filters[2], K)``.

Writes ``lstm_fcn.npz`` into --out with two cases, names prefixed ``a.`` and
``b.``:

    case a: B=4, T=12, F=2, H=5, filters (6, 8, 4), kernels (8, 5, 3),
            shuffle on,  K=1 (two classes)
    case b: B=3, T=9,  F=3, H=4, filters (5, 6, 7), kernels (4, 3, 2),
            shuffle off, K=3

After ``torch.manual_seed(0)`` (once, case a then b), per case: the module's
own initialisation, then every parameter redrawn uniform(-0.5, 0.5), batch
norm scales uniform(0.5, 1.5), the running means randn * 0.3 and running
variances uniform(0.5, 2.0) (so that evaluation with batch statistics
instead of the running ones gives other numbers), then ``x [B, T, F]``
randn and ``gy [B, K]`` randn. Stored (float32 inputs, float64 outputs):

    x, gy, p.<name> for every parameter and buffer (PyTorch's names)
    y_eval              eval() forward on the stored running statistics
    y_train             train() forward (batch statistics, dropout 0)
    grad.<name>         d sum(y_train * gy) / d parameter
    grad_x              d sum(y_train * gy) / d x
    new.<bn>.running_*  the running statistics after that train() forward

The reference runs in float64 on the float32 values widened. Dropout is 0
(recur draws its masks from its own generator).

Usage (from the repo root, with the reference venv)::

    .venv-ref/bin/python scripts/make_lstm_fcn_fixtures.py
"""
import argparse, os
import numpy as np
import torch
from torch import nn

CASES = [
    ("a", dict(B=4, T=12, F=2, H=5, filters=(6, 8, 4), kernels=(8, 5, 3), shuffle=True, K=1)),
    ("b", dict(B=3, T=9, F=3, H=4, filters=(5, 6, 7), kernels=(4, 3, 2), shuffle=False, K=3)),
]


class LstmFcn(nn.Module):
    def __init__(self, T, F, H, filters, kernels, shuffle, K):
        super().__init__()
        self.shuffle = shuffle
        self.lstm = nn.LSTM(T if shuffle else F, H, batch_first=True)
        c_in = F
        for k in range(3):
            setattr(self, f"conv{k + 1}", nn.Conv1d(c_in, filters[k], kernels[k], padding="same"))
            setattr(self, f"bn{k + 1}", nn.BatchNorm1d(filters[k]))
            c_in = filters[k]
        self.fc = nn.Linear(H + filters[2], K)

    def forward(self, x):  # x [B, T, F]
        r = x.transpose(1, 2) if self.shuffle else x
        _, (h, _) = self.lstm(r)
        h = h[-1]
        c = x.transpose(1, 2)
        for k in range(1, 4):
            c = torch.relu(getattr(self, f"bn{k}")(getattr(self, f"conv{k}")(c)))
        z = torch.cat([h, c.mean(2)], 1)
        return self.fc(z)


def make_case(B, T, F, H, filters, kernels, shuffle, K):
    m = LstmFcn(T, F, H, filters, kernels, shuffle, K)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("bn") and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.uniform_(-0.5, 0.5)
        for k in range(1, 4):
            bn = getattr(m, f"bn{k}")
            bn.running_mean.copy_(torch.randn(bn.num_features) * 0.3)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(B, T, F)
    gy = torch.randn(B, K)
    out = {"x": x.numpy(), "gy": gy.numpy()}
    state = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    for k, v in state.items():
        out[f"p.{k}"] = v.numpy().astype(np.float32)
    md = m.double()
    md.eval()
    xd = x.double().requires_grad_(True)
    with torch.no_grad():
        out["y_eval"] = md(x.double()).numpy()
    md.train()
    y = md(xd)
    (y * gy.double()).sum().backward()
    out["y_train"] = y.detach().numpy()
    out["grad_x"] = xd.grad.numpy()
    for name, p in md.named_parameters():
        out[f"grad.{name}"] = p.grad.numpy()
    for k in range(1, 4):
        bn = getattr(md, f"bn{k}")
        out[f"new.bn{k}.running_mean"] = bn.running_mean.numpy()
        out[f"new.bn{k}.running_var"] = bn.running_var.numpy()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="crates/recur-models/tests/fixtures")
    args = ap.parse_args()
    torch.manual_seed(0)
    arrays = {}
    for tag, case in CASES:
        for k, v in make_case(**case).items():
            arrays[f"{tag}.{k}"] = v
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lstm_fcn.npz")
    np.savez(path, **arrays)
    back = np.load(path)
    assert sorted(back.files) == sorted(arrays), "names changed on the way back"
    print(f"{path}: {len(arrays)} arrays, torch {torch.__version__}")


if __name__ == "__main__":
    main()
