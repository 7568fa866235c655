"""`motionpipe segment`: co-part segmentation of a video or an image by a trained MRAA."""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from training.experiments.segmentation import (BACKGROUND_THRESHOLD, legend, panel, require_regions, resize_labels,
                                               segment_frames)


def add_segment_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("segment", help="co-part segmentation of a video or image by a trained MRAA "
                                              "(overlay video, contact sheet, label maps)",
                              description="Label every pixel with the MRAA region whose heatmap responds most "
                                          "there (background below a summed response of 0.001) and write the "
                                          "labels overlaid on the frames.")
    p.add_argument("--checkpoint", required=True, help="motionpipe MRAA checkpoint, or an official one (+ --config)")
    p.add_argument("--config", default=None, help="config name or YAML for an official checkpoint")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="video to segment frame by frame")
    src.add_argument("--image", help="one image to segment")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=float, default=BACKGROUND_THRESHOLD,
                   help="background where the summed heatmaps are below this (supplement: 0.001)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames of --video")
    p.add_argument("--min-size", type=int, default=256,
                   help="enlarge the pictures (nearest) until a frame is at least this many pixels tall")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=segment_command)
    return p


def segment_command(args) -> int:
    """``motionpipe segment``: segmentation.mp4 (video only), segmentation.png and labels.npy under --out."""
    import itertools

    from storage.video import CorruptVideoError, VideoWriter, iter_frames, probe
    from training.evaluation.animate import load_animator, read_image

    t0 = time.perf_counter()
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    path = Path(args.video or args.image)
    if not path.is_file():
        raise FileNotFoundError(f"{'video' if args.video else 'image'} not found: {path}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    animator = load_animator(args.checkpoint, args.config, device=device)
    require_regions(animator)
    k = animator.cfg.model_params.num_regions
    h, w = animator.frame_size
    scale = max(1, -(-args.min_size // h))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    stills: list[np.ndarray] = []  # the panels of the contact sheet
    all_labels: list[np.ndarray] = []
    try:
        if args.image:
            frames = iter([read_image(path, (h, w))])
        else:
            frames = iter_frames(path, size=(w, h))
            if args.max_frames is not None:
                frames = itertools.islice(frames, args.max_frames)
        frames_a, frames_b = itertools.tee(frames)
        writer = None if args.image else VideoWriter(out / "segmentation.mp4", fps=probe(path).fps,
                                                     size=(3 * w * scale, h * scale))
        with writer if writer is not None else contextlib.nullcontext():
            for labels in segment_frames(animator, frames_a, batch_size=args.batch_size, threshold=args.threshold):
                full = resize_labels(labels, (h, w)).numpy()
                for small, lab in zip(labels.numpy(), full):
                    pic = panel(next(frames_b), lab, k, scale)
                    if writer is not None:
                        writer.write(pic)
                    all_labels.append(small.astype(np.uint8))
                    stills.append(pic)
                    if len(stills) > 64:  # keep memory bounded: the sheet takes evenly spaced frames below
                        stills = stills[::2]
    except CorruptVideoError as err:
        raise ValueError(str(err)) from None
    if not all_labels:
        raise ValueError(f"{path}: no frames to segment")
    labels_np = np.stack(all_labels)  # (n, h', w')
    np.save(out / "labels.npy", labels_np)
    picks = np.unique(np.linspace(0, len(stills) - 1, min(4, len(stills))).round().astype(int))
    sheet = np.concatenate([stills[i] for i in picks] + [legend(k, stills[0].shape[1])], axis=0)
    cv2.imwrite(str(out / "segmentation.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    share = np.bincount(labels_np.ravel(), minlength=k + 1) / labels_np.size
    print(f"segmented {len(labels_np)} frame(s) of {path} with {animator.cfg.name} ({k} regions, heatmaps "
          f"{labels_np.shape[2]}x{labels_np.shape[1]}, threshold {args.threshold:g}) in "
          f"{time.perf_counter() - t0:.1f} s -> {out}/")
    print("  pixel share: " + ", ".join(f"{'bg' if i == 0 else i} {s:.0%}" for i, s in enumerate(share)))
    return 0
