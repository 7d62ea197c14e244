#!/usr/bin/env python3
"""Build wiki_full.npz (full Wikipedia articles from gensim's test dump) and wiki_all.npz (wiki_full + wiki.npz).

Run with /work/main/.venv-ref/bin/python from /work/main/runs/corpus (imports build_corpus.py next to it for the
sentence splitter, chunk rules, embedder, baselines).

Usage:
  python build_wiki_full.py texts        # parse + clean + split, print stats and samples (no embedding)
  python build_wiki_full.py all          # + embed, write wiki_full.npz, wiki_all.npz, wiki_full_stats.json
  python build_wiki_full.py baselines    # baselines from the existing npz files
"""
import bz2
import html
import json
import re
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np

import build_corpus as bc

DUMP = (f"{bc.W}/x_gensim/gensim/test/test_data/"
        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
OUT = bc.OUT
THREADS = 2

# sections after which an article is references / lists only: stop there
STOP_SECTIONS = {"see also", "references", "notes", "footnotes", "citations", "further reading", "external links",
                 "bibliography", "sources", "notes and references", "references and notes", "works cited",
                 "primary sources", "secondary sources", "general references", "reference", "literature",
                 "selected bibliography", "external link", "notes and citations", "sources and further reading"}

_DROP_TAGS = r"(?:ref|math|chem|gallery|timeline|imagemap|source|syntaxhighlight|pre|score|hiero|code|graph)"
RE_COMMENT = re.compile(r"<!--.*?-->", re.S)
RE_SELFCLOSE = re.compile(r"<" + _DROP_TAGS + r"\b[^<>]*/>", re.S | re.I)
RE_DROPTAG = re.compile(r"<(" + _DROP_TAGS + r")\b[^<>]*>.*?</\1\s*>", re.S | re.I)
RE_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
RE_EXTLINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
RE_URL = re.compile(r"(?:https?|ftp)://\S+")
RE_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]")
RE_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$")
# inline templates that carry prose: keep some text instead of dropping them
RE_CONVERT = re.compile(r"\{\{\s*(?:convert|cvt)\s*\|\s*([^|{}]+?)\s*\|\s*([^|{}]+?)\s*(?:\|[^{}]*)?\}\}", re.I)
RE_LANG = re.compile(r"\{\{\s*lang\s*\|\s*[^|{}]*\|\s*([^|{}]*?)\s*(?:\|[^{}]*)?\}\}", re.I)
RE_KEEP1 = re.compile(r"\{\{\s*(?:nowrap|small|sm|smaller|nobr|em|strong|transl\|[^|{}]*|IPA[^|{}]*)\s*\|"
                      r"\s*([^|{}]*?)\s*\}\}", re.I)


def remove_nested(text, open_s, close_s, pred=None):
    """Remove balanced open_s ... close_s spans (nested). pred(inner_start_index) -> remove this span?"""
    out, i, n = [], 0, len(text)
    while i < n:
        j = text.find(open_s, i)
        if j < 0:
            out.append(text[i:])
            break
        if pred is not None and not pred(text, j + len(open_s)):
            out.append(text[i:j + len(open_s)])
            i = j + len(open_s)
            continue
        out.append(text[i:j])
        depth, k = 1, j + len(open_s)
        while k < n and depth:
            if text.startswith(open_s, k):
                depth += 1
                k += len(open_s)
            elif text.startswith(close_s, k):
                depth -= 1
                k += len(close_s)
            else:
                k += 1
        i = k
    return "".join(out)


_NS_LINK = re.compile(r"\s*:?\s*(?:file|image|category|media|wikt|wiktionary|[a-z]{2,3}(?:-[a-z]+)?)\s*:", re.I)


def _is_ns_link(text, k):  # [[File:..]], [[Image:..]], [[Category:..]], interlanguage [[de:..]]
    return bool(_NS_LINK.match(text, k))


def _link_text(m):
    target, label = m.group(1), m.group(2)
    return (label if label is not None else target.split("#")[0] if not target.startswith("#") else target[1:]).strip()


def strip_wiki(raw):
    t = RE_COMMENT.sub("", raw)
    t = RE_SELFCLOSE.sub("", t)
    t = RE_DROPTAG.sub("", t)
    t = RE_CONVERT.sub(lambda m: f"{m.group(1)} {m.group(2)}", t)
    t = RE_LANG.sub(r"\1", t)
    t = RE_KEEP1.sub(r"\1", t)
    t = remove_nested(t, "{{", "}}")
    t = remove_nested(t, "{|", "|}")
    t = remove_nested(t, "[[", "]]", _is_ns_link)
    t = RE_TAG.sub("", t)
    for _ in range(3):  # links inside link labels
        t = RE_LINK.sub(_link_text, t)
    t = RE_EXTLINK.sub(lambda m: m.group(1) or "", t)
    t = RE_URL.sub("", t)
    t = t.replace("'''", "").replace("''", "")
    t = html.unescape(t).replace("\xa0", " ").replace("\u200b", "")
    paras = []
    for line in t.split("\n"):
        h = RE_HEADING.match(line)
        if h:
            if h.group(2).strip().lower().rstrip(":") in STOP_SECTIONS:
                break
            paras.append("")
            continue
        s = line.strip()
        if not s or s[0] in "*#:;|!{}[]=<" or s.startswith("__"):
            paras.append("")
            continue
        for _ in range(2):                              # "(, X, )" / "( )" left by removed templates/refs
            s = re.sub(r"\(\s*[,;:]+\s*", "(", s)
            s = re.sub(r"\s*[,;:]+\s*\)", ")", s)
            s = re.sub(r"\s*\(\s*\)", "", s)
        s = re.sub(r"\s+([,.;:!?])", r"\1", s)
        s = re.sub(r"\s{2,}", " ", s).strip()
        letters = sum(ch.isalpha() for ch in s)
        if letters < 0.5 * len(s) or letters < 20:  # mostly punctuation / numbers / leftovers
            paras.append("")
            continue
        if s[-1] not in ".!?\"')\u201d\u2019:":          # captions, list remnants, headings w/o '='
            paras.append("")
            continue
        paras.append(s)
    return "\n".join(p for p in paras if p)


# sentence pieces ending in an abbreviation or initial are glued to the next piece before the 10..500 char rule
RE_ABBREV = re.compile(r"(?:\b[A-Z]|\b(?:U\.S|U\.K|Mr|Mrs|Ms|Dr|St|Jr|Sr|Lt|Gen|Col|Capt|Cmdr|Gov|Sen|Rep|Rev|Prof|"
                       r"Hon|No|vs|v|Mt|Ft|spp|sp|ca|c|approx|e\.g|i\.e|cf|Inc|Co|Corp|Ltd|Bros|Jan|Feb|Mar|Apr|Jun|"
                       r"Jul|Aug|Sep|Sept|Oct|Nov|Dec|fl|b|d|r|Vol|vol|pp|p|ed|Ph\.D|D\.C|A\.D|B\.C))\.$")


def split_sentences(text):
    """build_corpus.split_sentences (same regexes and 10..500 rule) + abbreviation/initial merge."""
    out = []
    for para in re.split(r"\n+", text):
        para = re.sub(r"\s+", " ", para).strip()
        if not para:
            continue
        pieces = []
        for p in bc._SPLIT2.split(para):
            pieces.extend(re.split(r'(?<=[.!?])\s+(?=["\'\u201c\u2018(]?[A-Z])', p))
        merged = []
        for s in pieces:
            s = s.strip()
            if merged and RE_ABBREV.search(merged[-1]):
                merged[-1] = merged[-1] + " " + s
            else:
                merged.append(s)
        for s in merged:
            if len(s) < bc.MIN_CHARS:
                continue
            out.append(s[:bc.MAX_CHARS])
    return out


def load_wiki_full(verbose=False):
    docs, skipped = [], {"redirect": 0, "non_article": 0, "disambiguation": 0, "short": 0}
    with bz2.open(DUMP) as f:
        for _, el in ET.iterparse(f):
            if not el.tag.endswith("}page"):
                continue
            title = el.find("{*}title").text
            ns = el.find("{*}ns").text
            raw = el.find(".//{*}text").text or ""
            red = el.find("{*}redirect") is not None or raw.lstrip().upper().startswith("#REDIRECT")
            el.clear()
            if red:
                skipped["redirect"] += 1
                continue
            if ns != "0":
                skipped["non_article"] += 1
                continue
            if "(disambiguation)" in title or re.search(r"\{\{\s*(?:disambig|disambiguation|dab)\b", raw, re.I):
                skipped["disambiguation"] += 1
                continue
            ch = split_sentences(strip_wiki(raw))
            ch = [c for k, c in enumerate(ch) if k == 0 or c != ch[k - 1]]
            if len(ch) < bc.MIN_CHUNKS:
                skipped["short"] += 1
                if verbose:
                    print(f"  short: {title} ({len(ch)} chunks)")
                continue
            docs.append((f"wikifull:{title}", ch))
    return docs, skipped


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "all"
    if mode == "baselines":
        for name in ("wiki_full", "wiki_all"):
            z = np.load(f"{OUT}/{name}.npz", allow_pickle=True)
            n, a, b = bc.baselines(z["vectors"], z["article_indices"], z["chunk_indices"])
            print(f"{name}: articles={len(np.unique(z['article_indices']))} chunks={len(z['vectors'])} "
                  f"windows={n} copy_last={a:.4f} context_mean={b:.4f}")
        return
    docs, skipped = load_wiki_full(verbose=(mode == "texts"))
    n = sum(len(c) for _, c in docs)
    lens = np.array([len(s) for _, c in docs for s in c])
    print(f"wiki_full: articles={len(docs)} chunks={n} windows={sum(len(c) - bc.C for _, c in docs)} skipped={skipped}")
    print(f"  chunk chars: median={np.median(lens):.0f} mean={lens.mean():.0f} max={lens.max()} "
          f"n_at_500={(lens >= 500).sum()}")
    print("  per article:", ", ".join(f"{k.split(':', 1)[1]}={len(c)}" for k, c in docs))
    if mode == "texts":
        rng = np.random.default_rng(0)
        for a in rng.choice(len(docs), 6, replace=False):
            k, c = docs[a]
            i0 = int(rng.integers(0, max(1, len(c) - 6)))
            print(f"--- {k} [{i0}:{i0 + 6}]")
            for s in c[i0:i0 + 6]:
                print("  |", s[:200])
        return
    emb = bc.Embedder()
    emb.torch.set_num_threads(THREADS)
    bc.sanity(emb)
    texts, art, chk = bc.flatten(docs, 0)
    vec, el = bc.embed_all(emb, texts, "wiki_full")
    np.savez_compressed(f"{OUT}/wiki_full.npz", vectors=vec, article_indices=art, chunk_indices=chk,
                        texts=np.array(texts, dtype=object))
    stats = {}
    nw, a, b = bc.baselines(vec, art, chk)
    stats["wiki_full"] = dict(articles=len(docs), chunks=len(texts), windows=nw, copy_last=a, context_mean=b,
                              seconds=el, sent_per_s=len(texts) / el, threads=THREADS, skipped=skipped,
                              keys=[k for k, _ in docs])
    print(f"wiki_full: articles={len(docs)} chunks={len(texts)} windows={nw} copy_last={a:.4f} "
          f"context_mean={b:.4f} ({len(texts) / el:.1f} sent/s, {THREADS} threads)", flush=True)
    # wiki_all = wiki_full articles, then the wiki.npz lead-section articles renumbered to follow on
    z = np.load(f"{OUT}/wiki.npz", allow_pickle=True)
    off = len(docs)
    old = z["article_indices"]
    _, old_dense = np.unique(old, return_inverse=True)   # wiki.npz ids are already 0..574; keep order anyway
    v2 = np.concatenate([vec, z["vectors"].astype(np.float32)])
    a2 = np.concatenate([art, off + old_dense.astype(np.int64)])
    c2 = np.concatenate([chk, z["chunk_indices"].astype(np.int64)])
    t2 = np.array(list(texts) + list(z["texts"]), dtype=object)
    np.savez_compressed(f"{OUT}/wiki_all.npz", vectors=v2, article_indices=a2, chunk_indices=c2, texts=t2)
    nw, a, b = bc.baselines(v2, a2, c2)
    stats["wiki_all"] = dict(articles=int(len(np.unique(a2))), chunks=len(v2), windows=nw, copy_last=a,
                             context_mean=b, lead_article_offset=off)
    print(f"wiki_all: articles={len(np.unique(a2))} chunks={len(v2)} windows={nw} copy_last={a:.4f} "
          f"context_mean={b:.4f} (lead-section articles start at id {off})", flush=True)
    json.dump(stats, open(f"{OUT}/wiki_full_stats.json", "w"), indent=1)


if __name__ == "__main__":
    main()
