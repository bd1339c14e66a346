"""Validation of rtqa's numbers against published analytic benchmarks."""
