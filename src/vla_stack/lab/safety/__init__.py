"""Lab side of safety: replaying input streams through the controller for tests and benchmarks."""
