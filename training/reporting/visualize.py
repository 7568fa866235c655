"""Training visualisation: one uint8 image grid per logged step (rows = samples, columns = stages).

Columns: source with its keypoints/regions, driving with its keypoints/regions, the source deformed by the
predicted flow, the occlusion map, the prediction (the AVD stage's: the source driven by the AVD's reconstructed
keypoints/regions, drawn on it). A column the model does not produce (Monkey-Net has no
occlusion map) is left out. Plain torch/numpy/cv2, so it runs wherever training runs; TensorBoard takes the
array as HWC.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# keys under which the four models (and the AVD stage) return their motion units, (B, K, 2) in [-1, 1], (x, y)
_KP_CONTAINERS = {
    "source": ("kp_source", "source_region_params"),
    "driving": ("kp_driving", "driving_region_params"),
    "avd": ("kp_avd", "avd_region_params"),  # the AVD stage's reconstruction of the driving motion
}
_KP_FIELDS = ("value", "shift", "fg_kp", "mean")
HEADER_PX = 14


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, 3) uint8 (grey images are repeated over 3 channels)."""
    x = image.detach().float().clamp(0, 1).cpu()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def keypoints_of(generated: dict, which: str) -> torch.Tensor | None:
    """Keypoints or region centres (B, K, 2) of the 'source' or 'driving' frame (or 'avd': the AVD stage's), or
    None."""
    for container in _KP_CONTAINERS[which]:
        kp = generated.get(container)
        if torch.is_tensor(kp):
            return kp
        if isinstance(kp, dict):
            for field in _KP_FIELDS:
                if torch.is_tensor(kp.get(field)):
                    return kp[field]
    return None


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (n, 3) uint8, from cv2's HSV colour map."""
    ramp = np.linspace(0, 255, max(n, 1), endpoint=False).astype(np.uint8).reshape(-1, 1)
    return cv2.applyColorMap(ramp, cv2.COLORMAP_HSV)[:, 0, ::-1].copy()


def draw_keypoints(image: np.ndarray, kp: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Draw (K, 2) points in [-1, 1] (x, y; align_corners convention) on an (H, W, 3) uint8 image."""
    h, w = image.shape[:2]
    out = np.ascontiguousarray(image.copy())
    radius = radius or max(1, round(min(h, w) / 64))
    colours = palette(len(kp))
    for (x, y), colour in zip(kp, colours):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
        cv2.circle(out, (int(round(px)), int(round(py))), radius, tuple(int(c) for c in colour), -1,
                   lineType=cv2.LINE_AA)
    return out


def _occlusion(generated: dict) -> torch.Tensor | None:
    occ = generated.get("occlusion_map")
    if isinstance(occ, (list, tuple)):  # TPSMM: one mask per resolution, coarsest first
        occ = occ[-1] if occ else None
    return occ if torch.is_tensor(occ) else None


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)


def _header(titles: list[str], w: int) -> np.ndarray:
    bar = np.full((HEADER_PX, w * len(titles), 3), 255, np.uint8)
    for i, title in enumerate(titles):
        scale = 0.8
        while scale > 0.3 and cv2.getTextSize(title, cv2.FONT_HERSHEY_PLAIN, scale, 1)[0][0] > w - 4:
            scale -= 0.05  # shrink to fit the column
        cv2.putText(bar, title, (i * w + 2, HEADER_PX - 4), cv2.FONT_HERSHEY_PLAIN, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return bar


def make_grid(source: torch.Tensor, driving: torch.Tensor, generated: dict, max_rows: int = 4,
              header: bool = True) -> np.ndarray:
    """(rows * H [+ header], columns * W, 3) uint8 grid for ``min(B, max_rows)`` samples of a training step."""
    b, _, h, w = source.shape
    rows = min(b, max_rows)
    kp_s, kp_d = keypoints_of(generated, "source"), keypoints_of(generated, "driving")
    deformed, occ, pred = generated.get("deformed"), _occlusion(generated), generated.get("prediction")
    columns: list[tuple[str, callable]] = [
        ("source", lambda i: _with_kp(source[i], kp_s, i)),
        ("driving", lambda i: _with_kp(driving[i], kp_d, i)),
    ]
    if torch.is_tensor(deformed):
        columns.append(("deformed", lambda i: to_uint8(deformed[i])))
    if occ is not None:
        columns.append(("occlusion", lambda i: to_uint8(occ[i])))
    if torch.is_tensor(pred):
        kp_avd = keypoints_of(generated, "avd")
        columns.append(("prediction", lambda i: _with_kp(pred[i], kp_avd, i)))
    grid = np.concatenate([np.concatenate([_resize(fn(i), h, w) for _, fn in columns], axis=1)
                           for i in range(rows)], axis=0)
    if header:
        grid = np.concatenate([_header([name for name, _ in columns], w), grid], axis=0)
    return grid


def _with_kp(image: torch.Tensor, kp: torch.Tensor | None, i: int) -> np.ndarray:
    out = to_uint8(image)
    if kp is not None:
        out = draw_keypoints(out, kp[i].detach().float().cpu().numpy())
    return out
