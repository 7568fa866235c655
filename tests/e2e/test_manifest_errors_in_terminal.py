"""A manifest that cannot be used says why in the terminal: its rejected rows counted per reason, each reason whole,
with the first rows as written (the published TED file: every row start=end=0), and an unreachable TaiChi csv
keeps motionpipe's own hint. Real CLI and Dagster instance; the host is unresolvable for real (.invalid)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main as motionpipe

pytestmark = pytest.mark.slow
# The published TED file's rows (start=end=0), and one with a bad id.
TED_ROWS = [f"VM6HZqQKhok#0{n}609#0{n}737,0,0,104-10-665-570,10.0,944,944,train" for n in range(10, 16)] + \
    ["bad#1#2,5,9,104-10-665-570,10.0,944,944,train"]


def test_a_rejected_ted_file_shows_counts_per_reason_and_first_rows(tmp_path, dagster_home, capsys):
    ted = tmp_path / "ted-metadata.csv"
    ted.write_text("video_id,start,end,bbox,fps,width,height,partition\n" + "\n".join(TED_ROWS) + "\n")
    rc = motionpipe(["rebuild", "ted", "--manifest", str(ted), "--data-root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{ted}: none of its 7 rows could be used, so nothing was changed" in err
    assert ("6 rows: start=end=0 selects no frames (the published ted-metadata.csv trap: its spans and boxes refer "
            "to unpublished intermediate videos); use the corrected clip list") in err
    assert f"e.g. row 1 (line 2): {TED_ROWS[0]}" in err and f"e.g. row 2 (line 3): {TED_ROWS[1]}" in err
    assert "1 row: not an 11-character YouTube id: …" in err and f"e.g. row 7 (line 8): {TED_ROWS[6]}" in err


def test_an_unreachable_taichi_csv_keeps_motionpipes_hint(tmp_path, dagster_home, capsys):
    url = "http://nonexistent.invalid/taichi-metadata.csv"  # .invalid never resolves
    rc = motionpipe(["rebuild", "taichi", "--manifest", url, "--data-root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"could not fetch manifest {url}" in err
    assert err.rstrip().endswith("pass it with --manifest path/to/taichi-metadata.csv"), err
    assert not Path(tmp_path / "data/datasets/taichi/manifest").exists()
