"""Inference: batched reconstruction, the three animation modes and their invariants, ``motionpipe animate``
end to end on real video files (our checkpoints and official ones), and clear errors for bad inputs."""

import argparse

import cv2
import numpy as np
import pytest
import torch

from pipelines.commands.animate import add_animate_parser, animate_command
from storage.video import VideoWriter, probe
from training.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint
from training.config import config_to_dict, load_config
from training.evaluation.animate import Animator, convex_hull_area, load_animator, read_image
from training.models import build_avd_network
from training.models.convert import build_inference_model, to_official


@torch.no_grad()
def _perturb(nets, seed):
    """Weights and BatchNorm statistics off their initialisation (identity-initialised heads matter)."""
    g = torch.Generator().manual_seed(seed)
    for net in nets:
        for key, t in net.state_dict().items():
            if t.is_floating_point() and not key.endswith("down.weight"):
                noise = torch.randn(t.shape, generator=g)
                t.copy_(0.5 + noise.abs()) if key.endswith("running_var") else t.add_(0.01 * noise)


def _animator(name, with_avd=True, seed=0):
    cfg = load_config(name)
    torch.manual_seed(seed)
    model, avd = build_inference_model(cfg), build_avd_network(cfg)
    _perturb([*model.networks().values()] + ([avd] if avd is not None else []), seed)
    return Animator(cfg, model, avd.eval() if (avd is not None and with_avd) else None)


def _frames(n, seed=0, size=64):
    """A textured blob moving across a gradient background (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.float32)
    out = []
    for t in range(n):
        cx, cy = 20 + 4 * t, 30 + 2 * t
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 40.0)[..., None] * np.array([200, 60, 120])
        out.append(np.clip(base + blob + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8))
    return out


def _save_ours(animator, path, avd_path=None):
    """Main-stage (and AVD-stage) checkpoints in the trainer's format."""
    cfg = animator.cfg
    base = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": cfg.model, "config": config_to_dict(cfg),
            "step": 10, "epoch": 1}
    save_checkpoint({**base, "stage": "main",
                     "networks": {k: v.state_dict() for k, v in animator.model.networks().items()}}, path)
    if avd_path is not None:
        save_checkpoint({**base, "stage": "avd", "networks": {"avd": animator.avd_network.state_dict()}}, avd_path)


def _write_video(path, frames, fps=10):
    with VideoWriter(path, fps=fps, size=(frames[0].shape[1], frames[0].shape[0]), crf=10) as w:
        for f in frames:
            w.write(f)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="motionpipe")
    add_animate_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["animate", *argv])
    return args.func(args)


def test_reconstruction_is_batched_and_matches_per_pair_model():
    a = _animator("fomm-sample-64")
    frames = _frames(5)
    chunks = list(a.reconstruct(frames, batch_size=2))
    assert [c.shape[0] for c in chunks] == [2, 2, 1]
    pred = torch.cat(chunks)
    assert pred.shape == (5, 3, 64, 64) and pred.dtype == torch.float32
    x = a.to_tensor(frames)
    with torch.no_grad():
        expected = a.model.reconstruct(x[:1].expand(5, -1, -1, -1), x)
    torch.testing.assert_close(pred, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["fomm-sample-64", "mraa-sample-64", "tpsmm-sample-64", "monkeynet-sample-64"])
def test_relative_mode_invariants(name):
    a = _animator(name)
    frames = _frames(4)
    # the source is the first driving frame: relative motion (hull scale 1, J_d J_d0^-1 J_s = J_d) is the
    # driving motion itself, so relative == standard for every frame
    rel = torch.cat(list(a.animate(frames[0], frames, "relative", batch_size=3, adapt_movement_scale=True)))
    std = torch.cat(list(a.animate(frames[0], frames, "standard", batch_size=3)))
    assert rel.shape == (4, 3, 64, 64)
    torch.testing.assert_close(rel, std, atol=2e-4, rtol=0)
    with torch.no_grad():  # not vacuous: the driving motion parameters do move across the frames
        params = a.adapter.detect(a.model, a.to_tensor(frames))[a.adapter.points_key]
    assert (params[-1] - params[0]).abs().max() > 1e-2
    # a static driving video: every frame gets the source's own locations and Jacobians/affines (the other
    # parameters, MRAA covariances and Monkey-Net variances, stay the driving ones as in the official code)
    other = _frames(1, seed=9)[0][::-1].copy()
    static = torch.cat(list(a.animate(other, [frames[2]] * 3, "relative", batch_size=2)))
    assert static.shape == (3, 3, 64, 64)
    source = a.to_tensor([other])
    with torch.no_grad():
        src, drv = a.adapter.detect(a.model, source), a.adapter.detect(a.model, a.to_tensor(frames[2:3]))
        own = dict(drv, **{k: src[k] for k in (a.adapter.points_key, a.adapter.matrix_key) if k in src})
        expected = a.adapter.generate(a.model, source, src, own)
    torch.testing.assert_close(static, expected.expand(3, -1, -1, -1), atol=2e-4, rtol=0)


def test_movement_scale_follows_the_keypoint_hulls():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.2, 0.7]])
    assert convex_hull_area(square) == pytest.approx(1.0)
    assert convex_hull_area(2 * square) == pytest.approx(4.0)
    assert convex_hull_area(np.array([[0, 0], [1, 1], [2, 2]])) == 0.0
    a = _animator("tpsmm-sample-64")
    src = {"fg_kp": torch.rand(1, 10, 2) - 0.5}
    assert a.movement_scale(src, {"fg_kp": src["fg_kp"] * 0.5}) == pytest.approx(2.0, rel=1e-5)
    drv, drv0 = {"fg_kp": src["fg_kp"] + 0.1}, {"fg_kp": src["fg_kp"] * 0.5}
    moved = a.adapter.relative(src, drv, drv0, 2.0, True)["fg_kp"]
    torch.testing.assert_close(moved, (drv["fg_kp"] - drv0["fg_kp"]) * 2 + src["fg_kp"])


def test_avd_mode():
    a = _animator("mraa-sample-64")
    out = torch.cat(list(a.animate(_frames(1)[0], _frames(3), "avd", batch_size=2)))
    assert out.shape == (3, 3, 64, 64) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="needs a trained AVD network"):
        next(_animator("tpsmm-sample-64", with_avd=False).animate(_frames(1)[0], _frames(2), "avd"))
    with pytest.raises(ValueError, match="needs MRAA or TPSMM"):
        next(_animator("fomm-sample-64").animate(_frames(1)[0], _frames(2), "avd"))
    with pytest.raises(ValueError, match="unknown animation mode"):
        next(a.animate(_frames(1)[0], _frames(2), "absolute"))


def test_cli_reconstruction_and_relative_animation_from_our_checkpoint(tmp_path, capsys):
    a = _animator("mraa-sample-64")
    _save_ours(a, tmp_path / "ours.pt", avd_path=tmp_path / "avd.pt")
    frames = _frames(5)
    _write_video(tmp_path / "driving.mp4", frames)
    assert _cli(["--checkpoint", str(tmp_path / "ours.pt"), "--driving", str(tmp_path / "driving.mp4"),
                 "--mode", "reconstruction", "--out", str(tmp_path / "rec.mp4"), "--batch-size", "2"]) == 0
    info = probe(tmp_path / "rec.mp4", count_frames=True)
    assert (info.n_frames, info.width, info.height, info.fps) == (5, 64, 64, 10)
    assert "5 frames" in capsys.readouterr().out

    cv2.imwrite(str(tmp_path / "source.png"), cv2.cvtColor(_frames(1, seed=3)[0], cv2.COLOR_RGB2BGR))
    common = ["--source", str(tmp_path / "source.png"), "--driving", str(tmp_path / "driving.mp4")]
    for mode, extra in (("relative", ["--adapt-scale"]), ("avd", ["--avd-checkpoint", str(tmp_path / "avd.pt")])):
        out = tmp_path / f"{mode}.mp4"
        assert _cli(["--checkpoint", str(tmp_path / "ours.pt"), *common, "--mode", mode, "--out", str(out),
                     "--side-by-side", *extra]) == 0
        info = probe(out, count_frames=True)
        assert (info.n_frames, info.width, info.height) == (5, 192, 64)
    with pytest.raises(ValueError, match="needs a trained AVD network"):
        _cli(["--checkpoint", str(tmp_path / "ours.pt"), *common, "--mode", "avd", "--out", str(out)])
    with pytest.raises(ValueError, match="'avd'-stage checkpoint.*--avd-checkpoint"):
        _cli(["--checkpoint", str(tmp_path / "avd.pt"), *common, "--mode", "avd", "--out", str(out)])
    # the two checkpoints reload to the same model and AVD network
    loaded = load_animator(tmp_path / "ours.pt", avd_checkpoint=tmp_path / "avd.pt")
    src = read_image(tmp_path / "source.png", (64, 64))
    direct = torch.cat(list(loaded.animate(src, frames, "avd")))
    expected = torch.cat(list(a.animate(src, frames, "avd")))
    torch.testing.assert_close(direct, expected, atol=1e-5, rtol=0)


def test_cli_with_an_official_checkpoint_needs_its_config(tmp_path):
    a = _animator("fomm-sample-64")
    torch.save(to_official(a.cfg, dict(a.model.networks()), {"epoch": 99}), tmp_path / "fomm-cpk.pth.tar")
    _write_video(tmp_path / "driving.mp4", _frames(3))
    cv2.imwrite(str(tmp_path / "source.png"), cv2.cvtColor(_frames(1, seed=3)[0], cv2.COLOR_RGB2BGR))
    common = ["--checkpoint", str(tmp_path / "fomm-cpk.pth.tar"), "--source", str(tmp_path / "source.png"),
              "--driving", str(tmp_path / "driving.mp4"), "--out", str(tmp_path / "out.mp4")]
    with pytest.raises(ValueError, match="pass --config"):
        _cli(common)
    assert _cli(common + ["--config", "fomm-sample-64", "--mode", "standard"]) == 0
    assert probe(tmp_path / "out.mp4", count_frames=True).n_frames == 3
    loaded = load_animator(tmp_path / "fomm-cpk.pth.tar", "fomm-sample-64")
    x = a.to_tensor(_frames(2))
    with torch.no_grad():
        assert torch.equal(loaded.model.reconstruct(x, x), a.model.reconstruct(x, x))


def test_bad_inputs_give_clear_errors(tmp_path):
    a = _animator("fomm-sample-64")
    _save_ours(a, tmp_path / "ours.pt")
    _write_video(tmp_path / "driving.mp4", _frames(2))
    src = _frames(1)[0]
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(src, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(src, cv2.COLOR_RGB2BGRA))
    cv2.imwrite(str(tmp_path / "big.png"), cv2.resize(src, (200, 120)))

    def run(source="big.png", driving="driving.mp4", checkpoint="ours.pt", extra=()):
        return _cli(["--checkpoint", str(tmp_path / checkpoint), "--source", str(tmp_path / source),
                     "--driving", str(tmp_path / driving), "--out", str(tmp_path / "o.mp4"), *extra])

    with pytest.raises(FileNotFoundError, match="missing.png"):
        run(source="missing.png")
    with pytest.raises(ValueError, match=r"gray.png: image has 1 channel"):
        run(source="gray.png")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        run(driving="missing.mp4")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        run(checkpoint="missing.pt")
    (tmp_path / "notvideo.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="notvideo.mp4"):
        run(driving="notvideo.mp4")
    assert run(source="big.png", extra=["--mode", "relative"]) == 0  # resized to the config's 64x64
    rgba = read_image(tmp_path / "rgba.png", (64, 64))
    assert rgba.shape == (64, 64, 3) and np.array_equal(rgba, src)
    with pytest.raises(ValueError, match=r"driving frame 0 has shape \(3, 32, 32\)"):
        next(a.animate(src, [src[:32, :32]], "standard"))
