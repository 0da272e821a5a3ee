"""Evaluation against ground truth (``frgd eval ...``): SR benchmarks in :mod:`frgd.eval.sr_eval`."""
