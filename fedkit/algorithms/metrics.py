"""Aggregation of the clients' metrics: a weighted mean of every numeric metric.

The default of a fedkit strategy's ``train_metrics_aggr_fn`` and ``evaluate_metrics_aggr_fn``,
with the signature of Flower's (``(list[RecordDict], weighted_by_key) -> MetricRecord``), so
either can be replaced by Flower's ``aggregate_metricrecords`` or a user's function.

Rule: for every metric ``m`` other than the weight, over the replies ``i`` that report it,

    m = sum_i w_i m_i / sum_i w_i,     w_i = the reply's ``weighted_by_key``,

accumulated in reply order (fedkit passes replies sorted by client id). Lists (Flower allows
``list[float]``) are averaged element by element when all replies report the same length.
Unlike Flower's default, a metric that only some replies report is averaged over those; with
consistent replies both give the same numbers (up to rounding). Non-numeric values (bool)
are ignored.

Example:
    >>> from flwr.app import MetricRecord, RecordDict
    >>> records = [RecordDict({"metrics": MetricRecord({"num-examples": 1, "train_loss": 2.0})}),
    ...            RecordDict({"metrics": MetricRecord({"num-examples": 3, "train_loss": 6.0})})]
    >>> dict(weighted_metrics(records, "num-examples"))
    {'train_loss': 5.0}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flwr.app import MetricRecord, RecordDict

from fedkit.algorithms.replies import METRICS_KEY

__all__ = ["reply_metrics", "weighted_metrics"]

logger = logging.getLogger(__name__)


def reply_metrics(content: RecordDict) -> MetricRecord | None:
    """A reply's MetricRecord: ``metrics``, or its only MetricRecord (Flower's rule)."""
    records = content.metric_records
    if METRICS_KEY in records:
        return records[METRICS_KEY]
    if len(records) == 1:
        return next(iter(records.values()))
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def weighted_metrics(records: Sequence[RecordDict], weighted_by_key: str) -> MetricRecord:
    """The weighted mean of every numeric metric of ``records`` (see the module docstring).

    Args:
        records: Reply contents; each one's metrics are :func:`reply_metrics`. A record
            without metrics or without a positive numeric weight is skipped.
        weighted_by_key: The metric holding each reply's weight (excluded from the result).

    Returns:
        The aggregated metrics, keys in first-seen order (empty if nothing to average).
    """
    sums: dict[str, float | list[float]] = {}
    totals: dict[str, float] = {}
    skipped: set[str] = set()
    for content in records:
        metrics = reply_metrics(content)
        weight = metrics.get(weighted_by_key) if metrics is not None else None
        if metrics is None or not _is_number(weight) or weight <= 0:
            continue
        for key, value in metrics.items():
            if key == weighted_by_key or key in skipped:
                continue
            if _is_number(value):
                if isinstance(sums.get(key, 0.0), list):
                    skipped.add(key)
                    continue
                sums[key] = sums.get(key, 0) + weight * float(value)
            elif isinstance(value, list) and all(_is_number(v) for v in value):
                current = sums.get(key)
                if current is None:
                    sums[key] = [weight * float(v) for v in value]
                elif isinstance(current, list) and len(current) == len(value):
                    sums[key] = [c + weight * float(v)
                                 for c, v in zip(current, value, strict=True)]
                else:
                    skipped.add(key)
                    continue
            else:
                continue
            totals[key] = totals.get(key, 0) + weight
    for key in skipped:
        logger.warning("metric %r is left out of the aggregate: its replies mix lists of "
                       "different lengths or lists and numbers", key)
    out = MetricRecord()
    for key, total in sums.items():
        if key in skipped:
            continue
        out[key] = ([v / totals[key] for v in total] if isinstance(total, list)
                    else total / totals[key])
    return out
