"""Evaluation, animation samples and the leaderboard as Dagster assets."""
