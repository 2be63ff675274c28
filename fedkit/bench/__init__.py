"""Results files, summaries and plots of fedkit runs.

Benchmark suites: :mod:`fedkit.bench.suite` (files), :mod:`fedkit.bench.runner` (``fedkit
bench``), :mod:`fedkit.bench.report` (``fedkit report``).
"""

from fedkit.bench.plots import plot_accuracy
from fedkit.bench.results import RunLog, environment_info, read_results, summarize

__all__ = ["RunLog", "environment_info", "plot_accuracy", "read_results", "summarize"]
