"""The OFA-MobileNetV3 supernet: one set of weights from which every subnet of :class:`OFAMobileNetV3Space`
runs, with OFA's elastic kernel, expand ratio and depth (Cai et al., 2020).

* **Elastic kernel** — each depthwise conv holds a 7×7 kernel; 5×5 is its centre transformed by a learned
  25×25 matrix, 3×3 the centre of that transformed by a 9×9 matrix (both start as the identity), so the small
  kernels share weights without being forced to equal a crop.
* **Elastic expand** — a block with expand ratio e uses the first ``make_divisible(cin·e)`` channels of its
  widest (e = 6) expansion; :meth:`OFASupernet.sort_channels` reorders the channels by importance (L1 norm of
  the projection weights) so that the first channels are the ones that matter.
* **Elastic depth** — a stage with depth d runs its first d blocks.
* **Elastic resolution** — convolutions do not care about the input size; the training loop feeds each batch at
  a sampled size.

:meth:`OFASupernet.extract` returns ``space.build(arch)`` — the very module whose ops the latency tables
measure — carrying the supernet's weights for that arch, so it computes exactly what the supernet computes for
the arch. Batch-norm statistics are shared between subnets, which is why a subnet is evaluated after
:func:`recalibrate_bn` has re-estimated them for it (as OFA does).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.spaces.base import make_divisible
from tailorkit.spaces.blocks import ConvBNAct, MBConv, SqueezeExcite, activation
from tailorkit.spaces.ofa_mbv3 import _STAGES, EXPANDS, KERNELS, MAX_DEPTH, OFAArch, OFAMobileNetV3Space


class _DynamicBN(nn.BatchNorm2d):
    """Batch norm over the first ``c`` channels (the running statistics of those channels are updated in
    place, since the slices are views)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        assert self.running_mean is not None and self.running_var is not None
        if self.training and self.momentum is None:  # cumulative average: BN recalibration
            self.num_batches_tracked += 1
            momentum = 1.0 / float(self.num_batches_tracked)
        else:
            momentum = self.momentum if self.momentum is not None else 0.0
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, momentum, self.eps)


class _DynamicMBConv(nn.Module):
    """An MBConv at its widest (expand 6, kernel 7) that runs narrower and smaller versions of itself."""

    def __init__(self, cin: int, cout: int, stride: int, act: str, se: bool) -> None:
        super().__init__()
        self.cin, self.cout, self.stride, self.act_name, self.use_se = cin, cout, stride, act, se
        self.max_mid = make_divisible(round(cin * max(EXPANDS)))
        self.expand = nn.Conv2d(cin, self.max_mid, 1, bias=False)
        self.expand_bn = _DynamicBN(self.max_mid)
        self.depthwise = nn.Parameter(torch.empty(self.max_mid, 1, max(KERNELS), max(KERNELS)))
        nn.init.kaiming_normal_(self.depthwise, mode="fan_out")
        self.depthwise_bn = _DynamicBN(self.max_mid)
        # OFA's kernel transforms: 7→5 (25×25) and 5→3 (9×9), starting as the identity
        self.transform_5 = nn.Parameter(torch.eye(25))
        self.transform_3 = nn.Parameter(torch.eye(9))
        if se:
            se_max = make_divisible(self.max_mid // 4)
            self.se_reduce = nn.Conv2d(self.max_mid, se_max, 1)
            self.se_expand = nn.Conv2d(se_max, self.max_mid, 1)
        self.project = nn.Conv2d(self.max_mid, cout, 1, bias=False)
        self.project_bn = _DynamicBN(cout)
        self.act = activation(act)
        self.kernel, self.mid = max(KERNELS), self.max_mid

    def configure(self, kernel: int, ratio: int) -> None:
        self.kernel = kernel
        self.mid = make_divisible(round(self.cin * ratio))

    def kernel_weight(self, kernel: int, mid: int) -> torch.Tensor:
        w = self.depthwise[:mid]
        if kernel == 7:
            return w
        w5 = w[:, :, 1:6, 1:6].reshape(mid, 25) @ self.transform_5
        w5 = w5.reshape(mid, 1, 5, 5)
        if kernel == 5:
            return w5
        return (w5[:, :, 1:4, 1:4].reshape(mid, 9) @ self.transform_3).reshape(mid, 1, 3, 3)

    def se_weights(self, mid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        se_mid = make_divisible(mid // 4)
        return (self.se_reduce.weight[:se_mid, :mid], self.se_reduce.bias[:se_mid],
                self.se_expand.weight[:mid, :se_mid], self.se_expand.bias[:mid])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid, k = self.mid, self.kernel
        h = self.act(self.expand_bn(F.conv2d(x, self.expand.weight[:mid])))
        h = F.conv2d(h, self.kernel_weight(k, mid), stride=self.stride, padding=k // 2, groups=mid)
        h = self.act(self.depthwise_bn(h))
        if self.use_se:
            w1, b1, w2, b2 = self.se_weights(mid)
            s = F.relu(F.conv2d(h.mean((2, 3), keepdim=True), w1, b1))
            h = h * F.hardsigmoid(F.conv2d(s, w2, b2))
        y = self.project_bn(F.conv2d(h, self.project.weight[:, :mid]))
        return x + y if self.stride == 1 and self.cin == self.cout else y

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Most important expanded channels first (L1 norm of their projection weights), so that a narrow
        expand ratio keeps the channels that carry the most."""
        order = torch.argsort(self.project.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        self.project.weight.copy_(self.project.weight[:, order])
        self.expand.weight.copy_(self.expand.weight[order])
        self.depthwise.copy_(self.depthwise[order])
        for bn in (self.expand_bn, self.depthwise_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        if self.use_se:
            self.se_reduce.weight.copy_(self.se_reduce.weight[:, order])
            self.se_expand.weight.copy_(self.se_expand.weight[order])
            self.se_expand.bias.copy_(self.se_expand.bias[order])
            # SE's own hidden channels follow their importance too (the reduce conv keeps a prefix of them)
            se_order = torch.argsort(self.se_expand.weight.abs().sum(dim=(0, 2, 3)), descending=True)
            self.se_expand.weight.copy_(self.se_expand.weight[:, se_order])
            self.se_reduce.weight.copy_(self.se_reduce.weight[se_order])
            self.se_reduce.bias.copy_(self.se_reduce.bias[se_order])


class OFASupernet(nn.Module):
    """Every subnet of ``space`` (width 1.0 or 1.2) with ``num_classes`` outputs. :meth:`set_arch` picks the
    subnet the next forward passes run."""

    def __init__(self, space: OFAMobileNetV3Space, num_classes: int = 10) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.first_conv = ConvBNAct(3, space.first_conv, 3, 2, act="hswish")
        self.first_block = MBConv(OFAMobileNetV3Space._block(1, space.first_conv, space.first_block, 3, 1, 1,
                                                            "relu", False))
        blocks = []
        cin = space.first_block
        for (_, stride, act, se), cout in zip(_STAGES, space.stage_widths, strict=True):
            for j in range(MAX_DEPTH):
                blocks.append(_DynamicMBConv(cin if j == 0 else cout, cout, stride if j == 0 else 1, act, se))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = ConvBNAct(cin, space.final_expand, 1, act="hswish")
        self.feature_mix = ConvBNAct(space.final_expand, space.feature_mix, 1, act="hswish", bn=False)
        self.classifier = nn.Linear(space.feature_mix, num_classes)
        self.arch = space.largest()
        self.set_arch(self.arch)
        # with channels-last inputs (see search.supernet.at_resolution) oneDNN runs the depthwise convs several
        # times faster on CPU, forward and backward
        self.to(memory_format=torch.channels_last)

    def set_arch(self, arch: OFAArch) -> None:
        self.arch = arch
        for slot, block in enumerate(self.blocks):
            block.configure(arch.ks[slot], arch.e[slot])

    def active_blocks(self) -> Iterable[_DynamicMBConv]:
        for stage, depth in enumerate(self.arch.d):
            yield from self.blocks[stage * MAX_DEPTH: stage * MAX_DEPTH + depth]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.first_conv(x))
        for block in self.active_blocks():
            x = block(x)
        x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    def sort_channels(self) -> None:
        for block in self.blocks:
            block.sort_channels()

    # ------------------------------------------------------------------------------------- extraction

    @torch.no_grad()
    def extract(self, arch: OFAArch) -> nn.Module:
        """``space.build(arch)`` (the module the latency tables measure) with this supernet's weights."""
        net = OFAMobileNetV3Space(width=self.space.width, num_classes=self.num_classes).build(arch)
        modules = list(net.children())
        n_blocks = sum(arch.d)
        first_conv, first_block, *blocks = modules[:2 + n_blocks]
        final_expand, _pool, feature_mix, logits = modules[2 + n_blocks:]
        first_conv.load_state_dict(self.first_conv.state_dict())
        first_block.load_state_dict(self.first_block.state_dict())
        final_expand.load_state_dict(self.final_expand.state_dict())
        feature_mix.load_state_dict(self.feature_mix.state_dict())
        logits[1].load_state_dict(self.classifier.state_dict())
        self.set_arch(arch)
        for target, source in zip(blocks, self.active_blocks(), strict=True):
            _copy_block(target, source)
        return net.eval()


def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[:c])
    target.eps = source.eps


def _copy_block(target: MBConv, source: _DynamicMBConv) -> None:
    mid, k = source.mid, source.kernel
    assert isinstance(target.expand, ConvBNAct), "OFA's elastic blocks always expand"
    target.expand[0].weight.copy_(source.expand.weight[:mid])
    _copy_bn(target.expand[1], source.expand_bn, mid)
    target.depthwise[0].weight.copy_(source.kernel_weight(k, mid))
    _copy_bn(target.depthwise[1], source.depthwise_bn, mid)
    if source.use_se:
        assert isinstance(target.se, SqueezeExcite)
        w1, b1, w2, b2 = source.se_weights(mid)
        target.se.reduce.weight.copy_(w1)
        target.se.reduce.bias.copy_(b1)
        target.se.expand.weight.copy_(w2)
        target.se.expand.bias.copy_(b2)
    target.project[0].weight.copy_(source.project.weight[:, :mid])
    _copy_bn(target.project[1], source.project_bn, source.cout)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every batch-norm's running statistics for the model's current configuration: reset them,
    then average the batch statistics over ``batches`` (cumulative average, momentum None)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved: list[Any] = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        model.train(was_training)
