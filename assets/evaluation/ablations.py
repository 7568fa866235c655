"""The `ablations` asset: the papers' ablation tables (training/reporting/ablation_tables.py) from the scores of
params.yaml's experiments and of the main models that are those tables' K = 10 / full rows; present only when
experiments are listed."""
import hashlib

import dagster as dg

from assets.keys import ABLATIONS, LEADERBOARD, evaluation_key
from assets.models.defs import STALE
from assets.resources import DataRootResource
from assets.versions import MODEL_STAGE_VERSIONS
from storage import paths
from training.run_params import ParamsFile


def ablations_asset(datasets: tuple[str, ...], params: ParamsFile) -> list[dg.AssetsDefinition]:
    deps = [evaluation_key(d, name) for d in datasets
            for name in (*params.models_for(d), *params.experiments_for(d))]
    if not any(params.experiments_for(d) for d in datasets):
        return []

    @dg.asset(key=ABLATIONS, deps=deps, group_name=LEADERBOARD, code_version=MODEL_STAGE_VERSIONS["ablations"],
              kinds={"json"}, automation_condition=STALE,
              description="The papers' ablation tables (MRAA Tables 1 and 3, TPSMM Tables 3 and 4) rebuilt from the "
                          "experiments' scores: each variant's numbers beside the paper's row (Markdown + JSON).")
    def _ablations(data_root: DataRootResource) -> dg.MaterializeResult:
        from training.reporting.ablation_tables import write_ablation_tables
        from training.reporting.leaderboard import build_leaderboard, collect_results
        root = data_root.get()
        board = build_leaderboard(*collect_results(root))
        files = write_ablation_tables(board, paths.ablations_dir(root))
        markdown = root.read_bytes(files["markdown"]).decode()
        return dg.MaterializeResult(
            data_version=dg.DataVersion(hashlib.sha256(markdown.encode()).hexdigest()[:16]),
            metadata={"tables": dg.MetadataValue.md(markdown), "markdown": dg.MetadataValue.path(files["markdown"]),
                      "json": dg.MetadataValue.path(files["json"])})

    return [_ablations]
