"""Checkpoints and evaluations record paths relative to the data root: a data root moved or copied elsewhere reads
its own checkpoint and scores; an old absolute record of another root is refused, naming both roots.

The data root is test_data's tiny one (painted frames), the checkpoint an untrained fomm-sample-64 written by the
real trainer with the lineage a real run records, the evaluation the real scorer's (L1 only: no extractor)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main as motionpipe
from pipelines.lineage import lineage_of
from storage import paths
from storage.catalog import VIDEOS_SCHEMA, write_rows
from storage.recorded_paths import DataRootMismatch
from storage.root import DataRoot
from tests.training.test_data import DATASET, TEST, TRAIN, build_dataset
from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import load_config
from training.evaluation.evaluate import evaluate_checkpoint
from training.loop.setup import dataset_lineage
from training.loop.trainer import Trainer, TrainOptions


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    """A data root with a dataset, a published checkpoint trained on it and its evaluation, as the chain writes them."""
    tmp = tmp_path_factory.mktemp("clone-a")
    root = DataRoot(str(tmp / "data"))
    build_dataset(root)
    write_rows(root, paths.catalog_path(root, DATASET, "videos"),
               [{**dict.fromkeys(VIDEOS_SCHEMA.names), "video_id": v, "dataset": DATASET, "status": "ok",
                 "url": f"https://example.org/{v}", "attempts": 1, "n_chunks": 2} for v in TRAIN + TEST], VIDEOS_SCHEMA)
    cfg = load_config("fomm-sample-64")
    trainer = Trainer(cfg, TrainOptions(out_dir=tmp / "data" / "runs" / "fomm-sample" / "main-test", max_steps=0,
                                        progress=False, allow_random_vgg=True, vgg_weights=str(tmp / "no-vgg.pth")),
                      meta={"lineage": dataset_lineage(cfg, root.url)})
    ckpt = Path(paths.published_checkpoint(root, DATASET, "fomm"))
    ckpt.parent.mkdir(parents=True)
    shutil.copy(trainer.save(), ckpt)
    evaluate_checkpoint(ckpt, root, DATASET, paths.evaluation_dir(root, DATASET, "fomm"), extractors=(),
                        batch_size=8)
    return tmp / "data"


def _evaluation(root: Path) -> Path:
    return root / "evaluations" / DATASET / "fomm"


def test_records_name_no_absolute_root(first):
    lineage = load_checkpoint(first / "models" / DATASET / "fomm" / "main.pt")["meta"]["lineage"]
    assert lineage["dataset"] == DATASET and "data_root" not in lineage
    prov = json.loads((_evaluation(first) / "evaluation.json").read_text())["provenance"]
    assert prov["checkpoint"] == f"models/{DATASET}/fomm/main.pt"
    assert str(first) not in (_evaluation(first) / "evaluation.json").read_text()


def test_a_moved_data_root_reads_its_own_checkpoint_and_scores(first, tmp_path):
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(first, moved)
    # the second copy's scores differ from the first's: lineage must show the copy's own
    metrics = json.loads((_evaluation(moved) / "metrics.json").read_text())
    metrics["L1"] = 0.123
    (_evaluation(moved) / "metrics.json").write_text(json.dumps(metrics))

    for artifact in (moved / "models" / DATASET / "fomm" / "main.pt", _evaluation(moved)):
        trail = lineage_of(str(artifact))
        assert trail["data_root"] == str(moved) and trail["checkpoint"].startswith(str(moved))
        assert trail["shards_now"]["matches_checkpoint"] and {v["video_id"] for v in trail["videos"]} <= set(TRAIN)
        assert [e["scores"]["L1"] for e in trail["evaluations"]] == [0.123]
        assert all(e["evaluation"].startswith(str(moved)) for e in trail["evaluations"])
    assert lineage_of(str(_evaluation(first)))["evaluations"][0]["scores"]["L1"] != 0.123


def _old_records(root: Path, recorded_root: Path) -> None:
    """Rewrite ``root``'s records as an older version wrote them, naming ``recorded_root`` absolutely."""
    ckpt = root / "models" / DATASET / "fomm" / "main.pt"
    state = load_checkpoint(ckpt)
    state["meta"]["lineage"]["data_root"] = str(recorded_root)
    save_checkpoint(state, ckpt)
    doc = json.loads((_evaluation(root) / "evaluation.json").read_text())
    doc["provenance"]["checkpoint"] = str(recorded_root / "models" / DATASET / "fomm" / "main.pt")
    (_evaluation(root) / "evaluation.json").write_text(json.dumps(doc))


def test_old_absolute_records_of_another_root_are_refused_naming_both(first, tmp_path, capsys):
    clone_a, clone_b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    shutil.copytree(first, clone_a)
    shutil.copytree(first, clone_b)
    _old_records(clone_a, clone_a)
    _old_records(clone_b, clone_a)  # clone b copied clone a's records: they name a's root

    # in its own root an old record still reads
    assert lineage_of(str(_evaluation(clone_a)))["data_root"] == str(clone_a)
    # in the other clone: refused, never a silent read of a's scores
    for artifact in (clone_b / "models" / DATASET / "fomm" / "main.pt", _evaluation(clone_b)):
        with pytest.raises(DataRootMismatch) as refused:
            lineage_of(str(artifact))
        message = str(refused.value)
        assert str(clone_a) in message and str(clone_b) in message and "--data-root" in message
        assert motionpipe(["lineage", str(artifact)]) == 2
        err = capsys.readouterr().err
        assert f"data root {clone_a}" in err and f"data root in use is {clone_b}" in err and "--data-root" in err
    # the override the message suggests reads b's own files
    trail = lineage_of(str(_evaluation(clone_b)), data_root=str(clone_b))
    assert trail["data_root"] == str(clone_b) and trail["checkpoint"] == str(
        clone_b / "models" / DATASET / "fomm" / "main.pt")


def test_a_checkpoint_outside_any_root_needs_the_root_named(first, tmp_path):
    loose = tmp_path / "loose.pt"
    shutil.copy(first / "models" / DATASET / "fomm" / "main.pt", loose)
    with pytest.raises(FileNotFoundError, match="--data-root"):
        lineage_of(str(loose), data_root=str(tmp_path / "empty"))
    assert lineage_of(str(loose), data_root=str(first))["shards_now"]["matches_checkpoint"]
