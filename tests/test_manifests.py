import collections
import hashlib
import re
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from assets.ingest.http_server import serve_directory
from assets.ingest.manifests import CLIP_SCHEMA, Manifest, ManifestClip
from assets.ingest.taichi_manifest import (
    TAICHI_CSV_URL,
    TAICHI_MD5,
    ManifestChecksumError,
    load_taichi_csv,
    parse_taichi_csv,
)
from assets.ingest.ted_manifest import (
    SearchError,
    check_licenses,
    parse_clip_list,
    rejected_as_errors,
    load_ted_manifest,
    search_video_ids,
    ted_candidates_from_ids,
    ted_manifest_from_ids,
)
from assets.shards.splits import video_disjoint_split

SHARED = Path("/work/shared/manifests")
HEADER = "video_id,start,end,bbox,fps,width,height,partition"
# Rows modelled on the published taichi-metadata.csv (same ids, spans, boxes, fps and sizes).
GOOD = [
    "u6rJiF-gPx8,80,300,118-82-508-472,29.97,640,480,train",
    "u6rJiF-gPx8,575,717,168-99-488-419,29.97,640,480,train",
    "aDyyTMUBoLE,164,351,640-162-1216-738,25.0,1920,1080,test",
    "ab28GAufK8o,261,596,400-100-912-612,30.0,1280,720,train",
]


def csv_text(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


# -- taichi csv parsing --------------------------------------------------------------------------------------------

def test_parse_good_rows_into_clips_and_videos():
    m = parse_taichi_csv(csv_text(*GOOD))
    assert m.errors == []
    assert [(c.video_id, c.start, c.end) for c in m.clips] == [
        ("u6rJiF-gPx8", 80, 300), ("u6rJiF-gPx8", 575, 717), ("aDyyTMUBoLE", 164, 351), ("ab28GAufK8o", 261, 596)]
    first = m.clips[0]
    assert first.bbox == (118, 82, 508, 472) and first.ref_fps == 29.97
    assert (first.ref_width, first.ref_height, first.split, first.row) == (640, 480, "train", 1)
    assert str(first.key) == "u6rJiF-gPx8#000080#000300"
    videos = {v.video_id: v for v in m.videos}
    assert list(videos) == ["u6rJiF-gPx8", "aDyyTMUBoLE", "ab28GAufK8o"]
    assert videos["aDyyTMUBoLE"].url == "https://www.youtube.com/watch?v=aDyyTMUBoLE"
    assert (videos["aDyyTMUBoLE"].split, videos["aDyyTMUBoLE"].ref_height) == ("test", 1080)
    assert m.sha256 == hashlib.sha256(csv_text(*GOOD).encode()).hexdigest()


BAD = {
    "bad id (10 chars)": ("u6rJiF-gPx,80,300,118-82-508-472,29.97,640,480,train", "11-character YouTube id"),
    "shell in id": ("abc; rm -rf /,80,300,118-82-508-472,29.97,640,480,train", "11-character YouTube id"),
    "path in id": ("../../etc/p,80,300,118-82-508-472,29.97,640,480,train", "11-character YouTube id"),
    "float start": ("u6rJiF-gPx8,80.5,300,118-82-508-472,29.97,640,480,train", "start is not a non-negative integer"),
    "end before start": ("u6rJiF-gPx8,300,300,118-82-508-472,29.97,640,480,train", "end (300) must be greater"),
    "short bbox": ("u6rJiF-gPx8,80,300,118-82-508,29.97,640,480,train", "bbox is not"),
    "empty bbox": ("u6rJiF-gPx8,80,300,508-82-118-472,29.97,640,480,train", "bbox has no area"),
    "zero fps": ("u6rJiF-gPx8,80,300,118-82-508-472,0,640,480,train", "fps must be > 0"),
    "nan fps": ("u6rJiF-gPx8,80,300,118-82-508-472,nan,640,480,train", "fps must be > 0"),
    "zero width": ("u6rJiF-gPx8,80,300,118-82-508-472,29.97,0,480,train", "width must be > 0"),
    "unknown partition": ("u6rJiF-gPx8,80,300,118-82-508-472,29.97,640,480,val", "unknown partition 'val'"),
    "column count": ("u6rJiF-gPx8,80,300,118-82-508-472,29.97,640,480", "expected 8 columns, found 7"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_malformed_row_is_reported_and_the_rest_proceed(case):
    row, reason = BAD[case]
    m = parse_taichi_csv(csv_text(GOOD[0], row, GOOD[2]))
    assert len(m.clips) == 2 and {c.row for c in m.clips} == {1, 3}
    [error] = m.errors
    assert (error.row, error.line, error.text) == (2, 3, row)
    assert reason in error.reason


def test_row_numbers_skip_blank_lines_but_line_numbers_do_not():
    m = parse_taichi_csv(HEADER + "\n\n" + GOOD[0] + "\n\n" + BAD["zero fps"][0] + "\n")
    [error] = m.errors
    assert (error.row, error.line) == (2, 5)


def test_duplicate_rows_are_reported_once_and_dropped():
    m = parse_taichi_csv(csv_text(GOOD[0], GOOD[1], GOOD[0]))
    assert [c.row for c in m.clips] == [1, 2]
    [error] = m.errors
    assert error.row == 3 and error.reason == "duplicate of row 1"


def test_video_in_both_partitions_rejects_all_its_rows():
    leak = GOOD[1].replace(",train", ",test")
    m = parse_taichi_csv(csv_text(GOOD[0], leak, GOOD[2]))
    assert [c.video_id for c in m.clips] == ["aDyyTMUBoLE"]
    assert [e.row for e in m.errors] == [1, 2]
    assert all("more than one partition (test, train)" in e.reason for e in m.errors)
    assert [v.video_id for v in m.videos] == ["aDyyTMUBoLE"]


def test_wrong_header_is_a_file_level_error():
    with pytest.raises(ValueError, match="lacks column"):
        parse_taichi_csv("video_id,start,end\nu6rJiF-gPx8,1,2\n")
    with pytest.raises(ValueError, match="expected exactly"):
        parse_taichi_csv(HEADER + ",person_id\n" + GOOD[0] + ",x\n")
    with pytest.raises(ValueError, match="empty manifest"):
        parse_taichi_csv("\n\n")


def test_arrow_round_trip_and_parquet(tmp_path):
    m = parse_taichi_csv(csv_text(*GOOD, BAD["zero fps"][0]), source="mem")
    tables = m.to_arrow()
    assert tables.clips.schema.equals(CLIP_SCHEMA)  # metadata aside, the declared schema
    assert tables.clips.num_rows == 4 and tables.videos.num_rows == 3 and tables.errors.num_rows == 1
    pq.write_table(tables.clips, tmp_path / "clips.parquet")
    clips = pq.read_table(tmp_path / "clips.parquet")
    assert clips.schema.metadata[b"sha256"] == m.sha256.encode()
    back = Manifest.from_arrow(tables._replace(clips=clips))
    assert back == m
    assert isinstance(back.clips[0], ManifestClip) and back.clips[0].bbox == (118, 82, 508, 472)


# -- taichi loading: path, URL, cache, md5 -------------------------------------------------------------------------

def test_user_file_with_any_md5_records_digests(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(csv_text(*GOOD))
    m = load_taichi_csv(path, expected_md5=None)
    data = path.read_bytes()
    assert (m.md5, m.sha256) == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert m.source == str(path) and len(m.clips) == 4


def test_md5_mismatch_names_source_and_both_hashes(tmp_path):
    path = tmp_path / "edited.csv"
    path.write_text(csv_text(*GOOD))
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ManifestChecksumError) as info:
        load_taichi_csv(path)
    message = str(info.value)
    assert str(path) in message and actual in message and TAICHI_MD5 in message


def test_missing_user_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_taichi_csv(tmp_path / "nope.csv")


def test_default_source_is_the_public_csv():
    assert TAICHI_CSV_URL == (
        "https://raw.githubusercontent.com/AliaksandrSiarohin/video-preprocessing/master/taichi-metadata.csv")


def test_fetch_verifies_then_caches_atomically(tmp_path):
    served = tmp_path / "srv"
    served.mkdir()
    data = csv_text(*GOOD).encode()
    (served / "taichi-metadata.csv").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    cache = tmp_path / "cache"
    with serve_directory(served) as base:
        url = f"{base}/taichi-metadata.csv"
        with pytest.raises(ManifestChecksumError, match=re.escape(url)):
            load_taichi_csv(url, cache, expected_md5="0" * 32)
        assert not cache.exists() or list(cache.iterdir()) == []  # a bad file is never cached
        m = load_taichi_csv(url, cache, expected_md5=md5)
    assert len(m.clips) == 4 and m.md5 == md5
    assert [p.name for p in cache.iterdir()] == ["taichi-metadata.csv"]
    # the server is gone: the verified cache answers
    again = load_taichi_csv(url, cache, expected_md5=md5)
    assert again == m


def test_unreachable_url_is_a_clear_error(tmp_path):
    port = _closed_port()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        load_taichi_csv(f"http://127.0.0.1:{port}/taichi-metadata.csv", tmp_path, timeout=5)


@pytest.mark.skipif(not (SHARED / "taichi-metadata.csv").exists(), reason="published taichi csv not available")
def test_published_taichi_csv():
    m = load_taichi_csv(SHARED / "taichi-metadata.csv")
    assert m.md5 == TAICHI_MD5 and m.errors == []
    assert len(m.clips) == 3334 and len(m.videos) == 280
    assert collections.Counter(v.split for v in m.videos) == {"train": 252, "test": 28}
    assert collections.Counter(c.split for c in m.clips) == {"train": 3049, "test": 285}
    lengths = [c.end - c.start for c in m.clips]
    assert (min(lengths), max(lengths)) == (128, 1024)


# -- TED -----------------------------------------------------------------------------------------------------------

def test_clip_list_accepts_both_span_forms(tmp_path):
    path = tmp_path / "ted.csv"
    path.write_text(csv_text(
        "VM6HZqQKhok#016609#016737,,,104-10-665-570,29.97,1280,720,train",  # span carried by the id
        "4E_1AB1rsSw,14854,15029,288-75-746-532,25,1920,1080,test",        # separate columns
        "4E_1AB1rsSw#000001#000002,300,500,288-75-746-532,25,1920,1080,test",  # columns win over the id
    ))
    m = parse_clip_list(path)
    assert m.errors == [] and m.dataset == "ted"
    assert [(c.video_id, c.start, c.end, c.split) for c in m.clips] == [
        ("VM6HZqQKhok", 16609, 16737, "train"), ("4E_1AB1rsSw", 14854, 15029, "test"),
        ("4E_1AB1rsSw", 300, 500, "test")]
    assert m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_clip_list_without_start_end_columns(tmp_path):
    path = tmp_path / "ted.csv"
    path.write_text("video_id,bbox,fps,width,height,partition\n"
                    "VM6HZqQKhok#016609#016737,104-10-665-570,30,1280,720,train\n"
                    "VM6HZqQKhok,104-10-665-570,30,1280,720,train\n")
    m = parse_clip_list(path)
    assert [(c.start, c.end) for c in m.clips] == [(16609, 16737)]
    [error] = m.errors
    assert error.row == 2 and "no span" in error.reason


def test_clip_list_refuses_the_published_zero_span_rows(tmp_path):
    path = tmp_path / "ted.csv"
    path.write_text(csv_text("VM6HZqQKhok#016609#016737,0,0,104-10-665-570,10.0,944,944,train",
                             "bad#1#2,5,9,104-10-665-570,10.0,944,944,train"))
    m = parse_clip_list(path)
    assert m.clips == []
    assert "start=end=0" in m.errors[0].reason and "trap" in m.errors[0].reason
    assert "11-character YouTube id" in m.errors[1].reason


@pytest.mark.skipif(not (SHARED / "ted-metadata-as-published.csv").exists(), reason="published ted csv not available")
def test_published_ted_csv_yields_no_clips():
    m = parse_clip_list(SHARED / "ted-metadata-as-published.csv")
    assert m.clips == [] and len(m.errors) == 1320
    assert all("start=end=0" in e.reason for e in m.errors)


def test_id_list_comments_blanks_invalid_and_duplicates(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# TED candidates\nVM6HZqQKhok\n\n4E_1AB1rsSw   # a comment\nabc; rm -rf /\nVM6HZqQKhok\n")
    ids, errors = ted_candidates_from_ids(path)
    assert ids == ["VM6HZqQKhok", "4E_1AB1rsSw"]
    assert [(e.line, e.row) for e in errors] == [(5, 3), (6, 4)]
    assert "11-character YouTube id" in errors[0].reason and errors[1].reason == "duplicate of line 2"


def _ids(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:11] for i in range(n)]


def test_split_is_deterministic_disjoint_and_about_ten_percent():
    ids = _ids(411)
    split = video_disjoint_split(ids, 0.1, seed=0)
    assert split == video_disjoint_split(list(reversed(ids)), 0.1, seed=0)
    assert set(split) == set(ids) and set(split.values()) == {"train", "test"}
    n_test = sum(s == "test" for s in split.values())
    assert 25 <= n_test <= 60  # binomial(411, 0.1): mean 41, sd 6
    assert video_disjoint_split(ids, 0.1, seed=1) != split


def test_split_is_stable_when_ids_are_added():
    ids = _ids(200)
    before = video_disjoint_split(ids, 0.1, seed=3)
    after = video_disjoint_split(ids + _ids(300, salt="new"), 0.1, seed=3)
    assert all(after[v] == s for v, s in before.items())


def test_split_extremes_and_bounds():
    ids = _ids(20)
    assert set(video_disjoint_split(ids, 0.0).values()) == {"train"}
    assert set(video_disjoint_split(ids, 1.0).values()) == {"test"}
    with pytest.raises(ValueError):
        video_disjoint_split(ids, 1.5)


def _fake_youtube(infos: dict):
    """Stand-in for YouTube's per-video metadata (the one thing that cannot run offline)."""
    def fetch(video_id):
        if isinstance(infos[video_id], Exception):
            raise infos[video_id]
        return infos[video_id]
    return fetch


def test_license_filter_keeps_creative_commons_and_records_rejections():
    infos = {
        "VM6HZqQKhok": {"license": "Creative Commons Attribution license (reuse allowed)", "title": "a talk",
                        "duration": 720, "channel": "TEDx Talks"},
        "4E_1AB1rsSw": {"license": None, "title": "standard licence"},
        "u6rJiF-gPx8": {"license": "Standard YouTube License"},
        "aDyyTMUBoLE": RuntimeError("ERROR: [youtube] aDyyTMUBoLE: Video unavailable"),
    }
    accepted, rejected = check_licenses(list(infos) + ["bad id"], "creative commons", _fake_youtube(infos))
    assert [(c.video_id, c.channel, c.duration) for c in accepted] == [("VM6HZqQKhok", "TEDx Talks", 720)]
    reasons = {r.video_id: r.reason for r in rejected}
    assert "license None" in reasons["4E_1AB1rsSw"]
    assert "'Standard YouTube License' does not match 'creative commons'" in reasons["u6rJiF-gPx8"]
    assert "Video unavailable" in reasons["aDyyTMUBoLE"]
    assert "11-character" in reasons["bad id"]
    errors = rejected_as_errors(rejected)
    assert [e.row for e in errors] == [1, 2, 3, 4] and errors[0].text == "4E_1AB1rsSw"


def test_license_filter_as_regex_and_off():
    infos = {"VM6HZqQKhok": {"license": "Creative Commons Attribution-NonCommercial-NoDerivs"},
             "4E_1AB1rsSw": {"license": "Creative Commons Attribution license (reuse allowed)"}}
    accepted, _ = check_licenses(infos, re.compile(r"NonCommercial"), _fake_youtube(infos))
    assert [c.video_id for c in accepted] == ["VM6HZqQKhok"]
    accepted, rejected = check_licenses(infos, None, _fake_youtube(infos))
    assert len(accepted) == 2 and rejected == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_search_without_network_names_the_query():
    proxy = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(SearchError, match=r"YouTube search 'TED talks' failed .*needs network access"):
        search_video_ids("TED talks", 3, {"proxy": proxy, "socket_timeout": 5})


def test_discovery_manifest_from_ids():
    ids = _ids(50)
    ids = [i.replace("a", "_") for i in ids]
    m = ted_manifest_from_ids(ids + ids[:3], "ids.txt", test_fraction=0.2, seed=7, min_height=720)
    assert [v.video_id for v in m.videos] == ids
    split = video_disjoint_split(ids, 0.2, seed=7)
    assert all(v.split == split[v.video_id] and v.ref_height == 720 and v.source == "ids.txt" for v in m.videos)
    assert m.clips == [] and m.to_arrow().videos.num_rows == 50


def test_load_ted_manifest_sniffs_clip_lists_and_id_lists(tmp_path):
    clips = tmp_path / "clips.csv"
    clips.write_text(csv_text("VM6HZqQKhok,10,200,104-10-665-570,30,1280,720,test"))
    m = load_ted_manifest(clips)
    assert [(c.video_id, c.split) for c in m.clips] == [("VM6HZqQKhok", "test")]
    ids = tmp_path / "ids.txt"
    ids.write_text("# ids\nVM6HZqQKhok\nnot-an-id\n")
    m = load_ted_manifest(ids, test_fraction=1.0, min_height=720)
    assert m.clips == [] and [(v.video_id, v.split, v.ref_height) for v in m.videos] == [("VM6HZqQKhok", "test", 720)]
    assert [e.line for e in m.errors] == [3]
    assert m.sha256 == hashlib.sha256(ids.read_bytes()).hexdigest()
