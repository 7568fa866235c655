"""MRAA co-part segmentation and part swap (supplement Sec. 2): the labelling rule on heatmaps we control, the
part-swap blend against the standard animation, and ``motionpipe segment`` / ``animate --mode part-swap`` end to
end on our checkpoints and an official-layout one."""

import argparse

import cv2
import numpy as np
import pytest
import torch

from pipelines.commands.animate import add_animate_parser
from pipelines.commands.segment import add_segment_parser
from storage.video import probe
from tests.training.test_animate import _animator, _frames, _save_ours, _write_video
from training.evaluation.animate import load_animator
from training.experiments.part_swap import parse_parts, part_swap, swap_mask
from training.experiments.segmentation import region_heatmaps, resize_labels, segment_frames, segment_heatmaps
from training.models.convert import to_official


def _cli(argv):
    parser = argparse.ArgumentParser(prog="motionpipe")
    sub = parser.add_subparsers(dest="command")
    add_segment_parser(sub)
    add_animate_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_segmentation_rule_on_controlled_heatmaps():
    # 3 regions on a 2x4 heatmap: each column is one pixel's responses (M^1, M^2, M^3)
    responses = torch.tensor([
        [[0.30, 0.01, 0.0004, 0.0002], [0.0, 0.2, 0.0009, 0.0]],  # M^1
        [[0.10, 0.50, 0.0003, 0.0003], [0.0, 0.1, 0.0, 0.0]],  # M^2
        [[0.05, 0.02, 0.0002, 0.0004], [0.9, 0.3, 0.0, 0.0]],  # M^3
    ], dtype=torch.float64)[None]  # (1, 3, 2, 4)
    labels = segment_heatmaps(responses)
    # row 0: argmax 1, argmax 2, sum 0.0009 < 0.001 -> bg, sum exactly 0.0009 -> bg
    # row 1: argmax 3, argmax 3, sum 0.0009 -> bg, all zero -> bg
    assert labels.tolist() == [[[1, 2, 0, 0], [3, 3, 0, 0]]]
    # the threshold is strict: a summed response of exactly 0.001 is foreground, just below is background
    at = torch.tensor([0.0005, 0.0005], dtype=torch.float64).view(1, 2, 1, 1)
    assert segment_heatmaps(at).item() == 1
    assert segment_heatmaps(at * (1 - 1e-6)).item() == 0
    assert segment_heatmaps(at, threshold=1e-4).item() == 1 and segment_heatmaps(at, threshold=0.1).item() == 0


def test_labels_resize_corners_onto_corners():
    labels = torch.arange(9).view(1, 3, 3)
    big = resize_labels(labels, (5, 7))
    assert big.shape == (1, 5, 7)
    assert big[0, 0, 0] == 0 and big[0, 0, -1] == 2 and big[0, -1, 0] == 6 and big[0, -1, -1] == 8
    assert big[0, 2, 3] == 4  # the centre onto the centre
    assert torch.equal(resize_labels(labels, (3, 3)), labels)


def test_segmentation_of_an_mraa_follows_its_heatmaps():
    a = _animator("mraa-sample-64")
    frames = _frames(5)
    labels = torch.cat(list(segment_frames(a, frames, batch_size=2)))
    heat = region_heatmaps(a, a.to_tensor(frames))
    assert labels.shape == (5, *heat.shape[2:])
    assert torch.equal(labels, segment_heatmaps(heat))
    assert len(labels.unique()) > 3  # not vacuous: the perturbed model's regions split the frame
    with pytest.raises(ValueError, match="needs an MRAA checkpoint"):
        next(segment_frames(_animator("fomm-sample-64"), frames))


def test_part_swap_takes_the_chosen_parts_from_the_source_and_the_rest_from_the_driving_frame():
    a = _animator("mraa-sample-64")
    driving, source = _frames(4), _frames(1, seed=5)[0][:, ::-1].copy()
    x = a.to_tensor(driving)
    labels = segment_heatmaps(region_heatmaps(a, x))
    counts = torch.bincount(labels.flatten(), minlength=11)
    parts = tuple(int(k) for k in counts[1:].argsort(descending=True)[:2] + 1)  # the two largest regions
    out = torch.cat(list(part_swap(a, source, driving, parts, batch_size=3)))
    standard = torch.cat(list(a.animate(source, driving, "standard", batch_size=3)))  # the source on the driving pose
    mask = swap_mask(labels, parts, (64, 64))
    keep, swap = (mask == 0).expand_as(out), (mask == 1).expand_as(out)
    assert keep.any() and swap.any()
    assert torch.equal(out[keep], x[keep])  # every pixel outside the swapped parts is the driving frame's, exactly
    torch.testing.assert_close(out[swap], standard[swap], atol=1e-6, rtol=0)
    assert (out[swap] - x[swap]).abs().mean() > 1e-2  # and the swapped pixels did change
    blend = (mask > 0) & (mask < 1)
    torch.testing.assert_close(out, x * (1 - mask) + standard * mask, atol=1e-6, rtol=0)
    assert blend.any()  # bilinear edges between the parts and the rest
    # every region swapped: only the background (none here) would stay
    everything = torch.cat(list(part_swap(a, source, driving, tuple(range(1, 11)), batch_size=3)))
    torch.testing.assert_close(everything, standard, atol=1e-6, rtol=0)


def test_parts_argument():
    assert parse_parts("3,1,3", 10) == (1, 3)
    for bad, match in [(None, "needs --parts"), ("", "needs --parts"), ("0", "from 1 to 10"),
                       ("1,11", r"\[11\] out of range"), ("a,b", "comma-separated")]:
        with pytest.raises(ValueError, match=match):
            parse_parts(bad, 10)


def test_cli_segment_and_part_swap_from_our_checkpoint(tmp_path, capsys):
    a = _animator("mraa-sample-64")
    _save_ours(a, tmp_path / "mraa.pt")
    frames = _frames(5)
    _write_video(tmp_path / "driving.mp4", frames)
    out = tmp_path / "seg"
    assert _cli(["segment", "--checkpoint", str(tmp_path / "mraa.pt"), "--video", str(tmp_path / "driving.mp4"),
                 "--out", str(out), "--batch-size", "2"]) == 0
    assert "segmented 5 frame(s)" in capsys.readouterr().out
    info = probe(out / "segmentation.mp4", count_frames=True)
    assert (info.n_frames, info.width, info.height) == (5, 3 * 256, 256)  # frame | overlay | labels, 4x enlarged
    sheet = cv2.imread(str(out / "segmentation.png"))
    assert sheet.shape[1] == 3 * 256 and sheet.shape[0] > 4 * 256  # four frames and the legend
    labels = np.load(out / "labels.npy")
    decoded = [f for f in _decoded(tmp_path / "driving.mp4")]
    expected = torch.cat(list(segment_frames(load_animator(tmp_path / "mraa.pt"), decoded))).numpy()
    np.testing.assert_array_equal(labels, expected)

    cv2.imwrite(str(tmp_path / "source.png"), cv2.cvtColor(_frames(1, seed=3)[0], cv2.COLOR_RGB2BGR))
    common = ["animate", "--checkpoint", str(tmp_path / "mraa.pt"), "--source", str(tmp_path / "source.png"),
              "--driving", str(tmp_path / "driving.mp4"), "--mode", "part-swap"]
    assert _cli(common + ["--parts", "1,3", "--side-by-side", "--out", str(tmp_path / "swap.mp4")]) == 0
    info = probe(tmp_path / "swap.mp4", count_frames=True)
    assert (info.n_frames, info.width, info.height) == (5, 3 * 64, 64)
    with pytest.raises(ValueError, match="needs --parts"):
        _cli(common + ["--out", str(tmp_path / "none.mp4")])
    with pytest.raises(ValueError, match="from 1 to 10"):
        _cli(common + ["--parts", "12", "--out", str(tmp_path / "none.mp4")])


def test_cli_segment_with_an_official_checkpoint_and_an_image(tmp_path):
    a = _animator("mraa-sample-64", seed=1)
    torch.save(to_official(a.cfg, dict(a.model.networks()), {"epoch": 99}), tmp_path / "mraa-cpk.pth.tar")
    cv2.imwrite(str(tmp_path / "frame.png"), cv2.cvtColor(_frames(1, seed=2)[0], cv2.COLOR_RGB2BGR))
    out = tmp_path / "seg"
    assert _cli(["segment", "--checkpoint", str(tmp_path / "mraa-cpk.pth.tar"), "--config", "mraa-sample-64",
                 "--image", str(tmp_path / "frame.png"), "--out", str(out), "--min-size", "64"]) == 0
    assert not (out / "segmentation.mp4").exists()
    assert cv2.imread(str(out / "segmentation.png")).shape[1] == 3 * 64
    expected = torch.cat(list(segment_frames(a, [cv2.imread(str(tmp_path / "frame.png"))[..., ::-1].copy()])))
    np.testing.assert_array_equal(np.load(out / "labels.npy"), expected.numpy())

    fomm = _animator("fomm-sample-64")
    torch.save(to_official(fomm.cfg, dict(fomm.model.networks()), {"epoch": 1}), tmp_path / "fomm-cpk.pth.tar")
    with pytest.raises(ValueError, match="needs an MRAA checkpoint"):
        _cli(["segment", "--checkpoint", str(tmp_path / "fomm-cpk.pth.tar"), "--config", "fomm-sample-64",
              "--image", str(tmp_path / "frame.png"), "--out", str(tmp_path / "fomm")])


def _decoded(path):
    from storage.video import iter_frames
    return list(iter_frames(path, size=(64, 64)))
