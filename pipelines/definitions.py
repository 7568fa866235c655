"""The one root `Definitions`: every dataset's graph from the factory, with the embedded default resources."""
from __future__ import annotations

import dagster as dg

from assets.dataset_config import DATASETS
from assets.factory import dataset_definitions
from pipelines.resources import default_resources


def make_definitions(**resource_overrides: dg.ConfigurableResource) -> dg.Definitions:
    return dg.Definitions.merge(
        *(dataset_definitions(name) for name in DATASETS),
        dg.Definitions(resources={**default_resources(), **resource_overrides}),
    )


defs = make_definitions()
