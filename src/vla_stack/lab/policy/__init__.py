"""Lab side of the action expert: scripted demonstrations, episode simulation, datasets, training, evaluation."""
