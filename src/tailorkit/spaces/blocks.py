"""Torch modules for the op types that latency tables name. A network is built from the very modules that a
table measures one at a time, so a table's sum and a whole-model run describe the same computation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from tailorkit.core.records import OpSpec
from tailorkit.spaces.base import make_divisible


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "none",
                 bn: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """OFA/MobileNetV3 SE: global pool → 1×1 reduce (÷4, rounded to 8) → ReLU → 1×1 expand → h-sigmoid → scale."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = make_divisible(channels // reduction)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.expand = nn.Conv2d(mid, channels, 1)
        self.act = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted bottleneck: [1×1 expand] → k×k depthwise (stride) → [SE] → 1×1 project, identity skip if asked.
    The expand conv is absent when the middle width equals the input width (OFA's first block)."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        cin, cout, mid = spec.input_shape[-1], spec.output_shape[-1], spec.expand
        self.expand = ConvBNAct(cin, mid, 1, act=spec.activation) if mid != cin else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, spec.kernel, spec.stride, groups=mid, act=spec.activation)
        self.se = SqueezeExcite(mid) if spec.se else nn.Identity()
        self.project = ConvBNAct(mid, cout, 1)
        self.skip = spec.idskip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.skip else y


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ShuffleBlock(nn.Module):
    """ShuffleNetV2's unit as Single-Path-One-Shot searches it (Guo et al. 2020): a main branch — 1×1 → k×k
    depthwise → 1×1 (``shufflenet``), or three depthwise-3×3 + 1×1 pairs (``shuffle_xception``) — with
    ``spec.expand`` middle channels. At stride 1 the input's channels are split (after a channel shuffle) and
    half of them bypass the block; at stride 2 a depthwise + 1×1 projection branch replaces the bypass. The
    branches are concatenated."""

    def __init__(self, spec: OpSpec) -> None:
        super().__init__()
        cin, cout, mid, k, s = spec.input_shape[-1], spec.output_shape[-1], spec.expand, spec.kernel, spec.stride
        self.stride = s
        branch_in = cin // 2 if s == 1 else cin
        out = cout - branch_in
        if spec.op_type == "shufflenet":
            main = _conv_bn(branch_in, mid, 1, relu=True) + _conv_bn(mid, mid, k, s, groups=mid) \
                + _conv_bn(mid, out, 1, relu=True)
        else:
            main = _conv_bn(branch_in, branch_in, 3, s, groups=branch_in) + _conv_bn(branch_in, mid, 1, relu=True) \
                + _conv_bn(mid, mid, 3, groups=mid) + _conv_bn(mid, mid, 1, relu=True) \
                + _conv_bn(mid, mid, 3, groups=mid) + _conv_bn(mid, out, 1, relu=True)
        self.main = nn.Sequential(*main)
        self.proj = nn.Sequential(*(_conv_bn(cin, cin, k, s, groups=cin) + _conv_bn(cin, cin, 1, relu=True))) \
            if s == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            n, c, h, w = x.shape  # channel shuffle: interleaved halves, one bypasses the block
            pairs = x.reshape(n, c // 2, 2, h, w)
            return torch.cat([pairs[:, :, 0], self.main(pairs[:, :, 1])], dim=1)
        return torch.cat([self.proj(x), self.main(x)], dim=1)


class Residual(nn.Module):
    """``x + body(x)``: the identity skip of a layer that keeps its shape."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Logits(nn.Sequential):
    def __init__(self, cin: int, classes: int) -> None:
        super().__init__(nn.Flatten(1), nn.Linear(cin, classes))


def _check_shapes(spec: OpSpec) -> None:
    if len(spec.input_shape) != 3:
        raise ValueError(f"{spec.key}: input must be H x W x C")
    if spec.op_type != "Logits" and len(spec.output_shape) != 3:
        raise ValueError(f"{spec.key}: output must be H x W x C")
    module_stride = spec.stride
    if spec.op_type in ("Conv", "expanded_conv", "Conv_1", "Conv_2", "conv", "sepconv", "shufflenet",
                        "shuffle_xception"):
        expected = tuple(-(-d // module_stride) for d in spec.input_shape[:2])
        if tuple(spec.output_shape[:2]) != expected:
            raise ValueError(f"{spec.key}: stride {module_stride} maps {spec.input_shape[:2]} to {expected}")


def build_op(spec: OpSpec) -> nn.Module:
    """A freshly initialised module computing exactly the op ``spec`` names (in eval mode)."""
    _check_shapes(spec)
    cin, cout = spec.input_shape[-1], spec.output_shape[-1]
    t = spec.op_type
    if t == "Conv":
        module: nn.Module = ConvBNAct(cin, cout, spec.kernel, spec.stride, act=spec.activation)
    elif t == "expanded_conv":
        module = MBConv(spec)
    elif t == "Conv_1":
        module = ConvBNAct(cin, cout, 1, act=spec.activation)
    elif t == "AvgPool2D":
        module = GlobalAvgPool()
    elif t == "Conv_2":  # OFA's feature-mix layer: biased 1×1 conv without BN
        module = ConvBNAct(cin, cout, 1, act=spec.activation, bn=False)
    elif t == "Logits":
        module = Logits(cin, spec.output_shape[0])
    elif t == "conv":
        module = ConvBNAct(cin, cout, spec.kernel, spec.stride, groups=spec.groups, act=spec.activation)
    elif t == "sepconv":  # depthwise k×k + 1×1 pointwise (MobileNetV1's unit, MnasNet's SepConv)
        module = nn.Sequential(ConvBNAct(cin, cin, spec.kernel, spec.stride, groups=cin, act=spec.activation),
                               ConvBNAct(cin, cout, 1))
    elif t in ("shufflenet", "shuffle_xception"):
        if spec.stride == 1 and (cin != cout or cin % 2):
            raise ValueError(f"{spec.key}: a stride-1 shuffle block keeps an even channel count")
        module = ShuffleBlock(spec)
    else:
        raise ValueError(f"no module for op type {t!r}")
    if spec.idskip and t in ("conv", "sepconv"):
        if spec.stride != 1 or cin != cout:
            raise ValueError(f"{spec.key}: an identity skip needs stride 1 and equal channels")
        module = Residual(module)
    return module.eval()


def build_network(ops: Sequence[OpSpec]) -> nn.Sequential:
    """A network of ``ops`` in order, fresh weights, eval mode: the modules the tables time, one after another."""
    return nn.Sequential(*(build_op(op) for op in ops)).eval()


def example_input(spec: OpSpec, batch: int = 1) -> torch.Tensor:
    """A random NCHW input for the op (tables use channels-last shapes; torch and ONNX run NCHW)."""
    h, w, c = spec.input_shape
    return torch.randn(batch, c, h, w)
