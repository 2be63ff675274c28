"""A plain Flower app for benchmarks/deployment_latency.py: no fedkit import anywhere."""
