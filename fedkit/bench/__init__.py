"""Results files, summaries and plots of fedkit runs."""

from fedkit.bench.plots import plot_accuracy
from fedkit.bench.results import RunLog, environment_info, read_results, summarize

__all__ = ["RunLog", "environment_info", "plot_accuracy", "read_results", "summarize"]
