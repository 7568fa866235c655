"""Rules for one's own videos: another dataset's rules or a rules file, lengths in frames or in seconds at each
video's own fps, every bad file refused with its name and the field."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from assets.dataset_config import CONFIG_DIR, DatasetConfigError, load_dataset_config, rules_env_var, \
    shipped_config
from assets.rules import apply_rules, rules_in_effect
from assets.shards.checks import check_chunk_rules
from pipelines.cli import main

SAMPLE = shipped_config("sample")


def rules_file(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_shipped_rules_keep_their_fingerprints():
    """New optional fields (durations, own_videos) must not mark every built video stale."""
    assert {d: shipped_config(d).fingerprint() for d in ("taichi", "ted", "sample")} == {
        "taichi": "72b96d8558c14d07", "ted": "b3638a45b6d55535", "sample": "126e2f5008b8f8e4"}


def test_ted_rules_on_own_videos_keep_the_datasets_identity():
    cfg = apply_rules(SAMPLE, "ted")
    assert (cfg.name, cfg.mode, cfg.youtube_ids, cfg.download) == ("sample", "discover", False, SAMPLE.download)
    assert (cfg.crop.size, cfg.crop.style, cfg.crop.min_crop_side) == (384, "upper_body", 192)
    assert (cfg.chunks.min_frames, cfg.chunks.max_frames, cfg.chunks.min_box_size) == (64, 1024, 384)
    assert cfg.chunks.require_upper_body and cfg.detect.stride == 30 and cfg.split.test_fraction == 0.1


def test_taichi_rules_on_own_videos_crop_as_crop_taichi_did():
    cfg = apply_rules(SAMPLE, "taichi")
    assert (cfg.crop.size, cfg.crop.style, cfg.crop.increase, cfg.crop.out_of_frame) == (256, "square", 0.05,
                                                                                          "reject")
    assert (cfg.chunks.min_frames, cfg.chunks.max_frames, cfg.chunks.min_box_size) == (128, 1024, 256)
    assert cfg.chunks.require_full_body and cfg.name == "sample"


def test_own_rules_change_nothing_and_replay_datasets_take_none():
    assert apply_rules(SAMPLE, "sample").fingerprint() == SAMPLE.fingerprint()
    with pytest.raises(DatasetConfigError, match="taichi replays its published csv.*datasets: ted, sample"):
        apply_rules(shipped_config("taichi"), "ted")
    with pytest.raises(DatasetConfigError,
                       match="'vox': neither one of taichi, ted, sample, taichi512 nor a readable file"):
        apply_rules(SAMPLE, "vox")


def test_seconds_become_frames_at_each_videos_own_fps(tmp_path):
    cfg = apply_rules(SAMPLE, rules_file(tmp_path, "extends: ted\ncrop: {size: 256}\n"
                                                   "chunks: {min_seconds: 2, max_seconds: 40}\n"))
    # A duration given without its frame count replaces it: 2 s, not "64 frames and 2 s".
    assert (cfg.chunks.min_frames, cfg.chunks.min_seconds, cfg.chunks.max_seconds) == (None, 2, 40)
    assert cfg.crop.size == 256 and cfg.chunks.min_box_size == 384
    for fps, lo, hi in ((10, 20, 400), (25, 50, 1000), (29.97, 60, 1198), (30000 / 1001, 60, 1198), (60, 120, 2400)):
        at = cfg.at_fps(fps)
        assert (at.chunks.min_frames, at.chunks.max_frames) == (lo, hi), fps
        assert at.chunks.min_seconds is None and at.fingerprint() != cfg.fingerprint()
    # The case: 32 frames are 1.28 s at 25 fps, but 3.2 s of walking at 10 fps. In seconds, 1.28 s is
    # 13 frames at 10 fps.
    assert SAMPLE.at_fps(10).chunks.min_frames == 32
    walk = apply_rules(SAMPLE, rules_file(tmp_path, "chunks: {min_seconds: 1.28}\n", "walk.yaml"))
    assert walk.at_fps(25).chunks.min_frames == 32 and walk.at_fps(10).chunks.min_frames == 13


def test_frame_counts_still_work_and_both_bounds_hold_together(tmp_path):
    frames = apply_rules(SAMPLE, rules_file(tmp_path, "chunks: {min_frames: 40, max_frames: 60}\n"))
    assert frames.at_fps(10) is frames and (frames.chunks.min_frames, frames.chunks.max_frames) == (40, 60)
    both = apply_rules(SAMPLE, rules_file(tmp_path, "chunks: {min_frames: 40, min_seconds: 1}\n", "both.yaml"))
    assert both.at_fps(25).chunks.min_frames == 40 and both.at_fps(50).chunks.min_frames == 50
    assert both.at_fps(50).chunks.max_frames == 96  # the sample's max_frames stays
    clash = apply_rules(SAMPLE, rules_file(tmp_path, "chunks: {min_seconds: 3, max_frames: 50}\n", "clash.yaml"))
    with pytest.raises(ValueError, match="at 25 fps: at least 75 frames but at most 50"):
        clash.at_fps(25)
    stride = apply_rules(SAMPLE, rules_file(tmp_path, "detect: {stride_seconds: 1}\n", "stride.yaml"))
    assert [stride.at_fps(f).detect.stride for f in (30, 25, 0.5)] == [30, 25, 1]


@pytest.mark.parametrize("text, field, message", [
    ("chunks: {min_seconds: -1}\n", "chunks.min_seconds", "greater than 0 (got -1)"),
    ("chunks: {min_secs: 2}\n", "chunks.min_secs", "Extra inputs are not permitted"),
    ("crop: {size: 8}\n", "crop.size", "greater than or equal to 16 (got 8)"),
    ("crop: {style: replay}\n", "(top level)", "crop.style 'replay' needs a manifest's boxes"),
    ("extends: vox\n", "extends", "'taichi', 'ted' or 'sample'"),
    ("name_typo: ted\n", "name_typo", "Extra inputs are not permitted"),
    ("chunks: {min_frames: 100, max_frames: 50}\n", "chunks", "min_frames 100 > max_frames 50"),
])
def test_a_bad_rules_file_names_itself_and_the_field(tmp_path, text, field, message):
    path = rules_file(tmp_path, text)
    with pytest.raises(DatasetConfigError) as err:
        apply_rules(SAMPLE, path)
    assert f"{path}: {field}: " in str(err.value) and message in str(err.value)


def test_unreadable_rules_files_are_named(tmp_path):
    for text, message in (("chunks: [1, 2\n", "cannot read rules file"), ("- ted\n", "a YAML mapping"),
                          ("chunks: 3\n", "chunks: Input should be a valid dictionary")):
        path = rules_file(tmp_path, text)
        with pytest.raises(DatasetConfigError, match=message) as err:
            apply_rules(SAMPLE, path)
        assert path in str(err.value)


def test_a_copy_of_a_dataset_config_is_a_rules_file(tmp_path):
    path = rules_file(tmp_path, (CONFIG_DIR / "ted.yaml").read_text(), "my-ted.yaml")
    assert apply_rules(SAMPLE, path) == apply_rules(SAMPLE, "ted")
    broken = rules_file(tmp_path, (CONFIG_DIR / "ted.yaml").read_text().replace("size: 384", "size: -3"), "b.yaml")
    with pytest.raises(DatasetConfigError, match=r"b\.yaml: crop\.size: "):
        apply_rules(SAMPLE, broken)


def test_own_videos_changes_are_validated_with_the_config(tmp_path):
    text = (CONFIG_DIR / "taichi.yaml").read_text().replace("out_of_frame: reject", "out_of_frame: wrap")
    with pytest.raises(DatasetConfigError, match="own_videos does not give valid discovery rules"):
        load_dataset_config(rules_file(tmp_path, text, "taichi-bad.yaml"))


def test_rules_in_effect_reach_load_dataset_config_and_are_restored(tmp_path, monkeypatch):
    monkeypatch.delenv(rules_env_var("sample"), raising=False)
    monkeypatch.chdir(tmp_path)
    Path("mine.yaml").write_text("crop: {size: 128}\n")
    with rules_in_effect("sample", "mine.yaml") as cfg:
        assert os.environ[rules_env_var("sample")] == str(tmp_path / "mine.yaml")  # absolute, for child processes
        assert load_dataset_config("sample") == cfg and cfg.crop.size == 128
        assert load_dataset_config("ted") == shipped_config("ted")
    assert rules_env_var("sample") not in os.environ and load_dataset_config("sample") == SAMPLE
    with pytest.raises(DatasetConfigError):
        with rules_in_effect("sample", "missing.yaml"):
            pass
    assert rules_env_var("sample") not in os.environ


def test_chunk_rules_check_holds_durations_at_each_chunks_fps(tmp_path):
    cfg = apply_rules(SAMPLE, rules_file(tmp_path, "chunks: {min_seconds: 2, max_seconds: 3}\n"))

    def chunk(n: int, fps: float) -> dict:
        return {"chunk_id": f"v#{0:06d}#{n:06d}", "n_frames": n, "src_start": 0, "src_end": n, "width": 64,
                "height": 64, "split": "train", "fps": fps, "provenance": '{"source": "detector"}'}

    assert check_chunk_rules(cfg, [chunk(20, 10.0), chunk(60, 25.0), chunk(90, 30.0)]).passed
    bad = check_chunk_rules(cfg, [chunk(20, 25.0), chunk(91, 30.0)])
    assert bad.problems == ["v#000000#000020: 20 frames outside [50, 75] at 25 fps",
                            "v#000000#000091: 91 frames outside [60, 90] at 30 fps"]


def test_cli_refuses_bad_rules_before_any_work(tmp_path, capsys):
    path = rules_file(tmp_path, "chunks: {max_seconds: 0}\n")
    data = tmp_path / "data"
    assert main(["rebuild", "sample", "--rules", path, "--data-root", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: chunks.max_seconds: Input should be greater than 0" in err
    assert main(["rebuild", "taichi", "--rules", "ted", "--data-root", str(data)]) == 2
    assert "taichi replays its published csv" in capsys.readouterr().err
    assert not data.exists()
