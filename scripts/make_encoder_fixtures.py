#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 from Python sentence-transformers,
for recur-text's parity test (crates/recur-text/tests/minilm.rs).

    python3 -m venv .venv-ref && .venv-ref/bin/pip install torch sentence-transformers
    target/release/recur models fetch all-MiniLM-L6-v2
    .venv-ref/bin/python scripts/make_encoder_fixtures.py [MODEL_DIR]

MODEL_DIR defaults to the recur cache ($RECUR_HOME/models/all-MiniLM-L6-v2,
RECUR_HOME defaulting to ~/.cache/recur). Writes
crates/recur-text/tests/fixtures/minilm_reference.json.
"""
import json
import os
import sys
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/recur-text/tests/fixtures/minilm_reference.json"

# A dozen sentences: the model card's pair, short and long ones (one past
# the tokenizer file's forced 128 tokens, below the model's 256), numbers,
# accents, quotes, an abbreviation and a question.
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Rain",
    "In 1962, White v. Crook ordered the U.S. state of Alabama to admit women to juries.",
    "Café owners in Zürich said the crème brûlée sold out by noon.",
    '"We will never give up," she said, "not now, not ever."',
    "What is diabetes, and how is it treated?",
    "The GDP grew by 3.5% in Q2 2017, the fastest rate since 2014.",
    "Anarchism is a political philosophy and movement that is sceptical of authority and rejects all "
    "involuntary, coercive forms of hierarchy.",
    " ".join(["The river runs past the old mill, under the stone bridge and through the quiet town"] * 9)
    + ".",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
]


def main():
    home = Path(os.environ.get("RECUR_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recur")
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else home / "models" / "all-MiniLM-L6-v2"
    torch.set_num_threads(1)
    model = SentenceTransformer(str(model_dir), device="cpu")
    tok = model.tokenizer
    lens = [len(tok(s)["input_ids"]) for s in SENTENCES]
    emb = model.encode(SENTENCES, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    a, b = emb[0], emb[1]
    out = {
        "model": "all-MiniLM-L6-v2",
        "made_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "max_seq_length": model.max_seq_length,
        "token_counts": lens,
        "cos_pair": float(a @ b),
        "sentences": SENTENCES,
        "embeddings": [[float(f"{x:.8g}") for x in row] for row in emb.tolist()],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"cos(pair) = {out['cos_pair']:.4f}; token counts {lens}; wrote {OUT}")


if __name__ == "__main__":
    main()
