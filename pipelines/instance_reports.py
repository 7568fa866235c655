"""The `motionpipe` commands that do an asset's work outside a Dagster run (`train`, `evaluate`, `samples`,
`leaderboard`, and so `dvc repro`) report it to the instance under DAGSTER_HOME as a runless materialization of that
asset, with the metadata and checks the asset itself records, so the UI never shows stale pages.

The event carries the asset's code version and the data versions of its inputs as Dagster's own tags, so the
staleness the UI and the automation sensor compute stays right: a model scored by `dvc repro` is not retrained.
A failure to report is a warning: the command's outputs are already written and stay valid."""
from __future__ import annotations

import sys

import dagster as dg
from dagster._core.definitions.data_version import (CODE_VERSION_TAG, DATA_VERSION_IS_USER_PROVIDED_TAG,
                                                    DATA_VERSION_TAG, extract_data_version_from_entry,
                                                    get_input_data_version_tag, get_input_event_pointer_tag)

from assets.asset_report import AssetReport
from pipelines.definitions import make_definitions
from pipelines.instance import open_instance
from storage.settings import Settings

SOURCE_TAG = "motionpipe/reported_by"


def _version_tags(instance: dg.DagsterInstance, defs: dg.Definitions, report: AssetReport) -> dict[str, str]:
    graph = defs.resolve_asset_graph()
    if not graph.has(report.key):
        return {}
    node = graph.get(report.key)
    tags: dict[str, str] = {}
    if node.code_version:
        tags[CODE_VERSION_TAG] = node.code_version
    if report.data_version:
        tags[DATA_VERSION_TAG] = report.data_version
        tags[DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
    for parent in node.parent_keys:  # what a run records of its inputs: their data versions and events
        record = instance.get_latest_data_version_record(parent)
        version = extract_data_version_from_entry(record.event_log_entry) if record is not None else None
        if version is not None:
            tags[get_input_data_version_tag(parent)] = version.value
            tags[get_input_event_pointer_tag(parent)] = str(record.storage_id)
    return tags


def report_to_dagster(report: AssetReport, settings: Settings, command: str) -> bool:
    """Record ``report`` as a materialization of its asset (and its check results) in the instance; ``command``
    (e.g. ``motionpipe evaluate fomm --dataset sample``) becomes the event's description. False if it could not."""
    try:
        instance = open_instance()
        defs = make_definitions(settings)
        tags = {SOURCE_TAG: command.split()[1] if " " in command else command,
                **_version_tags(instance, defs, report)}
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=report.key, metadata=report.metadata, tags=tags, description=f"reported by `{command}`"))
        for check in report.checks:
            instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                asset_key=report.key, check_name=check.check_name, passed=check.passed,
                metadata=check.metadata or {}, description=check.description))
    except Exception as exc:  # noqa: BLE001 - the outputs are written; the UI record is a convenience
        print(f"{command}: warning: not recorded in the Dagster instance ({type(exc).__name__}: {exc}); the "
              f"outputs are written, and the next Dagster run of {report.key.to_user_string()} records them",
              file=sys.stderr)
        return False
    print(f"recorded {report.key.to_user_string()} in the Dagster instance ({instance.root_directory})")
    return True
