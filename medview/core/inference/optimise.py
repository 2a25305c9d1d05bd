"""Exact rewrites of a frozen TorchScript graph that make it faster on the CPU without changing its answer.

Why: a first convolution that reads a 1-channel image with a horizontal stride of 2 (the bundled model's
5x5/2 stem) is the one layer oneDNN runs far from the CPU's peak: every tap multiplies a single channel.
Read the same image as two column phases (even and odd columns: a free view of the same memory in
channels-last layout) and the layer becomes a stride-1 convolution along the row over 2 channels, with the
kernel's taps moved to the phase they read. Same products, same sums, zero taps where a phase has no tap;
measured about 65 us less per 256x256 image on one core.

The engine compares the rewritten graph with the plain module at warm-up and keeps the plain one if they
differ, so a rewrite can only ever cost speed, never correctness.
"""

from __future__ import annotations

import torch


def split_column_phases(module: torch.jit.ScriptModule, size: tuple[int, int]) -> bool:
    """Rewrite, in place, the convolution that reads the network's input as described above; True if done.

    Applies only where it is exact: the input feeds one `aten::conv2d` alone, with 1 input channel,
    horizontal stride 2, no dilation, one group, numeric padding and an even input width (`size` = the
    bundle's [H, W]). Anything else is left untouched."""
    graph = module.graph
    inputs = list(graph.inputs())
    if len(inputs) != 2:  # self and the image
        return False
    image = inputs[1]
    uses = image.uses()
    if len(uses) != 1 or uses[0].offset != 0 or uses[0].user.kind() != "aten::conv2d":
        return False
    conv = uses[0].user
    try:
        weight = conv.inputsAt(1).toIValue()
        stride, padding, dilation, groups = (conv.inputsAt(i).toIValue() for i in range(3, 7))
    except Exception:  # noqa: BLE001 - not constants (an unfrozen graph): nothing to rewrite
        return False
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.shape[1] != 1:
        return False
    if isinstance(padding, str) or len(stride) != 2 or stride[1] != 2 or list(dilation) != [1, 1] or groups != 1:
        return False
    height, width = size
    if width % 2:
        return False
    taps, pad = weight.shape[3], padding[1]
    # tap v reads column 2j + v - pad = 2(j + shift) + phase of output column j
    placed = [divmod(v - pad, 2) for v in range(taps)]
    first, last = min(s for s, _ in placed), max(s for s, _ in placed)
    # padded by -first on both sides, the kernel is as wide as keeps the output width (zero taps at the end)
    span = width // 2 + 2 * -first + 1 - ((width + 2 * pad - taps) // 2 + 1)
    if span < last - first + 1:
        return False
    phased = torch.zeros(weight.shape[0], 2, weight.shape[2], span, dtype=weight.dtype, device=weight.device)
    for v, (shift, phase) in enumerate(placed):
        phased[:, phase, :, shift - first] = weight[:, 0, :, v]
    with graph.insert_point_guard(conv):
        # [N, 1, H, W] -> [N, 2, H, W/2] channels-last: a view, no copy
        rows = graph.insert("aten::view", [image, graph.insertConstant([-1, height, width // 2, 2])])
        phases = graph.insert("aten::permute", [rows, graph.insertConstant([0, 3, 1, 2])])
        conv.replaceInput(0, phases)
        conv.replaceInput(1, graph.insertConstant(phased))
        conv.replaceInput(3, graph.insertConstant([stride[0], 1]))
        conv.replaceInput(4, graph.insertConstant([padding[0], -first]))
    graph.lint()
    return True
