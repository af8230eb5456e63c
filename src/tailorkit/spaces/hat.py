"""The Hardware-Aware Transformers space (HAT, Wang et al. 2020): an encoder-decoder SubTransformer with a
per-layer choice of FFN width and attention heads, a decoder depth, and per decoder layer how many of the last
encoder layers its encoder-decoder attention reads.

Choices (the union over HAT's latency datasets): embed dims {512, 640} (encoder and decoder separately),
6 encoder layers, 1..6 decoder layers, FFN dim {512, 1024, 2048, 3072} and heads {2, 4, 8} per layer (encoder
self-attention, decoder self-attention and decoder encoder-decoder attention each), arbitrary encoder-decoder
attention {-1, 1, 2} per decoder layer (-1: the last encoder layer only; 1 and 2: the last two and three).

The encoding is HAT's own 10 predictor features (``FEATURES``, the column order of its latency csvs): embed dims
and layer counts as they are, per-layer values averaged over the active layers. Averages forget which layer had
which value, so many archs share one encoding and there is no ``decode``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from tailorkit.core.errors import ConfigError
from tailorkit.spaces.base import Space, check_fields

EMBED_DIMS = (512, 640)
ENCODER_LAYERS = 6
DECODER_LAYERS = (1, 2, 3, 4, 5, 6)
MAX_LAYERS = 6
FFN_DIMS = (512, 1024, 2048, 3072)
HEADS = (2, 4, 8)
ARBITRARY_ENDE_ATTN = (-1, 1, 2)

FEATURES = (
    "encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_avg", "encoder_self_attention_heads_avg",
    "decoder_embed_dim", "decoder_layer_num", "decoder_ffn_embed_dim_avg", "decoder_self_attention_heads_avg",
    "decoder_ende_attention_heads_avg", "decoder_arbitrary_ende_attn_avg",
)

_ENCODER_LISTS = (("encoder_ffn_embed_dim", FFN_DIMS), ("encoder_self_attention_heads", HEADS))
_DECODER_LISTS = (("decoder_ffn_embed_dim", FFN_DIMS), ("decoder_self_attention_heads", HEADS),
                  ("decoder_ende_attention_heads", HEADS), ("decoder_arbitrary_ende_attn", ARBITRARY_ENDE_ATTN))


def _ints(name: str, values: Any) -> tuple[int, ...]:
    try:
        raw = tuple(values)
        out = tuple(int(v) for v in raw)
    except (TypeError, ValueError):
        raw, out = (), (None,)
    if out != raw:
        raise ConfigError(f"HAT arch {name} must be a list of integers, got {values!r}")
    return out


@dataclass(frozen=True)
class HATArch:
    """One SubTransformer. Encoder lists hold 6 values (one per encoder layer). Decoder lists may be given with
    ``decoder_layer_num`` values or with 6, as HAT's configs write them; values past ``decoder_layer_num``
    belong to layers that do not run and are dropped, so two archs that run the same network compare equal."""

    encoder_embed_dim: int
    decoder_embed_dim: int
    decoder_layer_num: int
    encoder_ffn_embed_dim: tuple[int, ...]
    encoder_self_attention_heads: tuple[int, ...]
    decoder_ffn_embed_dim: tuple[int, ...]
    decoder_self_attention_heads: tuple[int, ...]
    decoder_ende_attention_heads: tuple[int, ...]
    decoder_arbitrary_ende_attn: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("encoder_embed_dim", "decoder_embed_dim"):
            value = getattr(self, name)
            if value not in EMBED_DIMS:
                raise ConfigError(f"HAT arch {name} must be one of {EMBED_DIMS}, got {value!r}")
            object.__setattr__(self, name, int(value))
        n = self.decoder_layer_num
        if n not in DECODER_LAYERS:
            raise ConfigError(f"HAT arch decoder_layer_num must be one of {DECODER_LAYERS}, got {n!r}")
        object.__setattr__(self, "decoder_layer_num", int(n))
        for name, choices in _ENCODER_LISTS:
            values = _ints(name, getattr(self, name))
            if len(values) != ENCODER_LAYERS or any(v not in choices for v in values):
                raise ConfigError(f"HAT arch {name} must be {ENCODER_LAYERS} values from {choices}, got {list(values)}")
            object.__setattr__(self, name, values)
        for name, choices in _DECODER_LISTS:
            values = _ints(name, getattr(self, name))
            if len(values) not in (n, MAX_LAYERS) or any(v not in choices for v in values):
                raise ConfigError(f"HAT arch {name} must be {n} (decoder_layer_num) or {MAX_LAYERS} values from "
                                  f"{choices}, got {list(values)}")
            object.__setattr__(self, name, values[:n])

    @property
    def encoder_layer_num(self) -> int:
        return ENCODER_LAYERS

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HATArch:
        names = [f.name for f in fields(cls)]
        check_fields(data, names, "a HAT arch")
        return cls(**{k: data[k] for k in names})


# genes of a HAT arch, flattened for mutation and crossover: 3 scalars, the encoder lists, the decoder lists
# padded to 6 layers
_GENE_CHOICES: list[Sequence[int]] = (
    [EMBED_DIMS, EMBED_DIMS, DECODER_LAYERS] + [FFN_DIMS] * ENCODER_LAYERS + [HEADS] * ENCODER_LAYERS
    + [choices for _, choices in _DECODER_LISTS for _ in range(MAX_LAYERS)])


class HATSpace(Space):
    """``encode`` gives HAT's 10 predictor features (float64, so they equal the csv values bit for bit)."""

    name = "hat"
    encoding_name = "HAT's 10 predictor features"
    FEATURES = FEATURES

    @property
    def encoding_length(self) -> int:
        return len(FEATURES)

    @property
    def size(self) -> int:
        encoder = (len(FFN_DIMS) * len(HEADS)) ** ENCODER_LAYERS
        per_decoder_layer = len(FFN_DIMS) * len(HEADS) ** 2 * len(ARBITRARY_ENDE_ATTN)
        return len(EMBED_DIMS) ** 2 * encoder * sum(per_decoder_layer ** n for n in DECODER_LAYERS)

    def gene_choices(self) -> list[tuple[int, ...]]:
        return [tuple(c) for c in _GENE_CHOICES]

    def genes(self, archs: Sequence[HATArch], rng: np.random.Generator | None = None) -> np.ndarray:
        """Decoder slots past the depth hold random values (with ``rng``): they only matter if a mutation
        deepens the decoder."""
        out = np.empty((len(archs), len(_GENE_CHOICES)), dtype=np.int64)
        for i, arch in enumerate(archs):
            genes = [arch.encoder_embed_dim, arch.decoder_embed_dim, arch.decoder_layer_num,
                     *arch.encoder_ffn_embed_dim, *arch.encoder_self_attention_heads]
            for name, choices in _DECODER_LISTS:
                values = list(getattr(arch, name))
                pad = MAX_LAYERS - len(values)
                fill = [int(v) for v in rng.choice(choices, pad)] if rng is not None else [choices[0]] * pad
                genes += values + fill
            out[i] = genes
        return out

    def from_genes(self, genes: np.ndarray) -> list[HATArch]:
        e = ENCODER_LAYERS
        archs = []
        for row in np.asarray(genes, dtype=np.int64).reshape(-1, len(_GENE_CHOICES)):
            g = [int(v) for v in row]
            dec = [tuple(g[3 + 2 * e + i * MAX_LAYERS: 3 + 2 * e + (i + 1) * MAX_LAYERS]) for i in range(4)]
            archs.append(HATArch(
                encoder_embed_dim=g[0], decoder_embed_dim=g[1], decoder_layer_num=g[2],
                encoder_ffn_embed_dim=tuple(g[3:3 + e]), encoder_self_attention_heads=tuple(g[3 + e:3 + 2 * e]),
                decoder_ffn_embed_dim=dec[0], decoder_self_attention_heads=dec[1],
                decoder_ende_attention_heads=dec[2], decoder_arbitrary_ende_attn=dec[3]))
        return archs

    def live_genes(self, genes: np.ndarray) -> np.ndarray:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(_GENE_CHOICES))
        live = np.ones(genes.shape, dtype=bool)
        slot = np.arange(MAX_LAYERS)[None, :] >= genes[:, 2:3]
        for i in range(len(_DECODER_LISTS)):
            start = 3 + 2 * ENCODER_LAYERS + i * MAX_LAYERS
            live[:, start:start + MAX_LAYERS] = ~slot
        return live

    def arch_to_dict(self, arch: HATArch) -> dict[str, Any]:
        return arch.to_dict()

    def arch_from_dict(self, data: Mapping[str, Any]) -> HATArch:
        return HATArch.from_dict(data)

    def sample(self, rng: np.random.Generator) -> HATArch:
        """Every choice uniform and independent, as HAT samples SubTransformers (values for all 6 decoder
        slots are drawn, then cut to the sampled depth)."""
        def pick(choices: Sequence[int], k: int) -> tuple[int, ...]:
            return tuple(int(v) for v in rng.choice(choices, k))

        return HATArch(
            encoder_embed_dim=pick(EMBED_DIMS, 1)[0], decoder_embed_dim=pick(EMBED_DIMS, 1)[0],
            decoder_layer_num=pick(DECODER_LAYERS, 1)[0],
            encoder_ffn_embed_dim=pick(FFN_DIMS, ENCODER_LAYERS),
            encoder_self_attention_heads=pick(HEADS, ENCODER_LAYERS),
            decoder_ffn_embed_dim=pick(FFN_DIMS, MAX_LAYERS),
            decoder_self_attention_heads=pick(HEADS, MAX_LAYERS),
            decoder_ende_attention_heads=pick(HEADS, MAX_LAYERS),
            decoder_arbitrary_ende_attn=pick(ARBITRARY_ENDE_ATTN, MAX_LAYERS))

    def encode_batch(self, archs: Sequence[HATArch]) -> np.ndarray:
        """``(N, 10)`` in ``FEATURES`` order. Decoder lists are padded to 6 and masked, so all averages are
        numpy reductions over the batch: an exact integer sum divided by the active layer count, which is what
        HAT's ``np.mean`` over the active slice computes."""
        n = len(archs)
        enc_embed = np.array([a.encoder_embed_dim for a in archs], dtype=np.float64)
        dec_embed = np.array([a.decoder_embed_dim for a in archs], dtype=np.float64)
        dec_n = np.array([a.decoder_layer_num for a in archs], dtype=np.float64)
        enc = np.array([(a.encoder_ffn_embed_dim, a.encoder_self_attention_heads) for a in archs],
                       dtype=np.float64).reshape(n, 2, ENCODER_LAYERS)
        dec = np.zeros((n, len(_DECODER_LISTS), MAX_LAYERS), dtype=np.float64)
        for i, a in enumerate(archs):
            dec[i, :, :a.decoder_layer_num] = (a.decoder_ffn_embed_dim, a.decoder_self_attention_heads,
                                               a.decoder_ende_attention_heads, a.decoder_arbitrary_ende_attn)
        active = np.arange(MAX_LAYERS)[None, :] < dec_n[:, None]
        # arbitrary attention -1/1/2 reads the last 1/2/3 encoder layers; HAT encodes it as that count
        dec[:, 3] = np.where(active, np.where(dec[:, 3] == -1, 1.0, dec[:, 3] + 1.0), 0.0)
        enc_avg = enc.sum(axis=2) / ENCODER_LAYERS
        dec_avg = dec.sum(axis=2) / dec_n[:, None]
        out = np.empty((n, len(FEATURES)), dtype=np.float64)
        out[:, 0], out[:, 1], out[:, 2:4] = enc_embed, ENCODER_LAYERS, enc_avg
        out[:, 4], out[:, 5], out[:, 6:10] = dec_embed, dec_n, dec_avg
        return out


def latency_features(X: np.ndarray) -> np.ndarray:
    """HAT's 10 features scaled by HAT's own divisors, plus decoder totals (decoder layers × each per-layer
    average, and layers × embed × FFN): the averages hide how many decoder layers run, and the decoder, run
    once per output token, dominates latency. 16 columns."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise ConfigError(f"HAT encodings have {len(FEATURES)} columns, got shape {X.shape}")
    norm = np.array([640.0, 6.0, 2048.0, 6.0, 640.0, 6.0, 2048.0, 6.0, 6.0, 2.0])
    layers = X[:, 5:6]
    cols = [4, 6, 7, 8, 9]
    return np.c_[X / norm, layers * X[:, cols] / norm[cols], layers * X[:, 4:5] * X[:, 6:7] / (640 * 2048)]
