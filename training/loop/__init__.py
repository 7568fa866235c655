"""The training loop: the trainer, its distributed plumbing, the data it reads and the learning check."""
