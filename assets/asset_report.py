"""What one materialization of an asset says (metadata, data version, check results), built in one place for two
writers: the asset's own `MaterializeResult` inside a Dagster run, and the runless event the `motionpipe` command
reports when it did the asset's work outside a run (so the UI shows the same page either way)."""
from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg


@dataclass(frozen=True)
class AssetReport:
    key: dg.AssetKey
    metadata: dict
    data_version: str | None = None
    checks: tuple[dg.AssetCheckResult, ...] = field(default=())

    def result(self) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=self.metadata, check_results=list(self.checks) or None,
                                    data_version=dg.DataVersion(self.data_version) if self.data_version else None)
