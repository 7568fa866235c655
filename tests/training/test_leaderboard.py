"""Leaderboard against the published tables, the published numbers themselves, and training-curve files."""
import argparse
import csv
import io
import json
import math

import pytest
from PIL import Image

from pipelines.commands.leaderboard import add_leaderboard_parser, leaderboard_command
from storage.root import DataRoot
from training.evaluation.no_motion import NO_MOTION_NAME
from training.reporting import published as pub
from training.reporting.curves import NoEventsError, load_scalars, to_csv, write_curves
from training.reporting.leaderboard import LeaderboardInputError, build_leaderboard, method_of, parse_label

OPENPOSE, REID = "openpose-coco18", "reid-resnet50-market1501"


# ------------------------------------------------------------------------------------------ published


@pytest.mark.parametrize("dataset, method, metric, value, source", [
    ("taichi", "fomm", "L1", 0.063, "FOMM Table 3"),
    ("taichi", "fomm", "AKD", 6.862, "FOMM Table 3"),
    ("taichi", "fomm", "MKR", 0.036, "FOMM Table 3"),
    ("taichi", "fomm", "AED", 0.179, "FOMM Table 3"),
    ("taichi", "monkeynet", "AKD", 10.798, "FOMM Table 3"),
    ("taichi", "mraa", "AKD", 5.45, "MRAA Table 2"),
    ("taichi", "tpsmm", "MKR", 0.018, "TPSMM Table 1"),
    ("ted", "mraa", "AKD", 4.02, "MRAA Table 2"),
    ("ted", "tpsmm", "AED", 0.124, "TPSMM Table 1"),
    ("ted", "fomm", "L1", 0.033, "MRAA Table 2"),
])
def test_published_spot_checks(dataset, method, metric, value, source):
    p = pub.primary(dataset, method, metric)
    assert p is not None and p.value == value and p.source == source


def test_published_extractors_and_variants():
    assert pub.primary("taichi", "fomm", "AKD").label == f"AKD[{OPENPOSE}]"
    assert pub.primary("taichi", "fomm", "MKR").extractor == OPENPOSE
    assert pub.primary("taichi", "fomm", "AED").label == f"AED[{REID}]"
    assert pub.primary("taichi", "fomm", "L1").extractor is None and pub.primary("taichi", "fomm", "L1").label == "L1"
    assert pub.primary("ted", "monkeynet", "L1") is None  # never published on TED
    assert pub.primary("sample", "fomm", "L1") is None
    # re-evaluations are kept but are not the primary comparison
    others = {(p.source, p.value) for p in pub.published("taichi", "fomm", "AED") if not p.primary}
    assert others == {("MRAA Table 2", 0.172), ("TPSMM Table 1", 0.164)}
    assert {p.value for p in pub.published("taichi", "monkeynet", "AED")} == {0.228, 0.288}
    # exactly one primary per dataset x method x metric
    keys = [(p.dataset, p.method, p.metric) for p in pub.PUBLISHED if p.primary]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------------------------------- leaderboard


def _result(model="fomm", dataset="taichi", **metrics):
    return {"model": model, "dataset": dataset, "checkpoint": "runs/x/ckpt.pt", "git": "abc123", **metrics}


def test_labels_and_methods():
    assert parse_label("AKD[mediapipe-pose33]") == ("AKD", "mediapipe-pose33")
    assert parse_label("L1") == ("L1", None)
    assert parse_label("model") is None and parse_label("AKD[") is None
    assert method_of("fomm-taichi-256") == "fomm" and method_of("mraa") == "mraa" and method_of("mine") == "mine"


def test_comparable_vs_not_comparable_and_difference_sign():
    board = build_leaderboard([_result(**{
        "L1": 0.070, f"AKD[{OPENPOSE}]": 6.0, "AKD[mediapipe-pose33]": 12.5, "MKR[mediapipe-pose33]": 0.2,
        "AED[mobilenetv2-imagenet]": 0.4})])
    l1 = board.row("taichi", "fomm", "L1")
    assert l1.comparable and l1.published.value == 0.063
    assert l1.difference == pytest.approx(0.007) and l1.difference > 0  # worse than the paper
    akd = board.row("taichi", "fomm", f"AKD[{OPENPOSE}]")
    assert akd.difference == pytest.approx(6.0 - 6.862) and akd.difference < 0  # better than the paper
    mp = board.row("taichi", "fomm", "AKD[mediapipe-pose33]")
    assert not mp.comparable and mp.difference is None
    assert mp.status == "not comparable (extractor mediapipe-pose33)"
    # the paper's MKR/AED we did not measure like-for-like still appear, as targets
    mkr = board.row("taichi", "fomm", f"MKR[{OPENPOSE}]")
    assert mkr.ours is None and mkr.published.value == 0.036 and mkr.status == "not measured"
    assert board.row("taichi", "fomm", f"AED[{REID}]").published.value == 0.179

    md = board.to_markdown().splitlines()
    header = next(line for line in md if line.startswith("| model |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    # one column per label, paper's extractor first within a metric, units in the header
    assert cols == ["model", "L1 (0–1)", f"AKD[{OPENPOSE}] (px)", "AKD[mediapipe-pose33] (px)",
                    f"MKR[{OPENPOSE}] (fraction)", "MKR[mediapipe-pose33] (fraction)",
                    f"AED[{REID}] (embedding distance²)", "AED[mobilenetv2-imagenet] (embedding distance²)",
                    "× no motion", "source / ours − paper"]
    rows = [line for line in md if line.startswith(("| FOMM", "| fomm"))]
    # the paper's row right above ours; its numbers only in its own extractor's columns
    assert rows == ["| FOMM (paper) | 0.063 | 6.862 | — | 0.036 | — | 0.179 | — | — | FOMM Table 3 |",
                    "| fomm (ours) | 0.0700 | 6.000 | 12.500 | — | 0.2000 | — | 0.4000 | — | "
                    "L1 +0.007, AKD[openpose-coco18] -0.862 |"]


def test_one_table_per_dataset_with_its_resolution_and_one_row_per_model():
    board = build_leaderboard([
        _result(model="fomm-taichi-256", **{"L1": 0.07, f"AKD[{OPENPOSE}]": 7.0}),
        _result(model="mraa-taichi-256", **{"L1": 0.05}),
        _result(model="fomm-ted-384", dataset="ted", **{"L1": 0.04}),
    ])
    md = board.to_markdown()
    assert "## taichi (256×256 frames: AKD in pixels of that size)" in md
    assert "## ted (384×384 frames: AKD in pixels of that size)" in md  # the paper's AKD column
    taichi = md.split("## taichi")[1].split("## ted")[0].splitlines()
    names = [line.split("|")[1].strip() for line in taichi if line.startswith("| ") and "---" not in line][1:]
    assert names == ["FOMM (paper)", "fomm-taichi-256 (ours)", "MRAA (paper)", "mraa-taichi-256 (ours)"]
    ted = md.split("## ted")[1].splitlines()
    assert "| MRAA (paper)" not in md.split("## ted")[1] and any(line.startswith("| FOMM (paper) | 0.033 |")
                                                               for line in ted)
    assert "pixels of the frames as evaluated" in md and "0–1 scale" in md
    only_l1 = build_leaderboard([_result(model="fomm-sample-64", dataset="sample", L1=0.1)]).to_markdown()
    assert "## sample (64×64 frames)\n" in only_l1  # no AKD column: no AKD note


def _numbers_only(node):
    if isinstance(node, dict):
        return all(isinstance(k, str) and _numbers_only(v) for k, v in node.items())
    return isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)


def test_json_is_nested_numbers_only():
    board = build_leaderboard([
        _result(**{"L1": 0.07, "AKD[mediapipe-pose33]": 12.5, "AED[mobilenetv2-imagenet]": float("nan")}),
        _result(model="mraa-ted-384", dataset="ted", **{"L1": 0.03}),
        _result(model="fomm", dataset="sample", **{"L1": 0.1, "AKD[mediapipe-pose33]": 3.0}),
    ])
    data = json.loads(board.to_json())
    assert _numbers_only(data)
    assert data["taichi"]["fomm"]["L1"] == {"ours": 0.07, "published": 0.063, "difference": pytest.approx(0.007)}
    assert data["taichi"]["fomm"]["AKD[mediapipe-pose33]"] == {"ours": 12.5}  # no published beside it
    assert "AED[mobilenetv2-imagenet]" not in data["taichi"]["fomm"]  # NaN: nothing to show
    assert data["ted"]["mraa-ted-384"]["L1"]["published"] == 0.026
    assert data["taichi"]["fomm"][f"AKD[{OPENPOSE}]"] == {"published": 6.862}
    assert data["sample"]["fomm"] == {"L1": {"ours": 0.1}, "AKD[mediapipe-pose33]": {"ours": 3.0}}
    assert "not published" in board.to_markdown()


def test_no_motion_baseline_is_a_row_of_its_own_listed_first_with_every_models_ratio_to_it():
    baseline = _result(model="no motion (source frame)", dataset="sample", **{"L1": 0.2, "MKR[mediapipe-pose33]": 0.0})
    board = build_leaderboard([_result(model="fomm-sample-64", dataset="sample", **{"L1": 0.1}), baseline,
                               _result(model="mraa-sample-64", dataset="sample", **{"L1": 0.3})])
    assert board.no_motion("sample", "L1") == 0.2 and board.no_motion("taichi", "L1") is None
    assert board.ratio_to_no_motion(board.row("sample", "fomm-sample-64", "L1")) == pytest.approx(0.5)
    assert board.ratio_to_no_motion(board.row("sample", "no motion (source frame)", "L1")) is None
    data = json.loads(board.to_json())
    assert data["sample"]["no motion (source frame)"]["L1"] == {"ours": 0.2}
    assert data["sample"]["mraa-sample-64"]["L1"] == {"ours": 0.3, "ratio_to_no_motion": pytest.approx(1.5)}
    md = board.to_markdown().splitlines()
    rows = [line for line in md if line.startswith(("| fomm", "| mraa", "| no motion"))]
    assert rows == ["| no motion (source frame) | 0.2000 | 0.0000 | — | "
                    "baseline: the source frame as every prediction |",
                    "| fomm-sample-64 (ours) | 0.1000 | — | L1 0.50 | not published |",
                    "| mraa-sample-64 (ours) | 0.3000 | — | L1 1.50 | not published |"]


def test_bad_results_are_named():
    with pytest.raises(LeaderboardInputError, match="result #0.*'model'"):
        build_leaderboard([{"dataset": "taichi", "L1": 0.1}])
    with pytest.raises(LeaderboardInputError, match="b.json: L1 is not a number"):
        build_leaderboard([_result(L1="0.1")], sources=["b.json"])
    with pytest.raises(LeaderboardInputError, match="second result for dataset 'taichi' model 'fomm'.*a.json"):
        build_leaderboard([_result(L1=0.1), _result(L1=0.2)], sources=["a.json", "b.json"])


def test_cli_collects_evaluations_and_writes_atomically(tmp_path, capsys):
    for run, res in {"taichi-fomm": _result(L1=0.065, **{f"AKD[{OPENPOSE}]": 7.0}),
                     "ted-tpsmm": _result(model="tpsmm", dataset="ted", L1=0.03)}.items():
        (tmp_path / "evaluations" / run).mkdir(parents=True)
        (tmp_path / "evaluations" / run / "metrics.json").write_text(json.dumps(res))
    parser = argparse.ArgumentParser()
    add_leaderboard_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["leaderboard", "--data-root", str(tmp_path)])
    assert args.func(args) == 0
    out = tmp_path / "leaderboard"
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.json", "leaderboard.md",  # no temp files left
                                                      "per_video.csv", "per_video.md", "plots"]
    assert sorted(str(p.relative_to(out / "plots")) for p in (out / "plots").rglob("*.png")) == [
        "taichi/scores.png", "ted/scores.png"]  # no curves.csv under models/: no training-loss picture
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["taichi"]["fomm"][f"AKD[{OPENPOSE}]"]["difference"] == pytest.approx(7.0 - 6.862)
    assert data["ted"]["tpsmm"]["L1"]["published"] == 0.027
    assert "6.862" in capsys.readouterr().out

    empty = argparse.Namespace(data_root=str(tmp_path / "nothing"), out=None)
    with pytest.raises(FileNotFoundError, match="no evaluations found"):
        leaderboard_command(empty)


def test_per_video_means_from_per_frame_tables_traced_to_each_video(tmp_path, capsys):
    """Two evaluations' per_frame.parquet (as the scorer writes them) -> per_video.csv/.md: each video's mean over
    its counted frames (NaN frames left out, frames = all scored frames), readable by the CLI's --per-video."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    nan = float("nan")
    frames = {"fomm-sample-64": {"video_id": ["yt_A", "yt_A", "yt_A", "yt_B"], "L1": [0.1, 0.2, 0.3, 0.5],
                                 "AKD[mediapipe-pose33]": [2.0, nan, 4.0, nan]},
              "no motion (source frame)": {"video_id": ["yt_A", "yt_A", "yt_A", "yt_B"], "L1": [0.4, 0.4, 0.4, 0.8]}}
    for folder, (model, cols) in zip(("fomm", "no-motion"), frames.items()):
        run = tmp_path / "evaluations" / "sample" / folder
        run.mkdir(parents=True)
        n = len(cols["video_id"])
        pq.write_table(pa.table({"chunk": [f"{v}#c" for v in cols["video_id"]], "frame": list(range(n)), **cols}),
                       run / "per_frame.parquet")
        (run / "metrics.json").write_text(json.dumps({"L1": 0.2, "model": model, "dataset": "sample"}))
    parser = argparse.ArgumentParser()
    add_leaderboard_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["leaderboard", "--data-root", str(tmp_path), "--per-video"])
    assert args.func(args) == 0

    rows = list(csv.DictReader((tmp_path / "leaderboard" / "per_video.csv").open()))
    assert [(r["video_id"], r["model"], r["frames"]) for r in rows] == [
        ("yt_A", "fomm-sample-64", "3"), ("yt_A", "no motion (source frame)", "3"),
        ("yt_B", "fomm-sample-64", "1"), ("yt_B", "no motion (source frame)", "1")]
    assert float(rows[0]["L1"]) == pytest.approx(0.2) and float(rows[0]["AKD[mediapipe-pose33]"]) == 3.0
    assert rows[2]["AKD[mediapipe-pose33]"] == ""  # no counted frame: empty, never 0
    assert rows[1]["AKD[mediapipe-pose33]"] == "" and float(rows[3]["L1"]) == pytest.approx(0.8)
    md = (tmp_path / "leaderboard" / "per_video.md").read_text()
    assert "| yt_A | fomm-sample-64 | 3 | 0.2000 | 3.000 |" in md
    assert "| yt_B | fomm-sample-64 | 1 | 0.5000 | — |" in md
    printed = capsys.readouterr().out
    assert printed.startswith("# Per-video scores") and "per_video.csv" in printed


def _colour_pixels(image, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    import numpy as np
    a = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(axis=2) <= tolerance).sum())


def test_dvc_plot_images_overlay_every_models_losses_and_scores(tmp_path):
    """Issue 13: the pictures `dvc plots show` displays offline: one training-loss panel per term with a line per
    model (read back from each published model's curves.csv), and the scores with the baseline and the paper."""
    from training.reporting.overlay_plots import read_curves_csv, write_overlay_plots

    root = DataRoot(str(tmp_path))
    for model, scale in (("fomm", 1.0), ("mraa", 2.0)):
        series = {"loss/total": [(s, scale * 10 / s) for s in range(1, 40)],
                  "loss/perceptual": [(s, scale * 8 / s) for s in range(1, 40)], "lr/generator": [(1, 2e-4)]}
        (tmp_path / "models" / "sample" / model).mkdir(parents=True)
        (tmp_path / "models" / "sample" / model / "curves.csv").write_text(to_csv(series))
    assert set(read_curves_csv((tmp_path / "models/sample/fomm/curves.csv").read_text())) == {
        "loss/total", "loss/perceptual"}
    board = build_leaderboard([_result(model="fomm-sample-64", dataset="sample", L1=0.1),
                               _result(model="mraa-sample-64", dataset="sample", L1=0.09),
                               _result(model=NO_MOTION_NAME, dataset="sample", L1=0.19)])
    files = write_overlay_plots(root, board, str(tmp_path / "leaderboard"))
    assert set(files) == {"sample/training_losses", "sample/scores"}
    with Image.open(files["sample/training_losses"]) as im:
        assert im.width >= 900  # two panels side by side
        # matplotlib's first two line colours: one line per model in every panel
        assert _colour_pixels(im, (31, 119, 180)) > 200 and _colour_pixels(im, (255, 127, 14)) > 200
    with Image.open(files["sample/scores"]) as im:
        assert _colour_pixels(im, (153, 153, 153), 10) > 200  # the no-motion bar, grey

    with pytest.raises(ValueError, match="first column must be 'step'"):
        read_curves_csv("loss/total\n1\n")


# --------------------------------------------------------------------------------------------- curves


def test_curves_png_and_csv_from_event_file(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    log = tmp_path / "run" / "tensorboard"
    with SummaryWriter(str(log)) as w:
        for step in (10, 20, 30):
            w.add_scalar("loss/perceptual", 100.0 / step, step)
            w.add_scalar("loss/equivariance", 0.5, step)
            w.add_scalar("lr/generator", 2e-4, step)
        w.add_scalar("perf/pairs_per_s", 12.0, 30)
    series = load_scalars(log)
    assert series["loss/perceptual"] == [(10, 10.0), (20, 5.0), (30, pytest.approx(100 / 30))]

    rows = list(csv.reader(io.StringIO(to_csv(series))))
    assert rows[0] == ["step", "loss/equivariance", "loss/perceptual", "lr/generator", "perf/pairs_per_s"]
    assert [r[0] for r in rows[1:]] == ["10", "20", "30"]
    assert rows[1][4] == "" and float(rows[3][4]) == 12.0

    files = write_curves(log, str(tmp_path / "plots"))
    with Image.open(files.png) as im:
        assert im.format == "PNG" and im.width >= 600 and im.height >= 300
    assert open(files.csv).read() == to_csv(series)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curves.csv", "curves.png"]

    (tmp_path / "empty").mkdir()
    with pytest.raises(NoEventsError, match="no scalars"):
        load_scalars(tmp_path / "empty")
