"""Helpers shared by benches/compare_lstm.py and benches/compare_encode.py:
the CPU model for the header, and a check that onnxruntime can be imported."""
import os
import re
import subprocess


def cpu_model():
    """'MODEL NAME (family F, model M, stepping S), N logical CPUs' from lscpu or /proc/cpuinfo."""
    fields = {}
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env={**os.environ, "LC_ALL": "C"}).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            fields.setdefault(k.strip().lower(), v.strip())
    except OSError:
        pass
    name = fields.get("model name")
    fam, mod, step = fields.get("cpu family"), fields.get("model"), fields.get("stepping")
    if not name:
        try:
            info = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
        except OSError:
            info = ""
        get = lambda key: (re.search(rf"^{key}\s*:\s*(.*)$", info, re.M) or [None, None])[1]
        name, fam, mod, step = get("model name"), get("cpu family"), get("model"), get("stepping")
    name = re.sub(r"\s+", " ", name or "unknown CPU").strip()
    ids = ", ".join(f"{k} {v}" for k, v in (("family", fam), ("model", mod), ("stepping", step)) if v)
    return f"{name}{f' ({ids})' if ids else ''}, {os.cpu_count()} logical CPUs"


def ort_available(python):
    """None if `python` can import onnxruntime and onnx, else the error text."""
    p = subprocess.run([python, "-c", "import onnxruntime, onnx"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    return None if p.returncode == 0 else (p.stdout.strip().splitlines() or ["?"])[-1]
