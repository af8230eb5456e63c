from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tailorkit.core import ConfigError
from tailorkit.spaces import FBNetArch, FBNetSpace, HATArch, HATSpace, NB201Arch, NB201Space, spaces
from tailorkit.spaces import hat as hat_mod
from tailorkit.spaces.fbnet import BLOCKS, N_LAYERS
from tailorkit.spaces.nb201 import N_EDGES, OPS, live_op_counts

from .conftest import SHARED, needs_shared

HELP = SHARED / "data" / "help"
NB201_CSV = HELP / "nasbench201_latency_ms.csv"
FBNET_CSV = HELP / "fbnet_latency_ms.csv"
HAT_DIR = SHARED / "data" / "hat"

nb201_ops = st.tuples(*[st.integers(0, len(OPS) - 1)] * N_EDGES)
fbnet_ops = st.tuples(*[st.integers(0, len(BLOCKS) - 1)] * N_LAYERS)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ NB201


def test_nb201_constants() -> None:
    space = NB201Space()
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert (space.name, space.size, space.encoding_length) == ("nb201", 15625, 30)
    assert not hasattr(space, "index") and not hasattr(space, "from_index")


def test_nb201_string_layout_is_edge_order() -> None:
    arch = NB201Arch((0, 1, 2, 3, 4, 0))
    assert arch.to_str() == "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert arch.op_names == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")


@given(nb201_ops)
def test_nb201_round_trips(ops: tuple[int, ...]) -> None:
    space = NB201Space()
    arch = NB201Arch(ops)
    assert NB201Arch.from_str(arch.to_str()) == arch
    vec = space.encode(arch)
    assert vec.dtype == np.float32 and vec.shape == (30,)
    grid = vec.reshape(6, 5)
    assert (grid.sum(axis=1) == 1).all() and set(np.unique(vec)) <= {0.0, 1.0}
    assert tuple(grid.argmax(axis=1)) == ops
    assert space.decode(vec) == arch
    np.testing.assert_array_equal(space.encode_strings([arch.to_str()])[0], vec)


@needs_shared(NB201_CSV)
def test_nb201_every_csv_string_round_trips_and_encodes_like_the_archs() -> None:
    space = NB201Space()
    strings = [r["arch_str"] for r in _rows(NB201_CSV)]
    archs = [NB201Arch.from_str(s) for s in strings]
    assert [a.to_str() for a in archs] == strings
    assert len(set(archs)) == space.size == len(strings)
    batch = space.encode_batch(archs)
    np.testing.assert_array_equal(batch, space.encode_strings(strings))
    np.testing.assert_array_equal(batch[:50], np.stack([space.encode(a) for a in archs[:50]]))


@needs_shared(NB201_CSV)
def test_nb201_official_index_is_not_a_base5_formula() -> None:
    """Why NB201Space has no ``index``: the csv's order is a permutation no digit reading reproduces."""
    rows = _rows(NB201_CSV)
    assert [int(r["nb201_index"]) for r in rows] == list(range(15625))
    first = NB201Arch.from_str(rows[0]["arch_str"]).ops
    # index 0 would be all-zero digits under any op relabelling, so every op in it would have to be the same
    assert len(set(first)) > 1


@pytest.mark.parametrize("bad", [
    "", "|none~0|", "|none~0|+|none~0|none~1|+|none~0|none~1|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2",  # no trailing bar
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong source node
    "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
    " |none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
])
def test_nb201_malformed_strings(bad: str) -> None:
    with pytest.raises(ConfigError, match="NAS-Bench-201 arch string"):
        NB201Arch.from_str(bad)
    with pytest.raises(ConfigError, match="NAS-Bench-201 arch string"):
        NB201Space().encode_strings([NB201Arch((0,) * 6).to_str(), bad])


@pytest.mark.parametrize("ops", [(0,) * 5, (0,) * 7, (5, 0, 0, 0, 0, 0), (-1, 0, 0, 0, 0, 0), ("a",) * 6])
def test_nb201_bad_arch(ops: tuple) -> None:
    with pytest.raises(ConfigError, match="6 op indices"):
        NB201Arch(ops)


def test_nb201_decode_rejects_non_one_hot() -> None:
    space = NB201Space()
    with pytest.raises(ConfigError, match="30 values"):
        space.decode(np.zeros(29))
    with pytest.raises(ConfigError, match="one-hot"):
        space.decode(np.zeros(30))
    vec = space.encode(NB201Arch((1,) * 6))
    vec[3] = 0.5
    with pytest.raises(ConfigError, match="one-hot"):
        space.decode(vec)


def test_nb201_sample_is_uniform_and_reproducible() -> None:
    space = NB201Space()
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    counts = space.encode_batch([space.sample(rng) for _ in range(2000)]).reshape(-1, 6, 5).sum(axis=0)
    assert counts.min() > 300 and counts.max() < 500  # 400 expected per (edge, op)


def test_nb201_live_op_counts_drop_edges_whose_result_never_reaches_the_output() -> None:
    space = NB201Space()
    archs = [
        # node 1 feeds only `none` edges: its input conv is dead, node 2's inputs are none anyway
        "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
        # node 2 is used only through node 3's `none` edge: both of its inputs are dead, and so is node 1's
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|",
        # node 2 reaches the output, and through 2←1 so does node 1: every edge is live
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    ]
    live = live_op_counts(space.encode_batch([NB201Arch.from_str(a) for a in archs]))
    np.testing.assert_array_equal(live, [[2, 1, 0, 0, 0], [2, 1, 0, 0, 0], [1, 1, 1, 2, 1]])
    # live counts never exceed the plain ones, and equal them when no node is dead
    rng = np.random.default_rng(0)
    X = space.encode_batch([space.sample(rng) for _ in range(500)])
    counts, live = X.reshape(len(X), N_EDGES, len(OPS)).sum(axis=1), live_op_counts(X)
    assert (live <= counts).all() and 0 < (live == counts).all(axis=1).mean() < 1
    with pytest.raises(ConfigError, match="length 30"):
        live_op_counts(np.zeros((2, 29)))


def test_encode_batch_of_nothing() -> None:
    assert NB201Space().encode_batch([]).shape == (0, 30)
    assert FBNetSpace().encode_batch([]).shape == (0, 198)
    assert HATSpace().encode_batch([]).shape == (0, 10)


# ------------------------------------------------------------------------------------------------ FBNet


@given(fbnet_ops)
def test_fbnet_round_trips(ops: tuple[int, ...]) -> None:
    space = FBNetSpace()
    arch = FBNetArch(ops)
    assert FBNetArch.from_str(arch.to_str()) == arch
    vec = space.encode(arch)
    assert vec.dtype == np.float32 and vec.shape == (198,) == (space.encoding_length,)
    grid = vec.reshape(22, 9)
    assert (grid.sum(axis=1) == 1).all() and tuple(grid.argmax(axis=1)) == ops
    assert space.decode(vec) == arch


@needs_shared(FBNET_CSV)
def test_fbnet_csv_strings_round_trip_and_match_the_layer_names() -> None:
    space = FBNetSpace()
    rows = _rows(FBNET_CSV)
    sample = rows[::7]
    for row in sample:
        arch = FBNetArch.from_str(row["op_idx_list"])
        assert arch.to_str() == row["op_idx_list"]
        assert arch.blocks == tuple(row[f"L{i:02d}"] for i in range(22))
    archs = [FBNetArch.from_str(r["op_idx_list"]) for r in sample]
    np.testing.assert_array_equal(space.encode_batch(archs), np.stack([space.encode(a) for a in archs]))
    np.testing.assert_array_equal(space.encode_batch(archs), space.encode_strings([r["op_idx_list"] for r in sample]))


@pytest.mark.parametrize("bad", ["", "7 8 1", " ".join(["9"] * 22), " ".join(["1"] * 23), " ".join(["-1"] * 22),
                                 " ".join(["a"] * 22), " ".join(["²"] * 22)])
def test_fbnet_malformed_strings(bad: str) -> None:
    with pytest.raises(ConfigError, match="FBNet arch string"):
        FBNetArch.from_str(bad)


def test_fbnet_bad_arch_and_decode() -> None:
    with pytest.raises(ConfigError, match="22 block indices"):
        FBNetArch((0,) * 21)
    with pytest.raises(ConfigError, match="one-hot"):
        FBNetSpace().decode(np.ones(198))


def test_fbnet_sample() -> None:
    space = FBNetSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(100)]
    assert len(set(archs)) == 100
    assert space.encode_batch(archs).sum() == 100 * 22


# ------------------------------------------------------------------------------------------------ HAT


def _hat(enc_embed: int, dec_embed: int, enc_ffn: list[int], enc_heads: list[int], dec_ffn: list[int],
         dec_heads: list[int], ende_heads: list[int], arbitrary: list[int]) -> HATArch:
    return HATArch(encoder_embed_dim=enc_embed, decoder_embed_dim=dec_embed, decoder_layer_num=len(dec_ffn),
                   encoder_ffn_embed_dim=tuple(enc_ffn), encoder_self_attention_heads=tuple(enc_heads),
                   decoder_ffn_embed_dim=tuple(dec_ffn), decoder_self_attention_heads=tuple(dec_heads),
                   decoder_ende_attention_heads=tuple(ende_heads), decoder_arbitrary_ende_attn=tuple(arbitrary))


XEON_ROWS = ([640, 6, 1194.6666666666667, 4.666666666666667, 640, 3, 1877.3333333333333, 4.0, 5.333333333333333, 2.0],
             [640, 6, 1109.3333333333333, 6.333333333333333, 512, 1, 512.0, 8.0, 8.0, 2.0])


def test_hat_features_by_hand() -> None:
    """Two archs worked out from the README's rules, checked against rows 1 and 2 of wmt14ende_cpu_xeon."""
    space = HATSpace()
    # encoder FFN 3072+3×1024+2×512 = 7168 → /6; heads 8+5×4 = 28 → /6; decoder 3 layers: FFN (3072+2048+512)/3,
    # self heads 4, enc-dec heads (8+4+4)/3, arbitrary (-1,1,2) → (1,2,3) → 2
    a = _hat(640, 640, [3072, 1024, 1024, 1024, 512, 512], [8, 4, 4, 4, 4, 4],
             [3072, 2048, 512], [4, 4, 4], [8, 4, 4], [-1, 1, 2])
    np.testing.assert_array_equal(space.encode(a), XEON_ROWS[0])
    # one decoder layer reading the last two encoder layers (1 → 2)
    b = _hat(640, 512, [3072, 1024, 1024, 512, 512, 512], [8, 8, 8, 8, 4, 2], [512], [8], [8], [1])
    np.testing.assert_array_equal(space.encode(b), XEON_ROWS[1])
    assert space.encode(a).dtype == np.float64
    assert HATSpace.FEATURES == hat_mod.FEATURES and len(hat_mod.FEATURES) == space.encoding_length == 10


@needs_shared(HAT_DIR / "wmt14ende_cpu_xeon_all.csv")
def test_hat_hand_rows_are_in_the_csv() -> None:
    rows = list(csv.reader((HAT_DIR / "wmt14ende_cpu_xeon_all.csv").open(newline="")))
    assert tuple(rows[0][:10]) == hat_mod.FEATURES
    assert [[float(v) for v in row[:10]] for row in rows[1:3]] == list(XEON_ROWS)


def _representatives(choices: tuple[int, ...], n: int) -> dict[int, tuple[int, ...]]:
    """One multiset of ``n`` choices for every reachable sum."""
    out: dict[int, tuple[int, ...]] = {}
    for combo in itertools.combinations_with_replacement(choices, n):
        out.setdefault(sum(combo), combo)
    return out


@pytest.mark.parametrize("stem", ["iwslt14deen_gpu_titanxp", "wmt14ende_cpu_raspberrypi", "wmt14ende_cpu_xeon",
                                  "wmt14ende_gpu_titanxp", "wmt14enfr_cpu_xeon", "wmt14enfr_gpu_titanxp",
                                  "wmt19ende_gpu_titanxp"])
@needs_shared(HAT_DIR)
def test_hat_every_csv_row_is_the_encoding_of_some_arch(stem: str) -> None:
    """For each row build an arch with those averages (sum = avg × active layers) and check ``encode``
    reproduces the row bit for bit: the space's choices and the encoding rules cover HAT's own data."""
    path = HAT_DIR / f"{stem}_all.csv"
    space = HATSpace()
    reps = {(choices, n): _representatives(choices, n) for choices in
            (hat_mod.FFN_DIMS, hat_mod.HEADS, (1, 2, 3)) for n in range(1, 7)}
    to_arbitrary = {1: -1, 2: 1, 3: 2}

    def pick(choices: tuple[int, ...], n: int, avg: float) -> tuple[int, ...]:
        total = round(avg * n)
        assert abs(total - avg * n) < 1e-6
        return reps[(choices, n)][total]

    rows = list(csv.reader(path.open(newline="")))[1:]
    feats = np.array([r[:10] for r in rows], dtype=np.float64)
    archs = []
    for f in feats:
        assert f[1] == 6
        n = int(f[5])
        archs.append(HATArch(
            encoder_embed_dim=int(f[0]), decoder_embed_dim=int(f[4]), decoder_layer_num=n,
            encoder_ffn_embed_dim=pick(hat_mod.FFN_DIMS, 6, f[2]),
            encoder_self_attention_heads=pick(hat_mod.HEADS, 6, f[3]),
            decoder_ffn_embed_dim=pick(hat_mod.FFN_DIMS, n, f[6]),
            decoder_self_attention_heads=pick(hat_mod.HEADS, n, f[7]),
            decoder_ende_attention_heads=pick(hat_mod.HEADS, n, f[8]),
            decoder_arbitrary_ende_attn=tuple(to_arbitrary[v] for v in pick((1, 2, 3), n, f[9]))))
    np.testing.assert_array_equal(space.encode_batch(archs), feats)


arch_strategy = st.builds(
    lambda ee, de, n, ef, eh, df, dh, dx, da: HATArch(ee, de, n, ef, eh, df, dh, dx, da),
    st.sampled_from(hat_mod.EMBED_DIMS), st.sampled_from(hat_mod.EMBED_DIMS), st.integers(1, 6),
    *[st.tuples(*[st.sampled_from(c)] * 6) for c in (hat_mod.FFN_DIMS, hat_mod.HEADS, hat_mod.FFN_DIMS,
                                                     hat_mod.HEADS, hat_mod.HEADS, hat_mod.ARBITRARY_ENDE_ATTN)])


@given(st.lists(arch_strategy, min_size=1, max_size=8))
def test_hat_batch_equals_stacked_and_matches_numpy_means(archs: list[HATArch]) -> None:
    space = HATSpace()
    batch = space.encode_batch(archs)
    np.testing.assert_array_equal(batch, np.stack([space.encode(a) for a in archs]))
    for a, row in zip(archs, batch, strict=True):
        n = a.decoder_layer_num
        assert len(a.decoder_ffn_embed_dim) == n  # inactive slots dropped
        mapped = [{-1: 1, 1: 2, 2: 3}[v] for v in a.decoder_arbitrary_ende_attn]
        expect = [a.encoder_embed_dim, 6, np.mean(a.encoder_ffn_embed_dim), np.mean(a.encoder_self_attention_heads),
                  a.decoder_embed_dim, n, np.mean(a.decoder_ffn_embed_dim), np.mean(a.decoder_self_attention_heads),
                  np.mean(a.decoder_ende_attention_heads), np.mean(mapped)]
        np.testing.assert_array_equal(row, expect)


def test_hat_inactive_decoder_slots_are_ignored() -> None:
    short = _hat(512, 512, [512] * 6, [2] * 6, [1024, 2048], [2, 4], [4, 8], [2, -1])
    full = HATArch(512, 512, 2, (512,) * 6, (2,) * 6, (1024, 2048, 3072, 3072, 512, 512), (2, 4, 8, 8, 8, 8),
                   (4, 8, 2, 2, 2, 2), (2, -1, 1, 1, 1, 1))
    assert short == full
    assert HATArch.from_dict(full.to_dict()) == full
    assert short.encoder_layer_num == 6


@pytest.mark.parametrize("change, match", [
    ({"encoder_embed_dim": 768}, "encoder_embed_dim"), ({"decoder_layer_num": 7}, "decoder_layer_num"),
    ({"encoder_ffn_embed_dim": (512,) * 5}, "encoder_ffn_embed_dim"),
    ({"encoder_self_attention_heads": (16,) * 6}, "encoder_self_attention_heads"),
    ({"decoder_ffn_embed_dim": (512,) * 3}, "decoder_ffn_embed_dim"),
    ({"decoder_arbitrary_ende_attn": (0, 1)}, "decoder_arbitrary_ende_attn"),
    ({"decoder_ende_attention_heads": (2.5, 4)}, "integers"),
])
def test_hat_invalid_archs(change: dict, match: str) -> None:
    base = _hat(512, 512, [512] * 6, [2] * 6, [1024, 2048], [2, 4], [4, 8], [2, -1]).to_dict()
    with pytest.raises(ConfigError, match=match):
        HATArch.from_dict({**base, **change})
    with pytest.raises(ConfigError, match="missing"):
        HATArch.from_dict({"encoder_embed_dim": 512})


def test_hat_sample_covers_the_space() -> None:
    space = HATSpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    x = space.encode_batch(archs)
    assert set(x[:, 5]) == {1, 2, 3, 4, 5, 6} and set(x[:, 0]) == {512, 640}
    assert x[:, 2].min() >= 512 and x[:, 2].max() <= 3072 and x[:, 9].min() >= 1 and x[:, 9].max() <= 3
    with pytest.raises(ConfigError, match="lossy"):
        space.decode(x[0])


# ------------------------------------------------------------------------------------------------ registry


def test_tabular_spaces_are_registered_but_have_no_ops_to_measure() -> None:
    from tailorkit.profiler.api import buildable_space

    for name in ("fbnet", "hat", "nb201"):
        assert spaces.create(name).name == name and not spaces.create(name).buildable
        with pytest.raises(ConfigError, match="no ops to measure here"):
            buildable_space(name, 1.0)  # `tailor table build --space nb201` says why, not a TypeError
    assert buildable_space("ofa-mbv3", 1.2).width == 1.2
