"""The pytest adapter: the only package that imports pytest."""
