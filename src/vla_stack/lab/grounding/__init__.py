"""Lab side of grounding: simulated references and scenes, evaluation, metric training."""
