"""A rebuild of a real multi-person video (two people from scikit-image's photographs, multi_person_scene) through
Dagster, yt-dlp, ffmpeg, the SSD detector and mediapipe: every chunk follows one person, both people get chunks,
the video's detection rate is recorded under honest names, and every recorded crop box is the one the frames
were cut with. The chunks are kept as a contact sheet (`multi-person-contact-sheet.png` in the test's tmp dir).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from assets.boxes import Box, crop_frame
from assets.clips.contact_sheet import SheetRow, contact_sheet
from assets.clips.geometry import resize_antialiased
from pipelines.rebuild import rebuild
from storage.frames import decode_frame, encode_frame
from storage.video import iter_frames
from tests import multi_person_scene as scene

pytestmark = pytest.mark.slow
VIDEO = "two-people"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi-person")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(tmp / "dagster_home"))
    mp.setenv("MOTIONPIPE_CACHE", str(tmp / "cache"))
    url = Path(scene.write_video(tmp / f"{VIDEO}.mp4")).resolve().as_uri()
    (tmp / "videos.csv").write_text(f"video_id,url\n{VIDEO},{url}\n")
    result = rebuild("sample", data_root=str(tmp / "data"), source=str(tmp / "videos.csv"), detector="ssd",
                     progress=lambda s: None)
    yield result, tmp / "data/datasets/sample", tmp
    mp.undo()


@pytest.fixture(scope="module")
def samples(rebuilt):
    """key -> (metadata, [encoded frames]) of every published chunk, read from the shards as a user would."""
    _, base, _ = rebuilt
    out = {}
    for s in wds.WebDataset([str(p) for p in sorted(Path(base, "shards").glob("*.tar"))], shardshuffle=False):
        meta = json.loads(s["json"])
        out[s["__key__"]] = (meta, [s[k] for k in sorted(k for k in s if k.endswith(".jpg"))])
    return out


def _person_of_chunk(detections: list[dict], meta: dict) -> set[str | None]:
    """Whose body each detection of the chunk's track (within the chunk's frames) shows."""
    rows = [d for d in detections if d["track"] == meta["track"] and meta["src_start"] <= d["frame"] < meta["src_end"]]
    assert rows, meta["chunk_id"]
    return {scene.person_in((d["x0"], d["y0"], d["x1"], d["y1"]), d["frame"]) for d in rows}


def test_every_chunk_follows_one_person_and_both_people_have_chunks(rebuilt, samples):
    result, base, tmp = rebuilt
    assert result.dataset_run_ok
    detections = pq.read_table(base / f"videos/{VIDEO}/detections.parquet").to_pylist()
    people = {}
    for key, (meta, frames) in samples.items():
        who = _person_of_chunk(detections, meta)
        assert len(who) == 1 and None not in who, (key, who)  # one person, the same one, in every sampled frame
        people[key] = who.pop()
        assert len(frames) == meta["n_frames"] >= 32
    assert set(people.values()) == set(scene.PEOPLE), people
    assert len({m["track"] for m, _ in samples.values()}) >= 2
    rows = [SheetRow(f"{k}  track {samples[k][0]['track']}  {people[k]}", [decode_frame(f) for f in samples[k][1]])
            for k in sorted(samples)]
    sheet = contact_sheet(rows)
    path = tmp / "multi-person-contact-sheet.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"contact sheet: {path}")


def test_the_detection_rate_is_recorded_under_honest_names(rebuilt):
    _, base, _ = rebuilt
    stamp = json.loads((base / f"videos/{VIDEO}/video_pass.json").read_text())
    assert "n_detections" not in stamp  # it counted sampled frames, not detections
    assert stamp["n_sampled_frames"] == len(range(0, scene.N_FRAMES, 5))
    assert stamp["detection_rate"] == pytest.approx(stamp["n_frames_with_person"] / stamp["n_sampled_frames"],
                                                    abs=1e-4)
    assert stamp["detection_rate"] >= 0.9 and stamp["n_person_boxes"] >= 1.5 * stamp["n_sampled_frames"]
    assert stamp["n_tracks"] >= 2 and stamp["detector"].startswith("ssd-mobilenet-v2")
    chunks = json.loads((base / f"videos/{VIDEO}/chunks.json").read_text())
    assert chunks["detection"]["sampled_frames"] == stamp["n_sampled_frames"]
    assert "sampled frames" in chunks["detection"]["summary"]


def test_every_recorded_box_is_the_box_the_frames_were_cut_with(rebuilt, samples):
    _, base, _ = rebuilt
    source = next(Path(base, f"videos/{VIDEO}").glob("source.*"))
    frames = list(iter_frames(str(source)))
    for key, (meta, stored) in samples.items():
        box = meta["box"]
        assert box[2] - box[0] == box[3] - box[1], (key, box)  # square, like the crop
        for k, data in enumerate(stored):
            crop = crop_frame(frames[meta["src_start"] + k], Box.from_list(box), meta["out_of_frame"])
            again = encode_frame(resize_antialiased(crop, meta["width"]), meta["frame_format"], meta["jpeg_quality"])
            assert again == data, (key, k)
    assert np.asarray(frames[0]).shape == (scene.H, scene.W, 3)
