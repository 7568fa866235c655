"""One settings object: flags over the environment over defaults, and every MOTIONPIPE_* variable listed once."""
import re
from pathlib import Path

import pytest

from storage.settings import ENV_VARS, Settings, resolve_settings

REPO = Path(__file__).resolve().parents[1]


def test_flags_win_over_the_environment_which_wins_over_defaults():
    env = {"MOTIONPIPE_DATA_ROOT": "/env/data", "MOTIONPIPE_PARAMS": "/env/params.yaml",
           "MOTIONPIPE_NPROC_PER_NODE": "4", "MOTIONPIPE_MAX_DOWNLOAD_BYTES": "2M", "MOTIONPIPE_PROXY": ""}
    s = resolve_settings(env, data_root="/flag/data", device=None)
    assert s.data_root == "/flag/data"  # flag
    assert (s.params_file, s.nproc_per_node, s.max_download_bytes) == ("/env/params.yaml", 4, 2 << 20)  # env
    assert (s.device, s.proxy, s.config_dir) == ("auto", None, None)  # defaults (an empty value is unset)
    assert resolve_settings({}) == Settings()
    with pytest.raises(ValueError, match="MOTIONPIPE_NNODES: '0' is not a whole number >= 1"):
        resolve_settings({"MOTIONPIPE_NNODES": "0"})


def test_every_motionpipe_variable_in_the_code_is_listed_with_its_meaning():
    listed = {v.name for v in ENV_VARS}
    assert all(v.meaning for v in ENV_VARS)
    assert {v.field for v in ENV_VARS if v.field} <= set(Settings.__dataclass_fields__)
    used = set()
    for folder in ("assets", "pipelines", "storage", "training"):
        for path in (REPO / folder).rglob("*.py"):
            used |= set(re.findall(r"MOTIONPIPE_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    used = {"MOTIONPIPE_RULES_<DATASET>" if u == "MOTIONPIPE_RULES" else u for u in used}
    assert used - listed == set(), "add these to storage/settings.py ENV_VARS"


def test_the_object_store_variables_are_botocores_and_the_readme_shows_them():
    """motionpipe reads no AWS_* variable (botocore does, in every process); the README's S3 section shows each."""
    from storage.settings import OBJECT_STORE_ENV_VARS

    assert all(v.name.startswith("AWS_") and v.field is None and v.meaning for v in OBJECT_STORE_ENV_VARS)
    for folder in ("assets", "pipelines", "storage", "training"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name != "settings.py":
                assert "AWS_" not in path.read_text(), path
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## S3 data root and DVC remote"):][:4000]
    assert {v.name for v in OBJECT_STORE_ENV_VARS} <= set(re.findall(r"AWS_[A-Z_]+", section))
    assert "export AWS_ENDPOINT_URL=" in section and "dvc remote modify team endpointurl" in section


def test_the_executor_is_checked_on_load_and_a_broker_flag_completes_the_environment():
    s = resolve_settings({"MOTIONPIPE_EXECUTOR": "celery", "MOTIONPIPE_CELERY_VISIBILITY_TIMEOUT": "600"},
                         celery_broker="redis://127.0.0.1:6379/0")
    assert (s.executor, s.celery_broker, s.celery_visibility_timeout) == ("celery", "redis://127.0.0.1:6379/0", 600)
    assert resolve_settings({}).executor == "multiprocess"
    with pytest.raises(ValueError, match="MOTIONPIPE_EXECUTOR=celery needs a broker: set MOTIONPIPE_CELERY_BROKER"):
        resolve_settings({"MOTIONPIPE_EXECUTOR": "celery"})
    with pytest.raises(ValueError, match="MOTIONPIPE_EXECUTOR: 'k8s' is not one of multiprocess, celery"):
        resolve_settings({"MOTIONPIPE_EXECUTOR": "k8s"})
    with pytest.raises(ValueError, match=r"MOTIONPIPE_CELERY_BROKER: 'http://h:1' is not a broker URL"):
        resolve_settings({"MOTIONPIPE_CELERY_BROKER": "http://h:1"})
    with pytest.raises(ValueError, match=r"--broker, MOTIONPIPE_CELERY_BROKER\): 'h:6379' is not a broker URL"):
        resolve_settings({}, executor="celery", celery_broker="h:6379")
