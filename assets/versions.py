"""Code versions of the stages. Bump one when its logic changes: Dagster then marks the asset (and everything
downstream) stale, and the stage's on-disk stamp no longer matches, so a rerun redoes exactly that work."""

STAGE_VERSIONS = {
    "manifest": "1",
    "download": "1",
    "video_pass": "2",  # detections + chunks + clips, produced by one streamed decode (2: chunks per tracked person)
    "shards": "1",
    "coverage": "1",
}

# Model stages (the configs' own hashes are added per model: a changed config marks only that model stale).
MODEL_STAGE_VERSIONS = {
    "train": "1",
    "avd": "1",
    "evaluation": "1",
    "samples": "1",
    "leaderboard": "1",
    "ablations": "1",
}
