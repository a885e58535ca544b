"""The semantic cache's accuracy on the labelled paraphrase set, and what it costs per request.

    python bench/semantic_eval.py [--json]

``bench/data/semantic_cache_set.jsonl``: 200 groups written by hand, each a seed prompt, 2 paraphrases
(the seed's answer answers them) and 2 near-misses (mostly the seed's words, a different question: another
entity, number, direction, negation, format). Groups g001–g100 were looked at while the guard
(``stages/semantic_cache.py``) was designed; g101–g200 were not: figures are printed for both halves.

Every seed is indexed in one scope (as the provider stage does: the same code, ``VectorIndex.search``);
then each paraphrase must find its own seed (**hit rate**), and no near-miss may find any seed (**false
hits**), at each similarity threshold. The cost is the embedding and the search per request, on one
thread of this machine. Figures move with the machine: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from stages.embedding import MODEL_NAME, SentenceEncoder  # noqa: E402
from stages.semantic_cache import IndexRecord, VectorIndex, words_of  # noqa: E402

DATA = Path(__file__).parent / "data" / "semantic_cache_set.jsonl"
THRESHOLDS = (0.75, 0.8, 0.85, 0.9, 0.95)


def evaluate(groups: list[dict[str, Any]], encoder: SentenceEncoder) -> dict[str, Any]:
    index = VectorIndex()
    for g in groups:
        index.add(IndexRecord(g["id"], "s", encoder.encode(g["seed"]), tuple(words_of(g["seed"])), 2e9))
    asked = [(g["id"], p, True) for g in groups for p in g["paraphrases"]] + [
        (g["id"], n, False) for g in groups for n in g["near_misses"]]
    vectors = [(gid, text, para, encoder.encode(text), words_of(text)) for gid, text, para in asked]
    paraphrases = sum(1 for a in asked if a[2])
    out: dict[str, Any] = {"paraphrases": paraphrases, "near_misses": len(asked) - paraphrases}
    seeds = np.stack([encoder.encode(g["seed"]) for g in groups])
    ids = [g["id"] for g in groups]
    for t in THRESHOLDS:
        hits = wrong = false = 0
        bare_hits = bare_false = 0
        for gid, _, para, vector, words in vectors:
            match = index.search("s", vector, words, t, now=0.0)
            similarities = seeds @ vector
            best = int(similarities.argmax())
            if similarities[best] >= t:  # the embedding alone, without the guard
                bare_hits += para and ids[best] == gid
                bare_false += not para
            if para:
                hits += match is not None and match.key == gid
                wrong += match is not None and match.key != gid  # another seed's answer: wrong too
            else:
                false += match is not None
        out[str(t)] = {"hit_rate": hits / paraphrases, "false_hits": false,
                       "false_hit_rate": false / out["near_misses"], "wrong_seed": wrong,
                       "embedding_only_hit_rate": bare_hits / paraphrases,
                       "embedding_only_false_hit_rate": bare_false / out["near_misses"]}
    return out


def cost(groups: list[dict[str, Any]], encoder: SentenceEncoder) -> dict[str, float]:
    texts = [g["seed"] for g in groups] + [p for g in groups for p in g["paraphrases"]]
    embed_ms: list[float] = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode(text)
        embed_ms.append((time.perf_counter() - started) * 1000)
    index = VectorIndex()
    for i, text in enumerate(texts[:200]):
        index.add(IndexRecord(str(i), "s", encoder.encode(text), tuple(words_of(text)), 2e9))
    vector, words = encoder.encode(texts[0]), words_of(texts[0])
    started = time.perf_counter()
    for _ in range(200):
        index.search("s", vector, words, 0.9, now=0.0)
    return {"embed_p50_ms": statistics.median(embed_ms), "embed_mean_ms": statistics.fmean(embed_ms),
            "embed_p95_ms": sorted(embed_ms)[int(0.95 * (len(embed_ms) - 1))],
            "search_200_entries_ms": (time.perf_counter() - started) / 200 * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    groups = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    encoder = SentenceEncoder()
    load_s = time.perf_counter() - started
    figures: dict[str, Any] = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cores": os.cpu_count(),
               "model": MODEL_NAME, "model_load_s": load_s,
               "seen": evaluate(groups[:100], encoder), "unseen": evaluate(groups[100:], encoder),
               "cost": cost(groups, encoder)}
    if opts.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"Semantic cache on the labelled set, run of {figures['date_utc']} UTC ({figures['cores']} cores), "
          f"{MODEL_NAME} (loaded in {load_s:.2f} s)")
    for half in ("seen", "unseen"):
        f = figures[half]
        print(f"\n{half} half (g{'001–g100' if half == 'seen' else '101–g200'}): {f['paraphrases']} paraphrases, "
              f"{f['near_misses']} near-misses")
        print("| similarity ≥ | paraphrase hit rate | near-miss false hits | paraphrase given another seed's answer "
              "| embedding alone: hit rate / false hits |\n|---|---|---|---|---|")
        for t in THRESHOLDS:
            r = f[str(t)]
            print(f"| {t} | {r['hit_rate']:.1%} | {r['false_hits']} ({r['false_hit_rate']:.1%}) | {r['wrong_seed']} "
                  f"| {r['embedding_only_hit_rate']:.1%} / {r['embedding_only_false_hit_rate']:.1%} |")
    c = figures["cost"]
    print(f"\nper request: embedding p50 {c['embed_p50_ms']:.1f} ms (mean {c['embed_mean_ms']:.1f}, p95 "
          f"{c['embed_p95_ms']:.1f}), search in 200 entries {c['search_200_entries_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
