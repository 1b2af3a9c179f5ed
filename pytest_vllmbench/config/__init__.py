"""What a session runs: options and settings, the model registry, the cell matrix, memory budgets."""
