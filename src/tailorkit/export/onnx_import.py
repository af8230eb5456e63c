"""ONNX → torch: an ``nn.Module`` that runs an ONNX graph with torch operators, so that an ``.onnx`` file can go
through the TFLite exporter to a phone.

The usual bridges do not fit this stack (onnx2tf pins TensorFlow 2.19 and numpy 1.26; onnx2torch imports
torchvision). This one covers the operators of image classifiers as exporters write them (convolutions,
normalisation, activations, pooling, Gemm/MatMul, reshapes, slicing, channel shuffles, reductions; opsets 7–21)
and names every other operator it meets before converting anything.

Shapes are fixed when the module is built: the graph is run once on zeros at the given input shapes, and every
value that depends only on weights, constants and shapes (``Shape`` → ``Gather`` → ``Concat`` → ``Reshape``
chains, Slice bounds, Pad widths) is folded into a constant then. ``forward`` runs only the nodes that depend on
the inputs, which is also what ``torch.export`` (and so litert-torch) needs: no data-dependent Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from tailorkit.core.errors import ModelFormatError

Value = torch.Tensor | None
Static = np.ndarray | None
OpImpl = Callable[["_Node", list[Value], list[Static]], list[torch.Tensor]]


class _Node:
    """One ONNX node with its attributes decoded to Python values."""

    def __init__(self, proto: Any, opset: int) -> None:
        import onnx

        self.op_type: str = proto.op_type
        self.name: str = proto.name or f"{proto.op_type}_{id(proto)}"
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self.opset = opset
        self.attrs: dict[str, Any] = {}
        for attr in proto.attribute:
            value = onnx.helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                value = value.decode()
            elif attr.type == onnx.AttributeProto.TENSOR:
                value = onnx.numpy_helper.to_array(value)
            elif isinstance(value, list | tuple):
                value = [v.decode() if isinstance(v, bytes) else v for v in value]
            self.attrs[attr.name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


# ------------------------------------------------------------------------------------------------ operators


def _need(static: Static, node: _Node, what: str) -> np.ndarray:
    if static is None:
        raise ModelFormatError(f"{node.op_type} node {node.name!r}: its {what} depends on the input data; only "
                               "shapes fixed when the model is built are supported")
    return static


def _ints(static: Static, node: _Node, what: str) -> list[int]:
    return [int(v) for v in np.asarray(_need(static, node, what)).reshape(-1)]


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpImpl:
    return lambda node, x, s: [fn(x[0])]


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpImpl:
    return lambda node, x, s: [fn(x[0], x[1])]


def _variadic(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpImpl:
    def impl(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
        out = x[0]
        for other in x[1:]:
            out = fn(out, other)
        return [out]

    return impl


def _pads_for(node: _Node, in_spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int]) -> list[int]:
    """ONNX pads [x1_begin, x2_begin, …, x1_end, x2_end, …] for the node's auto_pad mode."""
    n = len(kernel)
    mode = node.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return list(node.get("pads", [0] * (2 * n)))
    if mode == "VALID":
        return [0] * (2 * n)
    begins, ends = [], []
    for size, k, st, d in zip(in_spatial, kernel, strides, dilations, strict=True):
        out = math.ceil(size / st)
        total = max(0, (out - 1) * st + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else large)
        ends.append(large if mode == "SAME_UPPER" else small)
    return begins + ends


def _torch_pad(pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, …, e1, e2, …] over the trailing dims → F.pad's (last dim first) [b_last, e_last, …]."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


def _conv(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp, weight, bias = x[0], x[1], x[2] if len(x) > 2 else None
    assert inp is not None and weight is not None
    n = weight.dim() - 2
    if n not in (1, 2, 3):
        raise ModelFormatError(f"Conv node {node.name!r}: {n}-d convolutions are not supported")
    kernel = list(weight.shape[2:])
    strides = list(node.get("strides", [1] * n))
    dilations = list(node.get("dilations", [1] * n))
    pads = _pads_for(node, list(inp.shape[2:]), kernel, strides, dilations)
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    if pads[:n] == pads[n:]:
        return [conv(inp, weight, bias, strides, pads[:n], dilations, int(node.get("group", 1)))]
    return [conv(F.pad(inp, _torch_pad(pads)), weight, bias, strides, 0, dilations, int(node.get("group", 1)))]


def _pool(kind: str) -> OpImpl:
    def impl(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
        inp = x[0]
        assert inp is not None
        kernel = list(node.get("kernel_shape"))
        n = len(kernel)
        if n != 2:
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: only 2-d pooling is supported")
        strides = list(node.get("strides", [1] * n))
        dilations = list(node.get("dilations", [1] * n))
        pads = _pads_for(node, list(inp.shape[2:]), kernel, strides, dilations)
        ceil = bool(node.get("ceil_mode", 0))
        symmetric = pads[:n] == pads[n:]
        if kind == "max":
            if not symmetric:
                inp = F.pad(inp, _torch_pad(pads), value=float("-inf"))
            return [F.max_pool2d(inp, kernel, strides, pads[:n] if symmetric else 0, dilations, ceil_mode=ceil)]
        include = bool(node.get("count_include_pad", 0))
        if not symmetric:
            if not include:
                raise ModelFormatError(f"AveragePool node {node.name!r}: asymmetric padding that is not counted "
                                       "is not supported")
            inp = F.pad(inp, _torch_pad(pads))
        return [F.avg_pool2d(inp, kernel, strides, pads[:n] if symmetric else 0, ceil_mode=ceil,
                             count_include_pad=include)]

    return impl


def _batch_norm(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp, scale, bias, mean, var = x[:5]
    assert inp is not None
    return [F.batch_norm(inp, mean, var, scale, bias, training=False, eps=float(node.get("epsilon", 1e-5)))]


def _gemm(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    a, b = x[0], x[1]
    assert a is not None and b is not None
    if node.get("transA", 0):
        a = a.t()
    if node.get("transB", 0):
        b = b.t()
    out = float(node.get("alpha", 1.0)) * (a @ b)
    if len(x) > 2 and x[2] is not None:
        out = out + float(node.get("beta", 1.0)) * x[2]
    return [out]


def _clip(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    if node.opset < 11:
        lo, hi = node.get("min"), node.get("max")
    else:
        lo = float(np.asarray(_need(s[1], node, "min")).reshape(-1)[0]) if len(x) > 1 and x[1] is not None else None
        hi = float(np.asarray(_need(s[2], node, "max")).reshape(-1)[0]) if len(x) > 2 and x[2] is not None else None
    return [torch.clamp(inp, lo, hi)]


def _flatten(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    axis = int(node.get("axis", 1))
    axis = axis + inp.dim() if axis < 0 else axis
    lead = math.prod(inp.shape[:axis])
    return [inp.reshape(lead, -1)]


def _reshape(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    shape = _ints(s[1], node, "shape") if node.opset >= 5 else list(node.get("shape"))
    if not node.get("allowzero", 0):
        shape = [inp.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [inp.reshape(shape)]


def _transpose(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    perm = node.get("perm") or list(reversed(range(inp.dim())))
    return [inp.permute(*perm)]


def _concat(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    return [torch.cat([t for t in x if t is not None and t.numel() > 0] or [x[0]], dim=int(node.get("axis")))]


def _split(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    axis = int(node.get("axis", 0))
    if len(x) > 1 and x[1] is not None:
        sizes = _ints(s[1], node, "split sizes")
    elif node.get("split") is not None:
        sizes = list(node.get("split"))
    else:
        parts = int(node.get("num_outputs", len(node.outputs)))
        size = math.ceil(inp.shape[axis] / parts)
        sizes = [min(size, inp.shape[axis] - i * size) for i in range(parts)]
    return list(torch.split(inp, sizes, dim=axis))


def _slice(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    if node.opset < 10:
        starts, ends = list(node.get("starts")), list(node.get("ends"))
        axes = list(node.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(s[1], node, "starts"), _ints(s[2], node, "ends")
        axes = _ints(s[3], node, "axes") if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(s[4], node, "steps") if len(x) > 4 and x[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * inp.dim()
    flip: list[int] = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= inp.dim()
        size = inp.shape[axis]
        if step > 0:
            lo = max(0, min(size, start + size if start < 0 else start))
            hi = max(0, min(size, end + size if end < 0 else end))
            index[axis] = slice(lo, hi, step)
        else:  # torch has no negative steps: slice the reversed range, then flip
            lo = max(-1, min(size - 1, start + size if start < 0 else start))
            hi = max(-1, min(size - 1, end + size if end < 0 else end))
            index[axis] = slice(hi + 1, lo + 1, -step) if -step == 1 else slice(None)
            if -step != 1:
                raise ModelFormatError(f"Slice node {node.name!r}: negative steps other than -1 are not supported")
            flip.append(axis)
    out = inp[tuple(index)]
    return [torch.flip(out, flip) if flip else out]


def _axes(node: _Node, x: list[Value], s: list[Static], input_index: int = 1) -> list[int] | None:
    if len(x) > input_index and x[input_index] is not None:
        return _ints(s[input_index], node, "axes")
    axes = node.get("axes")
    return list(axes) if axes is not None else None


def _squeeze(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    axes = _axes(node, x, s)
    if axes is None:
        return [inp.squeeze()]
    keep = [d for i, d in enumerate(inp.shape) if i not in {a % inp.dim() for a in axes}]
    return [inp.reshape(keep)]


def _unsqueeze(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    out = x[0]
    assert out is not None
    axes = _axes(node, x, s) or []
    rank = out.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        out = out.unsqueeze(axis)
    return [out]


def _reduce(fn: str) -> OpImpl:
    def impl(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
        inp = x[0]
        assert inp is not None
        axes = _axes(node, x, s)
        keep = bool(node.get("keepdims", 1))
        if axes is None or not axes:
            if node.get("noop_with_empty_axes", 0) and axes is not None:
                return [inp]
            axes = list(range(inp.dim()))
        dims = [a % inp.dim() for a in axes]
        if fn == "mean":
            return [inp.mean(dim=dims, keepdim=keep)]
        if fn == "sum":
            return [inp.sum(dim=dims, keepdim=keep)]
        out = inp
        for d in sorted(dims, reverse=True):
            out = (out.amax if fn == "max" else out.amin)(dim=d, keepdim=keep)
        return [out]

    return impl


def _softmax(log: bool) -> OpImpl:
    def impl(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
        inp = x[0]
        assert inp is not None
        fn = torch.log_softmax if log else torch.softmax
        if node.opset >= 13:
            return [fn(inp, dim=int(node.get("axis", -1)))]
        axis = int(node.get("axis", 1)) % inp.dim()  # before opset 13: over the flattened trailing dims
        flat = inp.reshape(math.prod(inp.shape[:axis]), -1)
        return [fn(flat, dim=1).reshape(inp.shape)]

    return impl


def _pad(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    if node.opset < 11:
        pads, value = list(node.get("pads")), float(node.get("value", 0.0))
    else:
        pads = _ints(s[1], node, "pads")
        value = float(np.asarray(_need(s[2], node, "constant value")).reshape(-1)[0]) \
            if len(x) > 2 and x[2] is not None else 0.0
        if len(x) > 3 and x[3] is not None:
            raise ModelFormatError(f"Pad node {node.name!r}: padding selected axes is not supported")
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(node.get("mode", "constant"))
    if mode is None:
        raise ModelFormatError(f"Pad node {node.name!r}: mode {node.get('mode')!r} is not supported")
    torch_pads = _torch_pad(pads)
    while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # replicate/reflect pad only trailing dims
        torch_pads = torch_pads[:-2]
    return [F.pad(inp, torch_pads, mode=mode, value=value if mode == "constant" else None)]


def _gather(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    data, idx = x[0], x[1]
    assert data is not None and idx is not None
    axis = int(node.get("axis", 0)) % data.dim()
    idx = torch.where(idx < 0, idx + data.shape[axis], idx).long()
    out = torch.index_select(data, axis, idx.reshape(-1))
    return [out.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1:])]


_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
           9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}


def _cast(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    to = int(node.get("to"))
    if to not in _DTYPES:
        raise ModelFormatError(f"Cast node {node.name!r}: ONNX type {to} is not supported")
    return [inp.to(_DTYPES[to])]


def _constant(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            return [torch.as_tensor(np.array(node.attrs[key]))]
    raise ModelFormatError(f"Constant node {node.name!r}: no supported value attribute")


def _constant_of_shape(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    value = torch.from_numpy(np.array(node.get("value", np.zeros(1, dtype=np.float32))))
    return [torch.full(_ints(s[0], node, "shape"), value.reshape(-1)[0].item(), dtype=value.dtype)]


def _expand(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    shape = _ints(s[1], node, "shape")
    return [inp * torch.ones(shape, dtype=inp.dtype)]  # ONNX Expand broadcasts both ways


def _layer_norm(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    axis = int(node.get("axis", -1)) % inp.dim()
    return [F.layer_norm(inp, list(inp.shape[axis:]), x[1], x[2] if len(x) > 2 else None,
                         float(node.get("epsilon", 1e-5)))]


def _hard_sigmoid(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    return [torch.clamp(float(node.get("alpha", 0.2)) * inp + float(node.get("beta", 0.5)), 0.0, 1.0)]


def _gelu(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
    inp = x[0]
    assert inp is not None
    return [F.gelu(inp, approximate="tanh" if node.get("approximate", "none") == "tanh" else "none")]


def _global_pool(fn: str) -> OpImpl:
    def impl(node: _Node, x: list[Value], s: list[Static]) -> list[torch.Tensor]:
        inp = x[0]
        assert inp is not None
        dims = list(range(2, inp.dim()))
        return [inp.mean(dim=dims, keepdim=True) if fn == "mean" else inp.amax(dim=dims, keepdim=True)]

    return impl


OPS: dict[str, OpImpl] = {
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul), "Div": _binary(torch.div),
    "Pow": _binary(torch.pow), "Max": _variadic(torch.maximum), "Min": _variadic(torch.minimum),
    "Sum": _variadic(torch.add), "MatMul": _binary(torch.matmul),
    "Relu": _unary(torch.relu), "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh),
    "Exp": _unary(torch.exp), "Log": _unary(torch.log), "Sqrt": _unary(torch.sqrt), "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs), "Erf": _unary(torch.erf), "Reciprocal": _unary(torch.reciprocal),
    "Floor": _unary(torch.floor), "Ceil": _unary(torch.ceil), "Softplus": _unary(F.softplus),
    "Identity": _unary(lambda t: t), "Dropout": lambda node, x, s: [x[0]],  # type: ignore[list-item]
    "HardSwish": _unary(F.hardswish), "HardSigmoid": _hard_sigmoid, "Gelu": _gelu,
    "LeakyRelu": lambda node, x, s: [F.leaky_relu(x[0], float(node.get("alpha", 0.01)))],  # type: ignore[arg-type]
    "Elu": lambda node, x, s: [F.elu(x[0], float(node.get("alpha", 1.0)))],  # type: ignore[arg-type]
    "PRelu": _binary(lambda t, slope: torch.where(t >= 0, t, t * slope)),
    "Clip": _clip, "Conv": _conv, "BatchNormalization": _batch_norm, "Gemm": _gemm,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_pool("mean"), "GlobalMaxPool": _global_pool("max"),
    "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Concat": _concat, "Split": _split,
    "Slice": _slice, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Pad": _pad, "Gather": _gather,
    "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"),
    "ReduceMin": _reduce("min"), "Softmax": _softmax(False), "LogSoftmax": _softmax(True),
    "Shape": lambda node, x, s: [torch.tensor(list(x[0].shape), dtype=torch.int64)],  # type: ignore[union-attr]
    "Cast": _cast, "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Expand": _expand,
    "LayerNormalization": _layer_norm,
}


# --------------------------------------------------------------------------------------------------- module


class OnnxGraphModule(nn.Module):
    """An ONNX graph as a torch module at fixed input shapes. Build it with :func:`onnx_to_torch`."""

    def __init__(self, model: Any, input_shapes: Mapping[str, Sequence[int]]) -> None:
        super().__init__()
        import onnx

        graph = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        nodes = [_Node(n, opset) for n in graph.node]
        foreign = sorted({n.op_type for n in graph.node if n.domain not in ("", "ai.onnx")})
        missing = sorted({n.op_type for n in nodes} - set(OPS))
        if foreign or missing:
            raise ModelFormatError("cannot convert this ONNX model to torch (for TFLite): no converter for "
                                   f"{', '.join(foreign + [m for m in missing if m not in foreign])}")
        initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in initializers]
        self.output_names = [o.name for o in graph.output]
        unknown = set(self.input_names) - set(input_shapes)
        if unknown:
            raise ModelFormatError(f"no input shape for {', '.join(sorted(unknown))}")
        # the probe run: every value, and whether it depends on the inputs (dynamic) or is fixed (static)
        static: dict[str, np.ndarray] = {k: np.array(v) for k, v in initializers.items()}
        values: dict[str, torch.Tensor] = {k: torch.from_numpy(np.array(v)) for k, v in initializers.items()}
        for name in self.input_names:
            values[name] = torch.zeros(tuple(int(d) for d in input_shapes[name]))
        self._dynamic_nodes: list[_Node] = []
        with torch.no_grad():
            for node in nodes:
                inputs = [values.get(name) if name else None for name in node.inputs]
                fixed = [static.get(name) if name else None for name in node.inputs]
                outs = self._run(node, inputs, fixed)
                is_static = node.op_type == "Shape" or all(
                    not name or name in static for name in node.inputs)
                for name, out in zip(node.outputs, outs, strict=False):
                    values[name] = out
                    if is_static:
                        static[name] = out.numpy()
                if not is_static:
                    self._dynamic_nodes.append(node)
        needed = {name for node in self._dynamic_nodes for name in node.inputs if name in static}
        needed |= {name for name in self.output_names if name in static}
        self._buffer_of: dict[str, str] = {}
        for i, name in enumerate(sorted(needed)):
            self._buffer_of[name] = f"c{i}"
            self.register_buffer(f"c{i}", torch.from_numpy(np.array(static[name])), persistent=False)
        self._static = {k: static[k] for k in needed}

    @staticmethod
    def _run(node: _Node, inputs: list[Value], fixed: list[Static]) -> list[torch.Tensor]:
        try:
            return OPS[node.op_type](node, inputs, fixed)
        except ModelFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - a shape or attribute the operator cannot take
            raise ModelFormatError(f"{node.op_type} node {node.name!r} failed when converting to torch: "
                                   f"{str(exc).splitlines()[0][:200]}") from None

    def forward(self, *args: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values: dict[str, torch.Tensor] = {name: getattr(self, b) for name, b in self._buffer_of.items()}
        values.update(zip(self.input_names, args, strict=True))
        for node in self._dynamic_nodes:
            outs = OPS[node.op_type](node, [values.get(n) if n else None for n in node.inputs],
                                     [self._static.get(n) if n else None for n in node.inputs])
            values.update(zip(node.outputs, outs, strict=False))
        results = tuple(values[name] for name in self.output_names)
        return results[0] if len(results) == 1 else results


def onnx_to_torch(path: str | Path, input_shapes: Mapping[str, Sequence[int]]) -> OnnxGraphModule:
    """The ONNX model at ``path`` as a torch module at ``input_shapes`` (name → shape); a clear error names the
    operators it has no converter for."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have many types
        raise ModelFormatError(f"{str(path)!r} is not a readable ONNX model: {exc}") from None
    return OnnxGraphModule(model, input_shapes).eval()
