"""A Dagster logger for a terminal that watches a run: only what the steps' own code says (training losses,
checkpoints, scores), not Dagster's event stream. Registered on every job (``make_definitions``), so a run that
selected it (the demo's) re-executes from the UI with the same run config."""
from __future__ import annotations

import logging

import dagster as dg

TERMINAL_LOGGER = "terminal"


@dg.logger(description="Prints the steps' own messages, one line each, prefixed by the step; no Dagster events.")
def terminal_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    log = logging.Logger("motionpipe.terminal", logging.INFO)

    class StepMessages(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", {}) or {}
            if meta.get("dagster_event") is None:
                print(f"    {meta.get('step_key') or ''}: {meta.get('orig_message', record.getMessage())}",
                      flush=True)

    log.addHandler(StepMessages())
    return log
