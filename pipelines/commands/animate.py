"""`motionpipe animate`: animate a source image with a driving video (or reconstruct a video) from a checkpoint."""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

import training.evaluation.animate as animate_lib
from training.evaluation.animate import CLI_MODES, load_animator, read_image, to_uint8


def add_animate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("animate", help="animate a source image with a driving video, or reconstruct a video",
                              description=animate_lib.__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="motionpipe checkpoint, or an official one (needs --config)")
    p.add_argument("--config", default=None, help="config name or YAML for an official checkpoint")
    p.add_argument("--source", default=None, help="source image (not used with --mode reconstruction)")
    p.add_argument("--driving", required=True, help="driving video")
    p.add_argument("--mode", choices=CLI_MODES, default=None,
                   help="default: the config's animate.mode; 'reconstruction' drives frame 0 of --driving")
    p.add_argument("--out", required=True, help="output video (.mp4)")
    p.add_argument("--avd-checkpoint", default=None,
                   help="mode avd: our AVD-stage checkpoint, or an official checkpoint holding avd_network")
    p.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--adapt-scale", dest="adapt_scale", action="store_true", default=None,
                   help="relative mode: scale the motion by the keypoint hulls (default: config)")
    p.add_argument("--no-adapt-scale", dest="adapt_scale", action="store_false")
    p.add_argument("--no-relative-jacobian", dest="relative_jacobian", action="store_false", default=None,
                   help="relative mode: keep the driving Jacobians/affines (default: config)")
    p.add_argument("--side-by-side", action="store_true", help="write source | driving | prediction")
    p.add_argument("--parts", default=None,
                   help="mode part-swap (MRAA): regions to take from --source, numbered as `motionpipe segment` "
                        "labels them, e.g. 1,3")
    p.set_defaults(func=animate_command)
    return p


def animate_command(args) -> int:
    """``motionpipe animate``: write the animation (or reconstruction) of --driving to --out."""
    from storage.video import CorruptVideoError, VideoWriter, iter_frames, probe

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not Path(args.driving).is_file():
        raise FileNotFoundError(f"driving video not found: {args.driving}")
    animator = load_animator(args.checkpoint, args.config, args.avd_checkpoint, device=device, bf16=args.bf16)
    cfg = animator.cfg
    mode = args.mode or cfg.animate.mode
    h, w = cfg.frame_size
    source = None
    if mode != "reconstruction":
        if args.source is None:
            raise ValueError(f"--mode {mode} needs --source IMAGE")
        source = read_image(args.source, (h, w))
    try:
        fps = probe(args.driving).fps
        frames_a, frames_b = itertools.tee(iter_frames(args.driving, size=(w, h)))
        if mode == "reconstruction":
            preds = animator.reconstruct(frames_a, batch_size=args.batch_size)
        elif mode == "part-swap":
            from training.experiments.part_swap import part_swap, parts_of
            parts = parts_of(animator, args.parts)
            preds = part_swap(animator, source, frames_a, parts, batch_size=args.batch_size)
        else:
            preds = animator.animate(source, frames_a, mode=mode, batch_size=args.batch_size,
                                     adapt_movement_scale=args.adapt_scale,
                                     use_relative_jacobian=args.relative_jacobian)
        n, first = 0, source
        width = 3 * w if args.side_by_side else w
        with VideoWriter(args.out, fps=fps, size=(width, h)) as writer:
            for pred in preds:
                for frame in to_uint8(pred):
                    driving = next(frames_b)
                    first = driving if first is None else first  # reconstruction: the source is frame 0
                    if args.side_by_side:
                        frame = np.concatenate([first, driving, frame], axis=1)
                    writer.write(frame)
                    n += 1
    except CorruptVideoError as err:
        raise ValueError(str(err)) from None
    print(f"wrote {args.out}: {n} frames {w}x{h} at {fps:g} fps ({mode}, {cfg.name}, {device})")
    return 0
