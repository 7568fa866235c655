"""Untidy but common inputs: a manifest that is not UTF-8 is refused naming the file, line and column; a UTF-8 BOM
(Excel's "CSV UTF-8") before the header is accepted; an audio-only file is reported as such, not as ffmpeg's
"At least one output file must be specified"."""
from __future__ import annotations

import subprocess

import pytest

from assets.dataset_config import load_dataset_config
from assets.ingest.download import DownloadConfig, download_video
from assets.ingest.manifest_stage import load_manifest
from assets.ingest.manifests import ManifestEncodingError
from assets.ingest.taichi_manifest import load_taichi_csv
from assets.ingest.ted_manifest import load_ted_manifest
from pipelines.cli import main as motionpipe
from storage.root import DataRoot
from storage.video import CorruptVideoError, ffmpeg_exe, probe

BOM = "\ufeff"
TAICHI = ("video_id,start,end,bbox,fps,width,height,partition\n"
          "--Ymqszjv54,1032,1280,205-90-484-369,25.0,640,360,train\n")
TED = "video_id,bbox,fps,width,height,partition\nAAAAAAAAAAA#000010#000200,10-20-400-410,25.0,1280,720,train\n"


def test_non_utf8_manifest_names_file_line_and_column(tmp_path, dagster_home, capsys):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("video_id,url\nok,file:///a.mp4\ncaf\xe9,file:///b.mp4\n".encode("latin-1"))
    assert motionpipe(["rebuild", "sample", "--manifest", str(bad), "--data-root", str(tmp_path / "data")]) != 0
    err = capsys.readouterr().err
    assert f"{bad}: line 3, column 4: byte 0xe9 is not UTF-8" in err and "Traceback" not in err
    for dataset in ("taichi", "ted"):
        with pytest.raises(ManifestEncodingError, match=r"latin1\.csv: line 3, column 4"):
            load_manifest(load_dataset_config(dataset), DataRoot(str(tmp_path)), str(bad))


def test_a_bom_before_the_header_is_not_a_rejected_row(tmp_path):
    own = tmp_path / "own.csv"
    own.write_text(f"{BOM}video_id,url\nclip-a,file:///a.mp4\n", encoding="utf-8")
    manifest = load_manifest(load_dataset_config("sample"), DataRoot(str(tmp_path)), str(own))
    assert [v.video_id for v in manifest.videos] == ["clip-a"] and manifest.errors == []
    (tmp_path / "taichi.csv").write_text(BOM + TAICHI, encoding="utf-8")
    taichi = load_taichi_csv(tmp_path / "taichi.csv", expected_md5=None)
    assert len(taichi.clips) == 1 and taichi.errors == []
    (tmp_path / "ted.csv").write_text(BOM + TED, encoding="utf-8")
    assert len(load_ted_manifest(tmp_path / "ted.csv").clips) == 1
    (tmp_path / "ids.txt").write_text(f"{BOM}AAAAAAAAAAA\nBBBBBBBBBBB\n", encoding="utf-8")
    ids = load_ted_manifest(tmp_path / "ids.txt")
    assert sorted(v.video_id for v in ids.videos) == ["AAAAAAAAAAA", "BBBBBBBBBBB"] and ids.errors == []


def test_an_audio_only_file_is_reported_as_such(tmp_path):
    audio = tmp_path / "talk.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", str(audio)], check=True)
    with pytest.raises(CorruptVideoError, match="no video stream: the file holds audio only") as err:
        probe(audio)
    assert "At least one output file" not in str(err.value)
    record = download_video("talk", audio.as_uri(), tmp_path / "v" / "source", DownloadConfig(enable_file_urls=True),
                            youtube_ids=False)
    assert record.status == "corrupt" and "the file holds audio only" in record.error
