"""Benchmarks runnable as ``diffcheck bench``; results go under benchmarks/results/."""
