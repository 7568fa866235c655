"""What a reader of results sees: the leaderboard beside the papers' numbers, loss curves, image grids and model
summaries."""
