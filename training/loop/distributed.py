"""Everything the trainer needs from ``torch.distributed``: the rank context torchrun gives, synchronised BatchNorm
on every backend, the one module DistributedDataParallel wraps, per-rank seeds, and the collectives the loop uses
(RNG states, the stop flag, loss means). A single process (world size 1) passes through every function untouched."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    timeout: timedelta | None = None  # of every collective (None: torch's default for the backend)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None, env: Mapping[str, str] | None = None,
                     timeout: timedelta | None = None) -> DistContext:
    """Context from torchrun's variables in ``env`` (the entry point passes its environment); joins the process
    group (NCCL on GPU, gloo on CPU) when WORLD_SIZE > 1. Without them this is a single process on ``device``
    (default: GPU if any). ``timeout`` bounds every collective: a rank whose peer vanished without closing its
    connections (a node lost to the network) fails after it instead of waiting torch's default half hour."""
    env = env or {}
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local = int(env.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=timeout,
                                device_id=dev if dev.type == "cuda" else None)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev, timeout=timeout)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --- synchronised BatchNorm that also runs on CPU (gloo); on CUDA torch's nn.SyncBatchNorm is used ---------


class _SyncBatchNormFn(torch.autograd.Function):
    """Batch statistics over every rank's batch (all-gather of per-rank mean/var/count, combined exactly),
    and the matching backward (all-reduce of sum(dy) and sum(dy * xhat)). Computed in fp32."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group, world_size):
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        view = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        var_l, mean_l = torch.var_mean(xf, dim=dims, unbiased=False)
        count_l = torch.full((1,), x.numel() // c, dtype=torch.float32, device=x.device)
        packed = torch.cat([mean_l, var_l, count_l])
        gathered = [torch.empty_like(packed) for _ in range(world_size)]
        dist.all_gather(gathered, packed, group=group)
        g = torch.stack(gathered)  # (W, 2C + 1)
        means, variances, counts = g[:, :c], g[:, c:2 * c], g[:, 2 * c:]
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (counts * (variances + (means - mean) ** 2)).sum(0) / n
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
                unbiased = var * n / (n - 1).clamp(min=1)
                running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
        xhat = (xf - mean.view(view)) * invstd.view(view)
        w = weight.float() if weight is not None else torch.ones(c, device=x.device)
        b = bias.float() if bias is not None else torch.zeros(c, device=x.device)
        ctx.save_for_backward(xhat, w, invstd)
        ctx.meta = (group, n, dims, view, x.dtype, weight is not None, bias is not None)
        return (xhat * w.view(view) + b.view(view)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        xhat, w, invstd = ctx.saved_tensors
        group, n, dims, view, dtype, has_w, has_b = ctx.meta
        dy = grad_out.float()
        sum_dy = dy.sum(dims)
        sum_dy_xhat = (dy * xhat).sum(dims)
        both = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(both, group=group)
        c = sum_dy.shape[0]
        mean_dy, mean_dy_xhat = both[:c] / n, both[c:] / n
        grad_x = (dy - mean_dy.view(view) - xhat * mean_dy_xhat.view(view)) * (invstd * w).view(view)
        # weight/bias gradients stay local: DDP averages them over ranks like every other parameter
        return (grad_x.to(dtype), sum_dy_xhat if has_w else None, sum_dy if has_b else None,
                None, None, None, None, None, None)


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm with statistics over all ranks, for the gloo backend (nn.SyncBatchNorm is GPU-only).
    Same parameters and buffers as nn.BatchNorm*d, so state dicts are interchangeable."""

    def __init__(self, *args, process_group=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1):
            return super().forward(x)
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return _SyncBatchNormFn.apply(x, self.weight, self.bias, *running, self.eps, momentum,
                                      self.process_group, dist.get_world_size(self.process_group))


def convert_sync_batchnorm(module: nn.Module, device: torch.device, process_group=None) -> nn.Module:
    """Every BatchNorm -> synchronised BatchNorm (torch's on CUDA, :class:`CpuSyncBatchNorm` elsewhere),
    keeping the same Parameter objects and buffers."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        out = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, process_group=process_group)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child, device, process_group)
        if new is not child:
            module.add_module(name, new)
    return module


# --- one module for DDP to wrap, one seed per rank -----------------------------------------------------------------


class StepModule(nn.Module):
    """The one module DDP / torch.compile wrap: dispatches the generator and discriminator passes, so both
    go through DDP's gradient synchronisation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, mode: str, *args):
        if mode == "generator":
            return self.model(*args)
        if mode == "discriminator":
            return self.model.discriminator_losses(*args)
        raise ValueError(f"unknown step mode {mode!r}")


def seed_everything(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """Per-rank (and, for a reseed after a world-size change, per-step) seed."""
    return (seed + rank + 1_000_003 * step) % 2 ** 63


# --- what the trainer asks of the process group ----------------------------------------------------------------


def synchronise_batchnorm(model: nn.Module, device: torch.device, timeout: timedelta | None = None) -> nn.Module:
    """Every BatchNorm of ``model`` with statistics over all ranks (a gloo group of its own off CUDA, with the
    world's collective ``timeout``: a new group does not inherit it)."""
    group = dist.new_group(backend="gloo", timeout=timeout) if device.type != "cuda" else None
    return convert_sync_batchnorm(model, device, group)


def wrap_ddp(engine: nn.Module, device: torch.device, find_unused_parameters: bool,
             sync_batchnorm: bool) -> nn.Module:
    """``engine`` in DistributedDataParallel; synchronised BatchNorm keeps buffers equal on every rank, so no
    per-forward buffer broadcast is needed then."""
    ddp = nn.parallel.DistributedDataParallel
    buffers = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters
               else "broadcast_buffers")  # the name changed in torch 2.13
    return ddp(engine, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=find_unused_parameters, **{buffers: not sync_batchnorm})


def gather_objects(obj, ctx: DistContext) -> list:
    """``obj`` of every rank, in rank order (collective under DDP)."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """Whether ``flag`` is set on any rank (collective under DDP)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([float(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of ``values`` over the ranks (collective under DDP; in place)."""
    if ctx.distributed:
        dist.all_reduce(values)
        values /= ctx.world_size
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
