"""TaiChiHD-512 (MRAA Sec. 4.2): the TaiChi csv replayed at 512 px, keeping only the clips whose box in the
downloaded video supports 512x512 without upscaling; taichi itself keeps every clip, as the reference does."""
import numpy as np

from assets.boxes import Box
from assets.clips.geometry import replay_box
from assets.clips.video_pass import ReplayClip, lacks_resolution, replay_pass
from assets.dataset_config import shipped_config
from storage.frames import decode_frame


def _replay(dataset: str, clips: list[ReplayClip]):
    frames = [np.full((720, 1280, 3), 40 * i, np.uint8) for i in range(3)]
    written = {}
    result = replay_pass(frames, clips, shipped_config(dataset), lambda k, data, meta: written.__setitem__(k, data),
                         lambda c: {})
    return result, written


def _clip(key: str, box: Box) -> ReplayClip:
    return ReplayClip(key, range(0, 3), box, 0, 3, "train")


def test_taichi512_keeps_only_the_clips_with_512_source_pixels_and_says_why_it_drops_the_others():
    cfg = shipped_config("taichi512")
    assert (cfg.crop.size, cfg.crop.replay_min_resolution, cfg.mode) == (512, True, "replay")
    big, small = _clip("vid#big", Box(100, 50, 700, 650)), _clip("vid#small", Box(800, 100, 1200, 500))
    result, written = _replay("taichi512", [big, small])
    assert [a["chunk_id"] for a in result.accepted] == ["vid#big"] and set(written) == {"vid#big"}
    assert decode_frame(written["vid#big"][0]).shape == (512, 512, 3) and len(written["vid#big"]) == 3
    [rejected] = result.rejected
    assert rejected["chunk_id"] == "vid#small"
    assert rejected["reason"] == "box 400x400 px in the downloaded video: not enough resolution for 512x512"


def test_taichi_keeps_every_clip_as_the_reference_does_and_its_rules_are_unchanged():
    small = _clip("vid#small", Box(800, 100, 1200, 500))
    result, written = _replay("taichi", [small])
    assert set(written) == {"vid#small"} and not result.rejected
    assert shipped_config("taichi").fingerprint() == "72b96d8558c14d07"  # nothing built before goes stale


def test_the_rule_is_on_the_downloaded_resolution():
    """A 600 px box of the 1080p reference frame is 400 px in a 720p download: too small for 512."""
    crop = shipped_config("taichi512").crop
    assert not lacks_resolution(replay_box(Box(0, 0, 600, 600), 1920, 1080, 1920, 1080), crop)
    assert lacks_resolution(replay_box(Box(0, 0, 600, 600), 1920, 1080, 1280, 720), crop)
