"""The workload: OpenAI Batch files read and validated, random and synthetic workloads, gold labels."""
