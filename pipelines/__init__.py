"""Dagster definitions, jobs, schedules, sensors, resources and the `motionpipe` command line."""
