"""Metric aggregation: the weighted mean of every numeric metric, hand-computed."""

import pytest
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from fedkit.algorithms import weighted_metrics


def reply(**metrics):
    return RecordDict({"metrics": MetricRecord(metrics)})


def test_every_numeric_metric_is_the_weighted_mean():
    records = [reply(**{"num-examples": 1, "train_loss": 2.0, "steps": 4, "acc": [1.0, 0.0]}),
               reply(**{"num-examples": 3, "train_loss": 6.0, "steps": 8, "acc": [0.0, 1.0]})]
    out = weighted_metrics(records, "num-examples")
    assert dict(out) == {"train_loss": (2 + 18) / 4, "steps": (4 + 24) / 4,
                         "acc": [0.25, 0.75]}
    # With consistent replies, Flower's default gives the same numbers.
    flower = aggregate_metricrecords(records, "num-examples")
    for key, value in out.items():
        assert flower[key] == pytest.approx(value, rel=1e-15)


def test_a_metric_some_replies_lack_is_averaged_over_those_that_have_it():
    records = [reply(**{"num-examples": 2, "loss": 1.0}),
               reply(**{"num-examples": 6, "loss": 3.0, "extra": 5.0}),
               reply(**{"n": 9, "loss": 100.0})]  # no weight: skipped
    assert dict(weighted_metrics(records, "num-examples")) == {"loss": 2.5, "extra": 5.0}


def test_other_weight_keys_and_mixed_lists(caplog):
    records = [RecordDict({"m": MetricRecord({"w": 1, "x": [1.0, 2.0], "y": 1.0})}),
               RecordDict({"m": MetricRecord({"w": 1, "x": [1.0], "y": 3.0})})]
    assert dict(weighted_metrics(records, "w")) == {"y": 2.0}
    assert any("metric 'x' is left out" in r.getMessage() for r in caplog.records)
    assert dict(weighted_metrics([], "w")) == {}
