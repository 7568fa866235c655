"""``training.models.MODELS`` is the one list of model names, and each model module says whether (and how) it has an
AVD stage: the config schema, the run settings and the AVD stage all follow them."""
import pytest
import torch

from training.config import ConfigError, load_config, validate_config
from training.models import MODELS, build_avd, build_avd_network, build_model, has_avd
from training.run_params import load_params


@pytest.mark.parametrize("model", MODELS)
def test_every_model_has_a_sample_config_and_an_avd_stage_exactly_when_its_config_trains_one(model):
    cfg = load_config(f"{model}-sample-64")
    assert cfg.model == model
    assert has_avd(model) == (cfg.train_avd is not None)
    assert (build_avd_network(cfg) is None) == (not has_avd(model))


def test_the_run_settings_and_the_config_schema_take_the_same_names():
    params = load_params()
    assert set(params.models) <= set(MODELS)
    assert set(params.avd_models) == {m for m in MODELS if has_avd(m)}
    raw = load_config("fomm-sample-64").model_dump(mode="json")
    raw["model"] = "x2face"
    with pytest.raises(ConfigError, match="model"):
        validate_config(raw)


def _without_vgg(cfg):
    weights = cfg.train.loss_weights.model_copy(update={"perceptual": ()})
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"loss_weights": weights})})


def test_a_model_without_an_avd_stage_says_so():
    cfg = load_config("fomm-sample-64")
    with pytest.raises(ValueError, match=r"fomm has no AVD stage \(only \['mraa', 'tpsmm'\]\)"):
        build_avd(cfg, build_model(_without_vgg(cfg)))


def test_the_tpsmm_avd_stage_trains_only_its_avd_network():
    cfg = load_config("tpsmm-sample-64")
    main = build_model(_without_vgg(cfg))
    stage = build_avd(cfg, main)
    assert set(stage.networks()) == {"avd"}
    assert not any(p.requires_grad for p in main.kp_detector.parameters())
    losses, _ = stage(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in stage.networks()["avd"].parameters())
