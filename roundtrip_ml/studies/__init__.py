"""Ready-made studies built on pipeline/: the demo and the leaderboard."""
