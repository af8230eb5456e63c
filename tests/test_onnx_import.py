"""ONNX → torch (export/onnx_import.py): outputs equal ONNX Runtime's, unsupported graphs are named, and an .onnx
file reaches a TFLite device."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from tailorkit.core.errors import ModelFormatError
from tailorkit.export.onnx_import import onnx_to_torch
from tailorkit.profiler.models import BUILTIN_MODELS, prepare_model

from .conftest import run_cli


class ShuffleBlock(nn.Module):
    """Channel shuffle, chunk, asymmetric pad, ceil-mode pooling, SE-style gating, flatten and softmax: the ops
    that exporters turn into Shape/Gather/Reshape/Split/Slice/Pad chains."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        b, c, h, w = x.shape
        x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
        a, rest = x.chunk(2, dim=1)
        x = torch.cat([torch.relu(a), nn.functional.hardswish(rest)], 1)
        x = nn.functional.max_pool2d(nn.functional.pad(x, (1, 0, 1, 0)), 3, 2, ceil_mode=True)
        x = nn.functional.avg_pool2d(x, 2) * torch.sigmoid(x.mean((2, 3), keepdim=True))
        return torch.softmax(self.fc(torch.flatten(x, 1)), -1)


def _export(module: nn.Module, shape: tuple[int, ...], path: Path, opset: int) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module.eval(), (torch.randn(*shape),), str(path), dynamo=False, opset_version=opset,
                          input_names=["data"])
    return path


def _agree(path: Path, shapes: dict[str, tuple[int, ...]], atol: float = 1e-5) -> None:
    rng = np.random.default_rng(1)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    module = onnx_to_torch(path, shapes)
    with torch.no_grad():
        ours = module(*[torch.from_numpy(v) for v in feeds.values()])
    ours = ours if isinstance(ours, tuple) else (ours,)
    assert len(ours) == len(reference)
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_exported_block_runs_like_onnx_runtime_at_every_opset(tmp_path: Path, opset: int) -> None:
    path = _export(ShuffleBlock(), (1, 3, 16, 16), tmp_path / "block.onnx", opset)
    _agree(path, {"data": (1, 3, 16, 16)})


def test_a_built_in_mobilenet_runs_like_onnx_runtime(tmp_path: Path) -> None:
    module, shape = BUILTIN_MODELS["ofa-mbv3-min"](128)
    _agree(_export(module, shape, tmp_path / "mbv3.onnx", 17), {"data": shape})


def _graph(tmp_path: Path, nodes: list, inputs: dict[str, list[int]], outputs: list[str],
           initializers: dict[str, np.ndarray] | None = None, opset: int = 18) -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


def test_hand_written_graph_of_less_common_attributes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("HardSigmoid", ["c"], ["hs"], alpha=0.3, beta=0.4),
        helper.make_node("Pad", ["hs", "pads"], ["p"], mode="reflect"),
        helper.make_node("Slice", ["p", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node("ReduceMean", ["s", "raxes"], ["m"], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "uaxes"], ["u"]),
        helper.make_node("Squeeze", ["u", "uaxes"], ["q"]),
        helper.make_node("Gemm", ["q", "b", "bias"], ["g"], alpha=0.5, beta=2.0, transB=1),
        helper.make_node("LayerNormalization", ["g", "gamma", "beta"], ["ln"], epsilon=1e-3),
        helper.make_node("Clip", ["ln", "lo", "hi"], ["y"]),
    ]
    init = {"w": w, "pads": np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64),
            "starts": np.array([-1, 0], np.int64), "ends": np.array([-100, 5], np.int64),
            "axes": np.array([3, 2], np.int64), "steps": np.array([-1, 1], np.int64),
            "raxes": np.array([2, 3], np.int64), "uaxes": np.array([-1], np.int64),
            "b": rng.standard_normal((6, 4)).astype(np.float32), "bias": rng.standard_normal(6).astype(np.float32),
            "gamma": rng.standard_normal(6).astype(np.float32), "beta": rng.standard_normal(6).astype(np.float32),
            "lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}
    _agree(_graph(tmp_path, nodes, {"x": [1, 3, 9, 9]}, ["y"], init), {"x": (1, 3, 9, 9)})


def test_unsupported_and_foreign_operators_are_named_before_converting(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"])]
    path = _graph(tmp_path, nodes, {"x": [1, 4]}, ["y"])
    with pytest.raises(ModelFormatError, match="no converter for Hardmax"):
        onnx_to_torch(path, {"x": (1, 4)})
    custom = helper.make_model(helper.make_graph(
        [helper.make_node("Fancy", ["x"], ["y"], domain="com.example")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(custom, str(tmp_path / "custom.onnx"))
    with pytest.raises(ModelFormatError, match="no converter for Fancy"):
        onnx_to_torch(tmp_path / "custom.onnx", {"x": (1, 4)})
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="not a readable ONNX model"):
        onnx_to_torch(tmp_path / "junk.onnx", {"x": (1, 4)})


def test_a_shape_that_depends_on_the_data_is_a_clear_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("Cast", ["shape_in"], ["shape"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    path = _graph(tmp_path, nodes, {"x": [2, 6], "shape_in": [2]}, ["y"])
    with pytest.raises(ModelFormatError, match="Reshape node .* depends on the input data"):
        onnx_to_torch(path, {"x": (2, 6), "shape_in": (2,)})


def test_an_onnx_file_becomes_tflite_for_a_tflite_device(tmp_path: Path) -> None:
    path = _export(ShuffleBlock(), (1, 3, 16, 16), tmp_path / "block.onnx", 13)
    prepared = prepare_model(path, tmp_path / "work", fmt="tflite")
    assert prepared.path.suffix == ".tflite" and prepared.label == "block.onnx (as tflite)"
    from tailorkit.export.tflite import TfliteRunner

    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
    np.testing.assert_allclose(TfliteRunner(prepared.path)(x), reference, atol=1e-5)
    assert prepare_model(path, tmp_path / "work2").path == path  # an ONNX device takes the file as it is


def test_cli_profiles_an_onnx_file_on_the_litert_device(tmp_path: Path) -> None:
    _export(ShuffleBlock(), (1, 3, 16, 16), tmp_path / "block.onnx", 13)
    result = run_cli("profile", "--device", "litert", "block.onnx", "--json", "--runs", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"model": "block.onnx (as tflite)"' in result.stdout
    bad = _graph(tmp_path, [helper.make_node("Hardmax", ["x"], ["y"])], {"x": [1, 4]}, ["y"])
    failed = run_cli("profile", "--device", "litert", str(bad), cwd=tmp_path)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "no converter for Hardmax" in failed.stderr
