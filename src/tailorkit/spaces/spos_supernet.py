"""The Single-Path-One-Shot supernet (Guo et al., 2020): every block slot holds all four ShuffleNetV2 units at
their widest middle width (2.0 × half the output channels); a path runs one unit per slot, using the first
``SCALES[c]`` fraction of its middle channels (SPOS's channel search by slicing). Training samples paths
uniformly (``search.supernet``), after a warm-up on the k7 units whose weights the other units then inherit
(:meth:`SPOSSupernet.inherit_units`); :meth:`SPOSSupernet.extract` returns ``space.build(arch)`` carrying the
path's weights, computing exactly what the supernet computes for the path.

The units are the very ``ShuffleBlock`` modules the space builds; the supernet runs them with sliced weights:
a depthwise conv keeps as many channels as it receives, the last 1×1 conv of a unit's main branch produces
the unit's fixed output, every other dense conv produces the path's middle width, and batch norms follow.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tailorkit.spaces.blocks import ShuffleBlock, build_op
from tailorkit.spaces.spos import BLOCKS, SCALES, SPOSArch, SPOSSpace


def _sliced_main(branch: nn.Sequential, x: torch.Tensor, mid: int, training: bool) -> torch.Tensor:
    dense = [i for i, m in enumerate(branch) if isinstance(m, nn.Conv2d) and m.groups == 1]
    last = dense[-1]
    for i, m in enumerate(branch):
        c = x.shape[1]
        if isinstance(m, nn.Conv2d):
            if m.groups > 1:  # depthwise: as many channels as arrive
                x = F.conv2d(x, m.weight[:c], None, m.stride, m.padding, groups=c)
            else:
                out = m.out_channels if i == last else mid
                x = F.conv2d(x, m.weight[:out, :c], None, m.stride, m.padding)
        elif isinstance(m, nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            if training and m.momentum is None:  # cumulative average: batch-norm recalibration
                m.num_batches_tracked += 1
                momentum = 1.0 / float(m.num_batches_tracked)
            else:
                momentum = m.momentum if m.momentum is not None else 0.0
            x = F.batch_norm(x, m.running_mean[:c], m.running_var[:c], m.weight[:c], m.bias[:c], training,
                             momentum, m.eps)
        else:
            x = m(x)
    return x


class _ChoiceSlot(nn.Module):
    """One block slot: the four units at their widest; ``forward`` runs the chosen unit at the chosen width."""

    def __init__(self, space: SPOSSpace, h: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        widest = len(SCALES) - 1
        self.units = nn.ModuleList(build_op(space._block(h, cin, cout, stride, u, widest, None)).train()
                                   for u in range(len(BLOCKS)))
        self.h, self.cin, self.cout, self.stride = h, cin, cout, stride
        self.unit, self.mid = 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.units[self.unit]
        assert isinstance(block, ShuffleBlock)
        if block.proj is None:
            n, c, h, w = x.shape
            pairs = x.reshape(n, c // 2, 2, h, w)
            return torch.cat([pairs[:, :, 0], _sliced_main(block.main, pairs[:, :, 1], self.mid, self.training)],
                             dim=1)
        return torch.cat([block.proj(x), _sliced_main(block.main, x, self.mid, self.training)], dim=1)


class SPOSSupernet(nn.Module):
    def __init__(self, space: SPOSSpace, num_classes: int = 10) -> None:
        super().__init__()
        self.space = type(space)(num_classes=num_classes, resolution=space.resolution, bits=space.bits)
        self.num_classes = num_classes
        ops = self.space.ops(self.space.largest())
        self.stem = build_op(ops[0]).train()
        self.slots = nn.ModuleList(_ChoiceSlot(self.space, h, cin, cout, stride)
                                   for h, cin, cout, stride in self.space._positions())
        self.tail = nn.ModuleList(build_op(op).train() for op in ops[-3:])
        self.arch = self.space.largest()
        self.set_arch(self.arch)
        self.to(memory_format=torch.channels_last)  # see ofa_supernet: oneDNN's depthwise convs prefer it

    def set_arch(self, arch: SPOSArch) -> None:
        self.arch = arch
        for i, slot in enumerate(self.slots):
            slot.unit = arch.blocks[i]
            slot.mid = self.space._block(slot.h, slot.cin, slot.cout, slot.stride, arch.blocks[i], arch.channels[i],
                                         None).expand

    def active_blocks(self) -> Iterator[_ChoiceSlot]:
        yield from self.slots  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for slot in self.slots:
            x = slot(x)
        for m in self.tail:
            x = m(x)
        return x

    def sort_channels(self) -> None:
        """SPOS trains every width from the start; nothing to reorder."""

    @torch.no_grad()
    def inherit_units(self, source: int = BLOCKS.index("k7")) -> None:
        """Give every slot's other units the ``source`` unit's trained weights (after a warm-up that trained
        only it), so a path mixing units starts out computing nearly what the warm-up path computes.

        Across 20 slots, units at independent random weights make every sampled path a different random
        function, and uniform sampling then never gets off the ground on digits; units that start from one
        trained unit do (README). The k3/k5 units take the k7 unit's weights with each depthwise kernel
        centre-cropped (OFA's elastic kernel without its transform). The xception unit (depthwise 3×3 → 1×1,
        three times) takes them Net2Net-style (:func:`_inherit_xception`). Projection branches (stride 2) are
        copied with the same centre crop.
        """
        for slot in self.slots:
            src = slot.units[source]
            assert isinstance(src, ShuffleBlock)
            for u, dst in enumerate(slot.units):
                if u == source:
                    continue
                assert isinstance(dst, ShuffleBlock)
                if src.proj is not None and dst.proj is not None:
                    _copy_cropped(dst.proj, src.proj, centre=True)
                src_pairs, dst_pairs = _conv_bn_pairs(src.main), _conv_bn_pairs(dst.main)
                if len(dst_pairs) == len(src_pairs):
                    _copy_cropped(dst.main, src.main, centre=True)
                    continue
                _inherit_xception(dst_pairs, src_pairs)

    @torch.no_grad()
    def extract(self, arch: SPOSArch) -> nn.Module:
        """``space.build(arch)`` (float; bit widths are the exporter's) with this path's weights."""
        net = self.space.build(arch)
        modules = list(net.children())
        modules[0].load_state_dict(self.stem.state_dict())
        for target, source in zip(modules[-3:], self.tail, strict=True):
            target.load_state_dict(source.state_dict())
        self.set_arch(arch)
        for target, slot in zip(modules[1:-3], self.slots, strict=True):
            _copy_cropped(target, slot.units[slot.unit])
        return net.eval()


def _inherit_xception(dst: list[tuple[nn.Conv2d, nn.BatchNorm2d]], src: list[tuple[nn.Conv2d, nn.BatchNorm2d]]
                      ) -> None:
    """xception (dw3 → 1×1+ReLU → dw3 → 1×1+ReLU → dw3 → 1×1+ReLU) from a k-unit (1×1+ReLU → dwk → 1×1+ReLU).

    dw → BN at the start is an identity up to a per-channel affine map, which the next 1×1's batch norm
    mostly absorbs. The k-unit's depthwise sits second; its batch norm's affine part moves to the last
    depthwise, and between them the 1×1 identity's batch norm is shifted by β = 3 so its ReLU passes nearly
    everything (the next batch norm removes the shift again)."""
    (pw1, pw1_bn), (dw, dw_bn), (pw2, pw2_bn) = src
    for i, (conv, bn) in enumerate(dst):
        bn.reset_parameters()
        if i in (1, 2, 5):
            template, template_bn = {1: (pw1, pw1_bn), 2: (dw, dw_bn), 5: (pw2, pw2_bn)}[i]
            _copy_cropped(conv, template, centre=True)
            if i != 2:
                _copy_cropped(bn, template_bn)
            continue
        conv.weight.zero_()  # identities: the depthwise centre tap, the square 1×1's diagonal
        centre = conv.kernel_size[0] // 2
        if conv.groups > 1:
            conv.weight[:, 0, centre, centre] = 1.0
        else:
            conv.weight[:, :, centre, centre] = torch.eye(conv.out_channels, conv.in_channels)
        if i == 3:
            bn.bias.fill_(3.0)
        elif i == 4:
            bn.weight.copy_(dw_bn.weight)
            bn.bias.copy_(dw_bn.bias)


def _conv_bn_pairs(branch: nn.Sequential) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    mods = list(branch)
    return [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]  # type: ignore[misc]


def _copy_cropped(target: nn.Module, source: nn.Module, *, centre: bool = False) -> None:
    """Copy every parameter and buffer of ``source`` into the same-named one of ``target``, cropped to its
    shape: the leading slice of each dimension (a narrower module of the same layout), or with ``centre`` the
    centre of a larger kernel's two spatial dimensions (a smaller kernel)."""
    src = dict(source.state_dict())
    for name, tensor in target.state_dict().items():
        value = src[name]
        spatial = value.dim() - 2 if centre and value.dim() == 4 else value.dim()
        starts = [(big - d) // 2 if i >= spatial else 0
                  for i, (big, d) in enumerate(zip(value.shape, tensor.shape, strict=True))]
        tensor.copy_(value[tuple(slice(a, a + d) for a, d in zip(starts, tensor.shape, strict=True))])
