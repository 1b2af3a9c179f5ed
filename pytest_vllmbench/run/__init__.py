"""Running cells: start a cell's engine, time it over the workload, one session, the parity run."""
