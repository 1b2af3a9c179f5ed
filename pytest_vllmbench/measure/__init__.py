"""What a cell measures: per-request records, metrics, quality, GPU telemetry, energy, progress."""
