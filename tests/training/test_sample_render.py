"""Animation samples rendered from real sample shards and real (1-step) checkpoints: files a person can open, one
column per model and mode (an AVD column only for the model with an AVD stage), overlays, determinism, and clear
errors for a checkpoint of another resolution or a dataset without test chunks.

The world (built once for the module, ~20 s on 2 cores): two offline sample videos rebuilt into the `sample`
dataset by the real pipeline (sample-astro-b lands in the test split, sample-cuts in train), then the real trainer
for 1 step each: fomm-sample-64, mraa-sample-64, and the MRAA AVD stage initialised from the latter.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.commands.samples import add_samples_parser
from storage import paths
from storage.root import DataRoot
from storage.video import iter_frames, probe
from training.checkpoint import load_checkpoint, save_checkpoint
from training.evaluation.animate import load_animator
from training.evaluation.sample_render import ModelCheckpoints, animate_with_points, detect_points, render_samples
from training.evaluation.samples import HEADER_PX, choose_pairs
from training.loop.data import DataError, FrameReader, load_split_index

pytestmark = pytest.mark.slow

DATASET, SIZE, FRAMES = "sample", 64, 6
VIDEOS = ("sample-cuts", "sample-astro-b")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(data root, {model: ModelCheckpoints}) with real shards and real 1-step checkpoints."""
    from assets.ingest.sample_source import default_sample_specs, write_sample_videos
    from pipelines.rebuild import rebuild
    from training.train import run

    tmp = tmp_path_factory.mktemp("sample-render")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
        mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
        mp.setenv("MOTIONPIPE_VGG19_WEIGHTS", str(tmp / "no-such-vgg19.pth"))  # random VGG, allowed by the configs
        (tmp / "dagster_home").mkdir()
        videos = write_sample_videos(tmp / "upstream", [s for s in default_sample_specs() if s.video_id in VIDEOS])
        (tmp / "videos.csv").write_text("\n".join(["video_id,url"] + [f"{v},{Path(videos[v]).as_uri()}"
                                                                      for v in VIDEOS]) + "\n")
        data = tmp / "data"
        assert rebuild(DATASET, data_root=str(data), source=str(tmp / "videos.csv"),
                       progress=lambda s: None).dataset_run_ok

        def train(config, out, *extra):
            argv = ["--config", config, "--data-root", str(data), "--out", str(data / "runs" / out),
                    "--max-steps", "1", "--batch-size", "2", "--no-progress", "--image-every", "0", *extra]
            return Path(run(argv).last_checkpoint)

        root = DataRoot(str(data))

        def publish(run_checkpoint: Path, model: str, stage: str = "main") -> Path:
            """Where `motionpipe train` puts a run's last checkpoint: what the samples command takes."""
            published = Path(paths.published_checkpoint(root, DATASET, model, stage))
            published.parent.mkdir(parents=True, exist_ok=True)
            return Path(shutil.copy(run_checkpoint, published))

        fomm = publish(train("fomm-sample-64", "fomm-sample"), "fomm")
        mraa = publish(train("mraa-sample-64", "mraa-sample"), "mraa")
        avd = publish(train("mraa-sample-64", "mraa-sample-avd", "--stage", "avd", "--init", str(mraa)), "mraa", "avd")
    return root, {"fomm": ModelCheckpoints("fomm", fomm), "mraa": ModelCheckpoints("mraa", mraa, avd)}


@pytest.fixture(scope="module")
def rendered(world, tmp_path_factory):
    root, models = world
    out = tmp_path_factory.mktemp("samples")
    return out, render_samples(root, DATASET, [models["fomm"], models["mraa"]], out, n_pairs=2, max_frames=FRAMES)


def _cells(image: np.ndarray, n: int) -> list[np.ndarray]:
    """The n column cells of the first time step (below the label band) of a contact sheet / frame."""
    return [image[HEADER_PX:HEADER_PX + SIZE, i * SIZE:(i + 1) * SIZE] for i in range(n)]


def test_files_open_with_one_column_per_model_and_mode(world, rendered):
    root, _ = world
    out, results = rendered
    test_keys = [c.key for c in load_split_index(root, DATASET, "test").chunks]
    assert [r.pair for r in results] == choose_pairs(DATASET, test_keys, n=2, seed=0)
    columns = ("source", "driving", "fomm/relative", "mraa/relative", "mraa/avd")  # no fomm/avd: FOMM has none
    for r in results:
        assert r.columns == columns and r.frames == FRAMES
        assert Path(r.files.mp4) == out / f"{r.pair.name}.mp4"
        info = probe(r.files.mp4, count_frames=True)
        assert (info.n_frames, info.width, info.height) == (FRAMES, len(columns) * SIZE, HEADER_PX + SIZE)
        decoded = list(iter_frames(r.files.mp4))
        assert len(decoded) == FRAMES and decoded[0].shape == (HEADER_PX + SIZE, len(columns) * SIZE, 3)
        with Image.open(r.files.gif) as gif:
            assert gif.n_frames == FRAMES and gif.size == (len(columns) * SIZE, HEADER_PX + SIZE)
        with Image.open(r.files.png) as png:
            # labels, 4 time steps of the 6 frames, and the caption of whose keypoints are drawn
            assert png.size == (len(columns) * SIZE, HEADER_PX + 4 * SIZE + HEADER_PX)
            sheet = np.asarray(png.convert("RGB"))
        # the contact sheet shows real content in every column, not blank cells
        assert all(cell.std() > 2 for cell in _cells(sheet, len(columns)))
        caption = sheet[-HEADER_PX:]
        assert (caption < 128).any() and caption.mean() > 200  # dark text on the white band


def test_same_pairs_and_model_columns_again_and_overlays_only_where_asked(world, rendered, tmp_path):
    root, models = world
    out, results = rendered
    again = render_samples(root, DATASET, [models["fomm"], models["mraa"]], tmp_path, n_pairs=2, max_frames=FRAMES,
                           input_keypoints=False)
    assert [r.pair for r in again] == [r.pair for r in results]
    index = load_split_index(root, DATASET, "test")
    reader = FrameReader(root)
    for first, second in zip(results, again):
        a, b = (np.asarray(Image.open(r.files.png).convert("RGB")) for r in (first, second))
        ref = next(c for c in index.chunks if c.key == first.pair.source)
        (source,) = reader.read(ref, [first.pair.source_frame])
        top = slice(0, SIZE // 2)  # the cell's top half: below it the row carries its "t=0" label
        src_a, src_b = _cells(a, 1)[0][top], _cells(b, 1)[0][top]
        assert np.array_equal(src_b, source[top])  # no overlay: the source frame exactly as stored
        assert not np.array_equal(src_a, source[top])  # the first model's keypoints drawn on it
        # the model columns (with their own overlays) are reproduced exactly; only the sheet with drawn input
        # keypoints carries the caption saying whose they are
        assert a.shape[0] == b.shape[0] + HEADER_PX
        assert np.array_equal(a[:b.shape[0], 2 * SIZE:], b[:, 2 * SIZE:])


def test_overlay_points_are_the_motion_that_drove_each_frame(world):
    root, models = world
    animator = load_animator(models["fomm"].main, device="cpu")
    index = load_split_index(root, DATASET, "test")
    reader = FrameReader(root)
    source = reader.read(index.chunks[0], [0])[0]
    driving = np.stack(reader.read(index.chunks[1], range(5)))
    frames, points = animate_with_points(animator, source, driving, "relative", batch_size=2)
    assert frames.shape == (5, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert points.shape == (5, 10, 2)  # fomm-sample-64: 10 keypoints
    # relative mode: p_d - p_d0 + p_s, so the first frame is driven by the source's own keypoints
    np.testing.assert_allclose(points[0], detect_points(animator, source[None])[0], atol=1e-5)
    drv = detect_points(animator, driving, batch_size=3)
    np.testing.assert_allclose(points - points[0], drv - drv[0], atol=1e-5)
    assert animator.adapter.__class__.__name__ == "FommAdapter"  # the recorder was taken out again


def test_checkpoint_of_another_resolution_is_refused(world, tmp_path):
    root, models = world
    state = load_checkpoint(models["fomm"].main)
    state["config"]["dataset"]["frame_shape"] = [128, 128, 3]
    other = save_checkpoint(state, tmp_path / "step-000000128.pt")
    with pytest.raises(ValueError, match=r"step-000000128\.pt \(fomm, config fomm-sample-64\) is for 128x128 "
                                         r"frames, but dataset 'sample' has 64x64 frames \(chunk sample-astro-b#"):
        render_samples(root, DATASET, [models["mraa"], ModelCheckpoints("fomm", other)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dataset_without_test_chunks_is_refused(world, tmp_path):
    root, models = world
    catalog = paths.catalog_path(root, DATASET, "chunks")
    table = pq.read_table(catalog)
    i = table.schema.get_field_index("split")
    table = table.set_column(i, table.schema.field(i), pa.array(["train"] * len(table), table.schema.field(i).type))
    other = DataRoot(str(tmp_path / "data"))
    other.makedirs(paths.catalog_path(other, DATASET, "chunks").rsplit("/", 1)[0])
    pq.write_table(table, paths.catalog_path(other, DATASET, "chunks"))
    with pytest.raises(DataError, match=r"cannot render samples of dataset 'sample': .*no chunks in split 'test'"):
        render_samples(other, DATASET, [models["fomm"]], tmp_path / "out")
    with pytest.raises(ValueError, match="must differ"):
        render_samples(root, DATASET, [models["fomm"], models["fomm"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _cli(argv):
    parser = argparse.ArgumentParser(prog="motionpipe")
    add_samples_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["samples", *argv])
    return args.func(args)


def test_cli_takes_the_published_main_and_avd_checkpoints(world, tmp_path, capsys):
    root, models = world
    assert _cli(["--dataset", DATASET, "--data-root", root.base, "--out", str(tmp_path), "--pairs", "1",
                 "--max-frames", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"mraa: {models['mraa'].main} + AVD {models['mraa'].avd}" in printed
    assert f"fomm: {models['fomm'].main} (no AVD checkpoint" in printed
    assert "columns source, driving, fomm/relative, mraa/relative, mraa/avd" in printed
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".gif", ".mp4", ".png"]
    with pytest.raises(FileNotFoundError, match=r"no published checkpoint of tpsmm on sample at .*/models/sample/"
                                                 r"tpsmm/main.pt"):
        _cli(["--dataset", DATASET, "--data-root", root.base, "--models", "tpsmm"])


def test_cli_takes_only_published_checkpoints_never_a_run_folder(world, tmp_path, capsys):
    root, models = world
    data = tmp_path / "data"
    shutil.copytree(Path(root.base) / "datasets", data / "datasets")
    published = data / "models" / DATASET / "mraa"
    published.mkdir(parents=True)
    shutil.copy(models["mraa"].main, published / "main.pt")
    shutil.copy(models["mraa"].avd, published / "avd.pt")
    shutil.copytree(models["mraa"].avd.parent, data / "runs" / "mraa-sample-avd" / "checkpoints")  # not taken
    out = tmp_path / "out"
    assert _cli(["--dataset", DATASET, "--data-root", str(data), "--out", str(out), "--pairs", "1",
                 "--max-frames", "2", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"mraa: {published / 'main.pt'} + AVD {published / 'avd.pt'}" in printed
    assert "columns source, driving, mraa/relative, mraa/avd" in printed and "fomm" not in printed
    (published / "avd.pt").unlink()  # a published main without its avd.pt: relative mode only, no run's AVD mixed in
    assert _cli(["--dataset", DATASET, "--data-root", str(data), "--out", str(out), "--pairs", "1",
                 "--max-frames", "2", "--device", "cpu"]) == 0
    assert "columns source, driving, mraa/relative\n" in capsys.readouterr().out
