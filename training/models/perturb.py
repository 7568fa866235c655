"""Weights moved off their initialisation, for checks that two implementations compute the same thing.

A freshly built model hides differences: Jacobian heads, the background affine and mask convolutions start at
zero or the identity, and BatchNorm statistics at 0/1, so a wrong layer can still give the right output. The
conversion tests and ``benchmarks/official_parity.py`` perturb every weight and statistic first.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn


@torch.no_grad()
def perturb_weights(nets: Iterable[nn.Module], seed: int) -> None:
    """Add N(0, 0.01) to every float weight, set running means to N(0, 0.1) and running variances to 0.5 + |N(0, 1)|;
    the fixed anti-alias kernels (``down.weight``) stay as they are."""
    g = torch.Generator().manual_seed(seed)
    for net in nets:
        for key, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g)
            if key.endswith("running_var"):
                t.copy_(0.5 + noise.abs())
            elif key.endswith("running_mean"):
                t.copy_(0.1 * noise)
            elif not key.endswith("down.weight"):
                t.add_(0.01 * noise)
