"""Benchmarks run with `make bench`, never inside `make test`."""
