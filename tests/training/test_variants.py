"""The papers' ablations and region counts (training/experiments/variants.yaml): every variant validates on every
dataset its base model has a config for, builds, trains a few steps and reconstructs through the evaluation's
Animator; the run settings and the leaderboard know them; `motionpipe models` counts them."""
import argparse

import pytest
import torch

from training.config import ConfigError, config_to_dict, load_config
from training.evaluation.animate import Animator
from training.experiments.variants import (apply_changes, base_model, get_variant, load_variants, parse_variants,
                                           run_config, variant_names, variant_of, variant_raw_config)
from training.models import build_model
from training.run_params import ParamsFile, RunParams, config_path

VARIANTS = variant_names()


def _dig(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _without_vgg(cfg):
    weights = cfg.train.loss_weights.model_copy(update={"perceptual": ()})
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"loss_weights": weights})})


def test_the_papers_tables_are_all_there():
    tables = {}
    for v in load_variants().values():
        tables.setdefault(v.paper, []).append(v.name)
    assert len(tables["MRAA Table 1"]) == 7  # K = 5, 20 for three methods, and MRAA w/o skip & bg at K = 10
    assert set(tables["MRAA Table 3"]) == {"mraa-no-pca-no-bg", "mraa-no-pca", "mraa-no-bg"}
    assert set(tables["TPSMM Table 3"]) == {"tpsmm-k2", "tpsmm-k4", "tpsmm-k8"}
    assert set(tables["TPSMM Table 4"]) == {"tpsmm-tps", "tpsmm-dropout", "tpsmm-multimask", "tpsmm-bg-loss"}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_validates_on_every_dataset_and_changes_only_its_fields(name):
    v = get_variant(name)
    for dataset, size in (("sample", 64), ("taichi", 256), ("ted", 384)):
        cfg = run_config(name, dataset)
        base = load_config(config_path(v.model, dataset))
        assert cfg.name == f"{name}-{dataset}-{size}" and cfg.model == v.model == base_model(name)
        got, want = config_to_dict(cfg), config_to_dict(base)
        for dotted, value in v.changes.items():
            assert _dig(got, dotted) == value, dotted
        for section in ("dataset", "reconstruction", "animate"):
            assert got[section] == want[section]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_trains_a_few_steps_and_reconstructs_through_the_animator(name):
    torch.manual_seed(0)
    cfg = _without_vgg(run_config(name, "sample"))
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = torch.rand(3, 3, 64, 64)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for step in range(2):
        losses, generated = model(frames[:1], frames[1 + step:2 + step])
        total = sum(losses.values())
        assert torch.isfinite(total) and generated["prediction"].shape == (1, 3, 64, 64)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())
    [pred] = list(Animator(cfg, model).reconstruct(list(frames), batch_size=4))
    assert pred.shape == (3, 3, 64, 64) and torch.isfinite(pred).all()


def test_the_ablated_networks_are_the_ones_the_tables_name():
    from training.reporting.model_summary import count_config

    def total(cfg):
        return next(r.params for r in count_config(cfg) if r.network.startswith("total"))

    full = run_config("mraa", "sample")
    no_bg = build_model(_without_vgg(run_config("mraa-no-bg", "sample")))
    assert no_bg.bg_predictor.bg_encoder is None  # the background stays still, as in FOMM
    assert not build_model(_without_vgg(run_config("mraa-no-skip-bg", "sample"))).generator.skips
    assert build_model(_without_vgg(run_config("mraa-no-pca", "sample"))).region_predictor.jacobian is not None
    assert total(run_config("mraa-k5", "sample")) < total(full) < total(run_config("mraa-k20", "sample"))
    assert build_model(_without_vgg(run_config("tpsmm-k2", "sample"))).dense_motion_network.num_tps == 2


def test_variant_names_resolve_by_the_longest_match():
    assert variant_of("mraa-no-pca-no-bg-taichi-256") == "mraa-no-pca-no-bg"
    assert variant_of("mraa-no-pca-taichi-256") == "mraa-no-pca"
    assert variant_of("mraa-taichi-256") is None and variant_of("fomm-sample-64") is None


def test_bad_variants_are_refused_naming_the_variant_and_the_field(tmp_path):
    with pytest.raises(ValueError, match="(?s)variant 'x'.*unknown model 'x2face'"):
        parse_variants({"x": {"model": "x2face", "paper": "p", "row": "r", "changes": {"a": 1}}}, "v.yaml")
    with pytest.raises(ValueError, match="'mraa' has a model's name"):
        parse_variants({"mraa": {"model": "mraa", "paper": "p", "row": "r", "changes": {"a": 1}}}, "v.yaml")
    with pytest.raises(ValueError, match="(?s)variant 'y'.*changes"):
        parse_variants({"y": {"model": "mraa", "paper": "p", "row": "r", "changes": {}}}, "v.yaml")
    with pytest.raises(ValueError, match="change 'name.x': name is not a mapping"):
        apply_changes({"name": "n"}, {"name.x": 1}, "variant z")
    # a misspelt field reaches the config schema, which names it
    raw = variant_raw_config("mraa-k5", config_path("mraa", "sample"))
    from training.config import validate_config
    raw["model_params"]["num_regionz"] = 5
    with pytest.raises(ConfigError, match="num_regionz"):
        validate_config(raw, "variant mraa-k5")
    with pytest.raises(ValueError, match="unknown model or variant 'mraa-k7'"):
        run_config("mraa-k7", "sample")


def test_the_run_settings_take_experiments_by_name_and_datasets_their_own_models():
    params = ParamsFile(experiments=("mraa-k5", "tpsmm-k2", "fomm-k20"),
                        datasets={"sample": RunParams(), "taichi512": RunParams(models=("fomm", "mraa"))})
    assert params.models_for("sample") == ("monkeynet", "fomm", "mraa", "tpsmm")
    assert params.models_for("taichi512") == ("fomm", "mraa")
    assert params.experiments_for("taichi512") == ("mraa-k5", "fomm-k20")  # no TPSMM config at 512
    with pytest.raises(ValueError, match=r"unknown experiments \['mraa-k7'\]"):
        ParamsFile(experiments=("mraa-k7",), datasets={})


def test_motionpipe_models_counts_the_variants_and_the_512_configs(capsys):
    from pipelines.commands.models import models_command

    assert models_command(argparse.Namespace(config=["mraa-k5", "tpsmm-tps", "mraa-taichi512-512"])) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert "65,939,612" in out  # mraa-k5 on TaiChiHD-256: fewer regions, a smaller region head than mraa's 66.0 M
    assert "mraa-k5-taichi-256" in lines and "tpsmm-tps-taichi-256" in lines
    # the 512 config has the official networks (all convolutional): the official count, to the percent
    total_512 = [line for line in out.splitlines() if "total" in line][-1]
    assert "66,004,557" in total_512 and "66.000 M" in total_512


def test_the_leaderboard_puts_each_variants_published_row_beside_it():
    from training.reporting.leaderboard import build_leaderboard

    results = [
        {"model": "mraa-no-pca-taichi-256", "dataset": "taichi", "L1": 0.05, "AKD[openpose-coco18]": 6.5,
         "AKD[mediapipe-pose33]": 3.0},
        {"model": "mraa-no-pca-no-bg-taichi-256", "dataset": "taichi", "L1": 0.07},
        {"model": "mraa-taichi-256", "dataset": "taichi", "L1": 0.047},
        {"model": "mraa-taichi512-512", "dataset": "taichi512", "L1": 0.066},
    ]
    board = build_leaderboard(results)
    row = board.row("taichi", "mraa-no-pca-taichi-256", "L1")
    assert (row.published.value, row.published.source) == (0.049, "MRAA Table 3")
    assert row.difference == pytest.approx(0.001)
    assert board.row("taichi", "mraa-no-pca-taichi-256", "AKD[openpose-coco18]").published.value == 6.04
    assert board.row("taichi", "mraa-no-pca-no-bg-taichi-256", "L1").published.value == 0.060  # not "no pca"'s
    assert board.row("taichi", "mraa-taichi-256", "L1").published.source == "MRAA Table 2"
    assert board.row("taichi512", "mraa-taichi512-512", "L1").published.value == 0.064
    md = board.to_markdown()
    assert "| MRAA Table 3: No pca (paper) | 0.049 |" in md
    assert "| MRAA Table 3: No pca or bg model (paper) | 0.06 |" in md
    assert md.index("MRAA Table 3: No pca (paper)") < md.index("mraa-no-pca-taichi-256 (ours)")
    assert "## taichi512" in md and "| MRAA (paper) | 0.064 |" in md
    assert board.to_dict()["taichi"]["mraa-no-pca-taichi-256"]["L1"]["published"] == 0.049


def test_every_variant_has_its_published_numbers_on_taichi():
    from training.reporting.published import display_name, primary

    for name in VARIANTS:
        v = get_variant(name)
        for metric in ("L1", "AKD", "MKR", "AED"):
            pub = primary("taichi", name, metric)
            assert pub is not None and pub.source == v.paper, (name, metric)
        assert display_name(name) == f"{v.paper}: {v.row}"
