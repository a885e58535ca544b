"""Train the semantic cache's question judge: all-MiniLM-L6-v2 read as a cross-encoder, with low-rank
adapters (LoRA, rank 8) on every projection and a linear head, written to
``stages/models/question_judge_broad.npz``.

    pip install torch   # only to train; the gateway runs the judge in numpy (stages/embedding.py)
    python bench/train_judge.py [--epochs 2] [--out stages/models/question_judge_broad.npz]

The gateway's judge is the mean, in log-odds, of two sets of adapters (``stages/embedding.py``
``JUDGE_FILES``): *broad* is what this script trains now; *strict* is what it trained at commit e6d0a95
(733 groups, 4 epochs, learning rates 3e-3 and 1e-2, no retyped positives, and other writers' copies of a
seed taken as negatives).

The pairs come from ``bench/data/semantic_train.jsonl`` (groups written for training: a seed, 2 paraphrases,
2 near-misses) and from groups g001–g100 of ``bench/data/semantic_cache_set.jsonl``; with ``--more``, also from
``bench/data/semantic_train_more.jsonl`` (1,537 groups written on 2026-12-05 by twelve more writers, a terse
near-miss in every group, the last 759 with near-misses that keep the topic and change the intent: why /
how to prevent, whether / how to claim; the shipped judges were not trained on them). Never trained on:
``bench/data/semantic_validation.jsonl`` (the default threshold is chosen on it) and groups g101–g200 of
the set (``bench/semantic_eval.py`` reports on them). No text of a training group is within a cosine of
0.8 of any text of those two. Per group: paraphrase–seed and paraphrase–paraphrase pairs, and the seed
against itself retyped (``restatement``), are "same question"; near-miss–seed and near-miss–paraphrase
pairs, a random other seed, and the most similar other seeds by embedding (hard negatives; never one
within a cosine of ``SAME_QUESTION_COSINE``: the same question written by another writer) are "another
question"; each pair both ways round. The base model stays frozen: only the adapters and the head (≈ 330,000 numbers)
are trained, so the file is small and the sentence embeddings are unchanged.

About 19 minutes an epoch on this 2-core machine (38 for the 2). The exported judge (float16 adapters,
run by the numpy forward) is checked against the torch model's own scores; 16 of them are written beside
it (``.check.json``) for ``tests/unit/stages/test_embedding.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from stages.embedding import (  # noqa: E402
    DIMENSIONS,
    HEADS,
    LAYERS,
    MAX_PAIR_TOKENS,
    MODELS,
    SentenceEncoder,
    _model_zip,
)

DATA = Path(__file__).parent / "data"
RANK = 8
PROJECTIONS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
               "o": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense"}


def groups_for_training(more: bool = False) -> list[dict[str, Any]]:
    def read(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    extra = read(DATA / "semantic_train_more.jsonl") if more else []
    return read(DATA / "semantic_train.jsonl") + extra + read(DATA / "semantic_cache_set.jsonl")[:100]


Pair = tuple[str, str, float]


SAME_QUESTION_COSINE = 0.85
"""Groups were written by several writers, so one question can be the seed of two groups ("How many bones
are in the adult human body?" twice): another group's seed this close is never taken as a negative."""


def pairs_of(groups: list[dict[str, Any]], encoder: SentenceEncoder, rng: random.Random) -> list[Pair]:
    seeds = [g["seed"] for g in groups]
    seed_vectors = np.stack([encoder.encode(s) for s in seeds])
    out: list[Pair] = []
    for i, g in enumerate(groups):
        s, (p1, p2), (n1, n2) = g["seed"], g["paraphrases"], g["near_misses"]
        for a, b in ((p1, s), (p2, s), (p1, p2), (s, restatement(s, rng))):
            out += [(a, b, 1.0), (b, a, 1.0)]
        for a, b in ((n1, s), (n2, s)):
            out += [(a, b, 0.0), (b, a, 0.0)]
        out += [(n1, rng.choice((p1, p2)), 0.0), (rng.choice((p1, p2)), n2, 0.0)]
        others = seed_vectors @ seed_vectors[i]
        for _ in range(2):
            j = rng.randrange(len(seeds))
            if others[j] < SAME_QUESTION_COSINE:
                out.append((s, seeds[j], 0.0))
        for text in (s, p1, p2):  # the closest other seed that is not the same question: what the index offers
            similarities = seed_vectors @ encoder.encode(text)
            similarities[others >= SAME_QUESTION_COSINE] = -9.0
            out.append((text, seeds[int(similarities.argmax())], 0.0))
    return out


def restatement(text: str, rng: random.Random) -> str:
    """The question itself, as typed again: the same, in lower case, without its punctuation, with a
    "please" or a "hi", or with one typo. Without these the judge learns from the near-misses that two
    almost identical questions are different ones."""
    words = text.split()
    kind = rng.randrange(6)
    if kind == 1:
        return text.lower()
    if kind == 2:
        return text.rstrip("?.!").replace(",", "")
    if kind == 3:
        return rng.choice(("please, ", "hi, ", "Hey! ")) + text
    if kind == 4:
        return text + rng.choice((" thanks", " Thank you!", " pls"))
    long = [k for k, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if kind == 5 and long:
        k = rng.choice(long)
        w, c = words[k], rng.randrange(1, len(words[k]) - 2)
        words[k] = w[:c] + w[c + 1] + w[c] + w[c + 2:]
        return " ".join(words)
    return text


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.nn.functional as F
    from safetensors.numpy import load
    from tokenizers import Tokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODELS / "question_judge_broad.npz")
    parser.add_argument("--more", action="store_true",
                        help="also train on data/semantic_train_more.jsonl (1,537 groups the shipped judges never saw)")
    opts = parser.parse_args(argv)
    rng = random.Random(opts.seed)
    torch.manual_seed(opts.seed)

    with zipfile.ZipFile(_model_zip()) as archive:
        base = {k.removeprefix("bert."): torch.tensor(v) for k, v in load(archive.read("model.safetensors")).items()}
        tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_PAIR_TOKENS)

    class LowRank(torch.nn.Module):  # type: ignore[misc]  # torch is not type-checked here
        def __init__(self, weight: Any, bias: Any) -> None:
            super().__init__()
            self.weight, self.bias = weight, bias  # frozen
            self.A = torch.nn.Parameter(torch.randn(RANK, weight.shape[1]) / math.sqrt(weight.shape[1]))
            self.B = torch.nn.Parameter(torch.zeros(weight.shape[0], RANK))

        def forward(self, x: Any) -> Any:
            return F.linear(x, self.weight, self.bias) + (x @ self.A.T) @ self.B.T

    class Judge(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.ModuleDict({
                short: LowRank(base[f"encoder.layer.{i}.{name}.weight"], base[f"encoder.layer.{i}.{name}.bias"])
                for short, name in PROJECTIONS.items()}) for i in range(LAYERS))
            self.head = torch.nn.Linear(DIMENSIONS, 1)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, ids: Any, types: Any, mask: Any) -> Any:
            n, width = ids.shape[1], DIMENSIONS // HEADS
            x = (base["embeddings.word_embeddings.weight"][ids] + base["embeddings.position_embeddings.weight"][:n]
                 + base["embeddings.token_type_embeddings.weight"][types])
            x = F.layer_norm(x, (DIMENSIONS,), base["embeddings.LayerNorm.weight"], base["embeddings.LayerNorm.bias"],
                             1e-12)
            padding = (1.0 - mask[:, None, None, :].float()) * -1e4
            for i, p in enumerate(self.layers):
                prefix = f"encoder.layer.{i}."

                def heads(t: Any) -> Any:
                    return t.view(ids.shape[0], n, HEADS, width).transpose(1, 2)

                scores = heads(p["q"](x)) @ heads(p["k"](x)).transpose(-1, -2) / math.sqrt(width) + padding
                attended = (scores.softmax(-1) @ heads(p["v"](x))).transpose(1, 2).reshape(ids.shape[0], n, DIMENSIONS)
                x = F.layer_norm(x + p["o"](attended), (DIMENSIONS,),
                                 base[prefix + "attention.output.LayerNorm.weight"],
                                 base[prefix + "attention.output.LayerNorm.bias"], 1e-12)
                h = F.gelu(p["up"](x), approximate="tanh")
                x = F.layer_norm(x + p["down"](h), (DIMENSIONS,), base[prefix + "output.LayerNorm.weight"],
                                 base[prefix + "output.LayerNorm.bias"], 1e-12)
            m = mask[..., None].float()
            return self.head((x * m).sum(1) / m.sum(1)).squeeze(-1)

    def batch(pairs: list[tuple[str, str]]) -> tuple[Any, Any, Any]:
        encoded = [tokenizer.encode(a, b) for a, b in pairs]
        n = max(len(e.ids) for e in encoded)
        ids = torch.zeros(len(encoded), n, dtype=torch.long)
        types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
        for i, e in enumerate(encoded):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            types[i, :len(e.ids)] = torch.tensor(e.type_ids)
            mask[i, :len(e.ids)] = 1
        return ids, types, mask

    encoder = SentenceEncoder()
    data = pairs_of(groups_for_training(opts.more), encoder, rng)
    judge = Judge()
    adapters = [p for n, p in judge.named_parameters() if not n.startswith("head")]
    optimiser = torch.optim.AdamW([{"params": adapters, "lr": 2e-3}, {"params": judge.head.parameters(), "lr": 5e-3}],
                                  weight_decay=0.01)
    size = 32
    steps = opts.epochs * math.ceil(len(data) / size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 30) * max(0.0, 1 - s / steps))
    for epoch in range(opts.epochs):
        rng.shuffle(data)  # then batches of similar length (padding a short pair to a long one's length
        ordered = sorted(data, key=lambda pair: len(pair[0]) + len(pair[1]))  # costs the long one's time)
        batches = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        rng.shuffle(batches)
        started, total, done = time.perf_counter(), 0.0, 0
        for chunk in batches:
            labels = torch.tensor([label for *_, label in chunk])
            loss = F.binary_cross_entropy_with_logits(judge(*batch([(a, b) for a, b, _ in chunk])), labels)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(judge.parameters(), 1.0)  # one long odd pair must not undo the rest
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chunk)
            done += 1
            if done % 200 == 0:
                print(f"  {done}/{len(batches)} batches: loss {total / (done * size):.4f}", flush=True)
        print(f"epoch {epoch + 1}/{opts.epochs}: loss {total / len(data):.4f} over {len(data)} pairs "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    arrays: dict[str, Any] = {"head.weight": judge.head.weight.detach().numpy().reshape(-1).astype(np.float16),
                              "head.bias": judge.head.bias.detach().numpy().astype(np.float32)}
    for i, layer in enumerate(judge.layers):
        for short in PROJECTIONS:
            arrays[f"{i}.{short}.A"] = layer[short].A.detach().numpy().astype(np.float16)
            arrays[f"{i}.{short}.B"] = layer[short].B.detach().numpy().astype(np.float16)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(opts.out, **arrays)

    # The numpy judge (float16 adapters) must give the torch model's scores.
    judge.eval()
    check = [(a, b) for a, b, _ in data[:64]]
    with torch.no_grad():
        expected = torch.sigmoid(judge(*batch(check))).numpy()
    encoder = SentenceEncoder(judge_files=(opts.out,))
    got = np.array([encoder.judge(a, [b])[0] for a, b in check])
    worst = float(np.abs(got - expected).max())
    print(f"wrote {opts.out} ({opts.out.stat().st_size / 1e6:.2f} MB); numpy vs torch: worst difference {worst:.4f}")
    reference = [{"question": a, "other": b, "torch": round(float(p), 5)}
                 for (a, b), p in zip(check[:16], expected[:16], strict=True)]
    opts.out.with_suffix(".check.json").write_text(json.dumps(reference, indent=1) + "\n")
    return 0 if worst < 0.02 else 1


if __name__ == "__main__":
    raise SystemExit(main())
