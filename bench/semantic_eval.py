"""The semantic cache's accuracy on the labelled paraphrase set, and what it costs per request.

    python bench/semantic_eval.py [--json] [--judge ADAPTERS.npz ...]

``bench/data/semantic_cache_set.jsonl``: 200 groups written by hand, each a seed prompt, 2 paraphrases
(the seed's answer answers them) and 2 near-misses (mostly the seed's words, a different question: another
entity, number, direction, negation, format). The judge (``stages/embedding.py``) was trained on groups
g001–g100 and on ``bench/data/semantic_train.jsonl`` (``bench/train_judge.py``); g101–g200 were never
trained on or looked at while building it: the figures that count are theirs. The default threshold was
chosen on ``bench/data/semantic_validation.jsonl`` (100 groups, never trained on). All three are printed.

Every seed is indexed in one scope (as the provider stage does: the same code, ``VectorIndex.search``,
``same_numbers``, ``restated``, then the judge and ``best_match``); then each paraphrase must find its
own seed (**hit rate**), and no near-miss may find any seed (**false hits**), at each threshold of the
judge. For comparison, the cosine
of the embeddings alone at its own thresholds. The cost is the embedding, the search and the judge per
request, on one thread of this machine. Figures move with the machine: compare within one run.
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

from stages.embedding import JUDGE_FILES, MODEL_NAME, SentenceEncoder  # noqa: E402
from stages.semantic_cache import IndexRecord, VectorIndex, best_match, restated, same_numbers  # noqa: E402

DATA = Path(__file__).parent / "data" / "semantic_cache_set.jsonl"
VALIDATION = Path(__file__).parent / "data" / "semantic_validation.jsonl"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
COSINES = (0.75, 0.8, 0.85, 0.9)


def evaluate(groups: list[dict[str, Any]], encoder: SentenceEncoder) -> dict[str, Any]:
    index = VectorIndex()
    for g in groups:
        index.add(IndexRecord(g["id"], "s", encoder.encode(g["seed"]), g["seed"], 2e9))
    asked = [(g["id"], p, True) for g in groups for p in g["paraphrases"]] + [
        (g["id"], n, False) for g in groups for n in g["near_misses"]]
    judged = []
    for gid, text, para in asked:
        vector = encoder.encode(text)
        candidates = same_numbers(text, index.search("s", vector, now=0.0))
        judged.append((gid, text, para, vector, candidates,
                       encoder.judge(text, [c.record.question for c in candidates])))
    paraphrases = sum(1 for a in asked if a[2])
    out: dict[str, Any] = {"paraphrases": paraphrases, "near_misses": len(asked) - paraphrases}
    for t in THRESHOLDS:
        hits = wrong = false = 0
        for gid, text, para, _, candidates, scores in judged:
            match = restated(text, candidates) or best_match(candidates, scores, t)
            if para:
                hits += match is not None and match.key == gid
                wrong += match is not None and match.key != gid  # another seed's answer: wrong too
            else:
                false += match is not None
        out[str(t)] = {"hit_rate": hits / paraphrases, "false_hits": false,
                       "false_hit_rate": false / out["near_misses"], "wrong_seed": wrong}
    seeds = np.stack([encoder.encode(g["seed"]) for g in groups])
    ids = [g["id"] for g in groups]
    for t in COSINES:  # the embedding alone: the closest seed at or above the cosine
        bare_hits = bare_false = 0
        for gid, _, para, vector, _, _ in judged:
            similarities = seeds @ vector
            best = int(similarities.argmax())
            if similarities[best] >= t:
                bare_hits += para and ids[best] == gid
                bare_false += not para
        out[f"cosine {t}"] = {"hit_rate": bare_hits / paraphrases, "false_hit_rate": bare_false / out["near_misses"]}
    return out


def cost(groups: list[dict[str, Any]], encoder: SentenceEncoder) -> dict[str, float]:
    texts = [g["seed"] for g in groups] + [p for g in groups for p in g["paraphrases"]]
    embed_ms: list[float] = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode(text)
        embed_ms.append((time.perf_counter() - started) * 1000)
    judge_ms: list[float] = []
    for g in groups:
        for p in g["paraphrases"]:
            started = time.perf_counter()
            encoder.judge(p, [g["seed"]])
            judge_ms.append((time.perf_counter() - started) * 1000)
    index = VectorIndex()
    for i, text in enumerate(texts[:200]):
        index.add(IndexRecord(str(i), "s", encoder.encode(text), text, 2e9))
    vector = encoder.encode(texts[0])
    started = time.perf_counter()
    for _ in range(200):
        index.search("s", vector, now=0.0)
    return {"embed_p50_ms": statistics.median(embed_ms), "embed_mean_ms": statistics.fmean(embed_ms),
            "embed_p95_ms": sorted(embed_ms)[int(0.95 * (len(embed_ms) - 1))],
            "judge_pair_p50_ms": statistics.median(judge_ms),
            "judge_pair_p95_ms": sorted(judge_ms)[int(0.95 * (len(judge_ms) - 1))],
            "search_200_entries_ms": (time.perf_counter() - started) / 200 * 1000}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


PARTS = {"validation": "bench/data/semantic_validation.jsonl: never trained on, the default threshold is chosen here",
         "seen": "g001–g100: trained on",
         "unseen": "g101–g200: never trained on nor looked at; the figures that count"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--judge", type=Path, nargs="+", default=JUDGE_FILES,
                        help="the judge's adapters (bench/train_judge.py --out); the mean of several in log-odds")
    opts = parser.parse_args(argv)
    groups = read(DATA)
    started = time.perf_counter()
    encoder = SentenceEncoder(judge_files=opts.judge)
    encoder.judge("load", ["load"])
    load_s = time.perf_counter() - started
    figures: dict[str, Any] = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cores": os.cpu_count(),
                               "model": MODEL_NAME, "model_load_s": load_s,
                               "validation": evaluate(read(VALIDATION), encoder),
                               "seen": evaluate(groups[:100], encoder), "unseen": evaluate(groups[100:], encoder),
                               "cost": cost(groups, encoder)}
    if opts.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"Semantic cache on the labelled sets, run of {figures['date_utc']} UTC ({figures['cores']} cores), "
          f"{MODEL_NAME} and its judge (loaded in {load_s:.2f} s)")
    for part, what in PARTS.items():
        f = figures[part]
        print(f"\n{part} ({what}): {f['paraphrases']} paraphrases, {f['near_misses']} near-misses")
        print("| judge ≥ (cache.similarity) | paraphrase hit rate | near-miss false hits "
              "| paraphrase given another seed's answer |\n|---|---|---|---|")
        for t in THRESHOLDS:
            r = f[str(t)]
            print(f"| {t} | {r['hit_rate']:.1%} | {r['false_hits']} ({r['false_hit_rate']:.1%}) | {r['wrong_seed']} |")
        print("embedding alone (cosine ≥: paraphrases / near-misses hit): " + ", ".join(
            f"{t}: {f[f'cosine {t}']['hit_rate']:.1%} / {f[f'cosine {t}']['false_hit_rate']:.1%}" for t in COSINES))
    c = figures["cost"]
    print(f"\nper request: embedding p50 {c['embed_p50_ms']:.1f} ms (mean {c['embed_mean_ms']:.1f}, p95 "
          f"{c['embed_p95_ms']:.1f}), search in 200 entries {c['search_200_entries_ms']:.3f} ms, the judge per "
          f"candidate p50 {c['judge_pair_p50_ms']:.1f} ms (p95 {c['judge_pair_p95_ms']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
