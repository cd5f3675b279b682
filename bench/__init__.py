"""Benchmarks: each measures beside a reference in the same run; ``python -m bench`` reruns them all."""
