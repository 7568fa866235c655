"""Animation via Disentanglement (AVD): the shape/pose disentanglement network of MRAA and TPSMM.

Trained after the main model, with the motion estimator frozen: from the motion parameters of a source frame
("identity", i.e. shape) and of a randomly rescaled driving frame ("pose"), reconstruct the unscaled driving
parameters. At animation time it maps the driving pose onto the source's shape.

Two encoders (id, pose: Linear-BN-ReLU x3 with 256, 512, 1024 units, then Linear to the bottleneck) and a
decoder (Linear-BN-ReLU x3 with 1024, 512, 256 units, then Linear back to the input size). Module names and
layer order match the official code, so official checkpoints load by key.
- MRAA (``RegionAVD``): input = R regions x (shift 2 + affine 4), bottlenecks 64/64.
- TPSMM (``KeypointAVD``): input = num_tps*5 keypoints x 2, bottlenecks 128/128.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from pydantic import Field

from training.config import Strict
from training.models.grids import inverse_2x2


class AVDParams(Strict):
    id_bottle_size: int = Field(default=64, ge=1)
    pose_bottle_size: int = Field(default=64, ge=1)


def _mlp(sizes: list[int], inplace: bool) -> nn.Sequential:
    """Linear-BN-ReLU for every hidden layer, a bare Linear at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=inplace)]
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """Flat identity vector (B, D) + flat pose vector (B, D) -> reconstructed pose vector (B, D)."""

    def __init__(self, input_size: int, id_bottle_size: int = 64, pose_bottle_size: int = 64):
        super().__init__()
        self.input_size = input_size
        self.id_encoder = _mlp([input_size, 256, 512, 1024, id_bottle_size], inplace=True)
        self.pose_encoder = _mlp([input_size, 256, 512, 1024, pose_bottle_size], inplace=True)
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, 1024, 512, 256, input_size], inplace=False)

    def reconstruct(self, x_id: torch.Tensor, x_pose: torch.Tensor) -> torch.Tensor:
        pose = self.pose_encoder(x_pose)  # (B, pose_bottle)
        ident = self.id_encoder(x_id)  # (B, id_bottle)
        return self.decoder(torch.cat([pose, ident], dim=1))  # (B, D)


class RegionAVD(AVDNetwork):
    """MRAA: region params {'shift': (B, R, 2), 'affine': (B, R, 2, 2)} -> same plus 'covar'."""

    def __init__(self, num_regions: int, id_bottle_size: int = 64, pose_bottle_size: int = 64,
                 revert_axis_swap: bool = True):
        super().__init__((2 + 4) * num_regions, id_bottle_size, pose_bottle_size)
        self.num_regions, self.revert_axis_swap = num_regions, revert_axis_swap

    @staticmethod
    def to_embedding(params: dict[str, torch.Tensor]) -> torch.Tensor:
        shift, affine = params["shift"], params["affine"]
        return torch.cat([shift, affine.flatten(2)], dim=-1).flatten(1)  # (B, R*6)

    def from_embedding(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = emb.view(emb.shape[0], self.num_regions, 6)
        return {"shift": emb[..., :2], "affine": emb[..., 2:].reshape(emb.shape[0], self.num_regions, 2, 2)}

    def forward(self, x_id: dict, x_pose: dict) -> dict[str, torch.Tensor]:
        if self.revert_axis_swap:  # align the identity axes' signs with the pose's
            rel = x_id["affine"] @ inverse_2x2(x_pose["affine"])
            x_id = {"shift": x_id["shift"], "affine": x_id["affine"] * torch.sign(rel[..., 0:1, 0:1])}
        rec = self.from_embedding(self.reconstruct(self.to_embedding(x_id), self.to_embedding(x_pose)))
        rec["covar"] = rec["affine"] @ rec["affine"].transpose(-1, -2)
        return rec


class KeypointAVD(AVDNetwork):
    """TPSMM: keypoints (B, N, 2) of the source and of the pose frame -> reconstructed pose keypoints."""

    def __init__(self, num_kp: int, id_bottle_size: int = 128, pose_bottle_size: int = 128):
        super().__init__(2 * num_kp, id_bottle_size, pose_bottle_size)
        self.num_kp = num_kp

    def forward(self, kp_id: torch.Tensor, kp_pose: torch.Tensor) -> torch.Tensor:
        b = kp_id.shape[0]
        return self.reconstruct(kp_id.reshape(b, -1), kp_pose.reshape(b, -1)).view(b, self.num_kp, 2)


# -----------------------------------------------------------------------------
# random rescaling of the pose (the training perturbation)


def random_diag_scale(batch: int, scale: float, device=None, dtype=torch.float32,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample diag(sx, sy), sx, sy ~ U[1 - scale, 1 + scale]: (B, 1, 2, 2)."""
    s = torch.rand(batch, 2, device=device, dtype=dtype, generator=generator) * (2 * scale) + (1 - scale)
    return torch.diag_embed(s).unsqueeze(1)


def random_scale_regions(params: dict, scale: float, generator: torch.Generator | None = None) -> dict:
    theta = random_diag_scale(params["shift"].shape[0], scale, params["shift"].device, params["shift"].dtype,
                              generator)
    return {"shift": (theta @ params["shift"].unsqueeze(-1)).squeeze(-1), "affine": theta @ params["affine"]}


def random_scale_keypoints(kp: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    theta = random_diag_scale(kp.shape[0], scale, kp.device, kp.dtype, generator)
    return (theta @ kp.unsqueeze(-1)).squeeze(-1)


# -----------------------------------------------------------------------------
# training wrappers: forward(source, driving) -> (losses, generated), motion estimator frozen


class RegionAVDModel(nn.Module):
    """MRAA stage 2. Only ``avd`` is optimised (group 'avd').

    Official quirk kept by default: the region predictor stays in train mode, so its BatchNorm running
    statistics keep updating during AVD training (``freeze_bn_stats=True`` switches it to eval mode instead).
    """

    def __init__(self, region_predictor: nn.Module, avd: RegionAVD, random_scale: float, lambda_shift: float = 1.0,
                 lambda_affine: float = 1.0, freeze_bn_stats: bool = False, generator: nn.Module | None = None):
        super().__init__()
        self.region_predictor, self.avd = region_predictor, avd
        self.random_scale, self.lambda_shift, self.lambda_affine = random_scale, lambda_shift, lambda_affine
        self.freeze_bn_stats = freeze_bn_stats
        self.region_predictor.requires_grad_(False)
        self.generator = _frozen(generator)  # the main model's, for ``preview`` only

    def networks(self) -> dict[str, nn.Module]:
        return {"avd": self.avd}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"avd": list(self.avd.parameters())}

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        if self.freeze_bn_stats:
            self.region_predictor.eval()
        with torch.no_grad():
            ident = self.region_predictor(source)
            pose_gt = self.region_predictor(driving)
            pose = random_scale_regions(pose_gt, self.random_scale)
        rec = self.avd(ident, pose)
        losses = {"rec_shift": self.lambda_shift * (pose_gt["shift"] - rec["shift"]).abs().mean(),
                  "rec_affine": self.lambda_affine * (pose_gt["affine"] - rec["affine"]).abs().mean()}
        return losses, {"source_region_params": ident, "driving_region_params": pose_gt, "avd_region_params": rec}

    @torch.no_grad()
    def preview(self, source: torch.Tensor, driving: torch.Tensor, generated: dict) -> torch.Tensor | None:
        """The frame the AVD's regions animate: the source driven by ``avd_region_params`` (as the official AVD
        animation, without background motion); for the training grid. None without the generator."""
        if self.generator is None:
            return None
        with _evaluating(self.generator):
            return self.generator(source.float(), _float(generated["avd_region_params"]),
                                  _float(generated["source_region_params"]))["prediction"]


class KeypointAVDModel(nn.Module):
    """TPSMM stage 2 on raw keypoints. ``kp_detector(image)`` returns (B, N, 2) or a dict holding ``key``."""

    def __init__(self, kp_detector: nn.Module, avd: KeypointAVD, random_scale: float, lambda_shift: float = 1.0,
                 key: str = "fg_kp", freeze_bn_stats: bool = False, dense_motion: nn.Module | None = None,
                 inpainting: nn.Module | None = None):
        super().__init__()
        self.kp_detector, self.avd, self.key = kp_detector, avd, key
        self.random_scale, self.lambda_shift, self.freeze_bn_stats = random_scale, lambda_shift, freeze_bn_stats
        self.kp_detector.requires_grad_(False)
        # the main model's, for ``preview`` only
        self.dense_motion, self.inpainting = _frozen(dense_motion), _frozen(inpainting)

    def networks(self) -> dict[str, nn.Module]:
        return {"avd": self.avd}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"avd": list(self.avd.parameters())}

    def _kp(self, image):
        out = self.kp_detector(image)
        return out[self.key] if isinstance(out, dict) else out

    def forward(self, source: torch.Tensor, driving: torch.Tensor):
        if self.freeze_bn_stats:
            self.kp_detector.eval()
        with torch.no_grad():
            kp_id, kp_gt = self._kp(source), self._kp(driving)
            kp_pose = random_scale_keypoints(kp_gt, self.random_scale)
        rec = self.avd(kp_id, kp_pose)
        losses = {"rec_kp": self.lambda_shift * (kp_gt - rec).abs().mean()}
        return losses, {"kp_source": kp_id, "kp_driving": kp_gt, "kp_avd": rec}

    @torch.no_grad()
    def preview(self, source: torch.Tensor, driving: torch.Tensor, generated: dict) -> torch.Tensor | None:
        """The frame the AVD's keypoints animate: the source driven by ``kp_avd`` (as the official AVD animation,
        without background motion); for the training grid. None without the main model's networks."""
        if self.dense_motion is None or self.inpainting is None:
            return None
        source = source.float()
        with _evaluating(self.dense_motion), _evaluating(self.inpainting):
            motion = self.dense_motion(source, generated["kp_avd"].float(), generated["kp_source"].float(),
                                       bg_param=None, dropout_p=None)
            return self.inpainting(source, motion, keep_warped_maps=False)["prediction"]


def _frozen(module: nn.Module | None) -> nn.Module | None:
    return module.requires_grad_(False) if module is not None else None


def _float(params: dict) -> dict:
    return {k: v.float() if torch.is_tensor(v) else v for k, v in params.items()}


@contextlib.contextmanager
def _evaluating(module: nn.Module):
    """``module`` in eval mode for the block (BatchNorm running statistics, no dropout), then as it was."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
