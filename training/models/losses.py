"""Loss terms shared by the motion models. Each returns an unweighted scalar unless it takes weights.

Definitions follow the official ``modules/model.py`` files (FOMM, MRAA, TPSMM, Monkey-Net).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training.models.grids import float32_math, inverse_2x2
from training.models.transforms import RandomTps


def perceptual_pyramid_loss(vgg, pyramid_real: dict[float, torch.Tensor], pyramid_fake: dict[float, torch.Tensor],
                            scales: Sequence[float], weights: Sequence[float]) -> torch.Tensor:
    """sum_scales sum_layers w_l * mean|VGG_l(fake_s) - VGG_l(real_s)|, real features detached.

    ``weights`` has one entry per VGG tap (5 for relu1_1..relu5_1); pyramids map scale -> (B, 3, H*s, W*s).
    """
    total = pyramid_fake[float(scales[0])].new_zeros((), dtype=torch.float32)  # fp32 sum under autocast
    for s in scales:
        s = float(s)
        fake = vgg(pyramid_fake[s])
        with torch.no_grad():  # == .detach() of the official code, without keeping the graph
            real = vgg(pyramid_real[s])
        if len(weights) != len(fake):
            raise ValueError(f"perceptual weights has {len(weights)} entries, VGG gives {len(fake)} feature maps")
        for w, a, b in zip(weights, fake, real):
            if w != 0:
                total = total + w * (a - b).abs().mean()
    return total


@float32_math
def equivariance_value_loss(kp_driving: torch.Tensor, kp_transformed: torch.Tensor,
                            transform: RandomTps) -> torch.Tensor:
    """mean|p_d - T(p_t)| where p_t are keypoints detected on the transformed driving frame. (B, K, 2)."""
    return (kp_driving - transform.warp_coordinates(kp_transformed)).abs().mean()


@float32_math
def equivariance_jacobian_loss(jac_driving: torch.Tensor, kp_transformed: torch.Tensor, jac_transformed: torch.Tensor,
                               transform: RandomTps, sign_fix: bool = False) -> torch.Tensor:
    """mean|I - J_d^-1 (dT(p_t) J_t)|; jacobians (B, K, 2, 2), points (B, K, 2).

    ``sign_fix`` (MRAA ``revert_axis_swap``) multiplies the product by the sign of its (0, 0) entry, since a
    PCA affine is only defined up to the sign of its axes.
    """
    jac_t = transform.jacobian(kp_transformed) @ jac_transformed  # (B, K, 2, 2)
    value = inverse_2x2(jac_driving) @ jac_t
    if sign_fix:
        value = value * torch.sign(value[..., 0:1, 0:1])
    eye = torch.eye(2, dtype=value.dtype, device=value.device)
    return (eye - value).abs().mean()


# --- LSGAN (FOMM adv config, Monkey-Net) ---------------------------------------------------------

def lsgan_generator_loss(prediction_fake: torch.Tensor) -> torch.Tensor:
    """mean (1 - D(fake))^2."""
    return ((1 - prediction_fake) ** 2).mean()


def lsgan_discriminator_loss(prediction_real: torch.Tensor, prediction_fake: torch.Tensor) -> torch.Tensor:
    """mean[(1 - D(real))^2 + D(fake)^2]."""
    return ((1 - prediction_real) ** 2 + prediction_fake ** 2).mean()


def feature_matching_loss(features_real: Sequence[torch.Tensor], features_fake: Sequence[torch.Tensor],
                          weights: Sequence[float]) -> torch.Tensor:
    """sum_i w_i mean|D_i(real) - D_i(fake)| (the official code does not detach the real features)."""
    total = features_fake[0].new_zeros(())
    for w, a, b in zip(weights, features_real, features_fake):
        if w != 0:
            total = total + w * (a - b).abs().mean()
    return total
