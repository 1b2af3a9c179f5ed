"""Saved runs and what is made of them: storage, scores, gates, the report, plots, the summary."""
