"""The scenario card on a hand-made 4-round, 3-client run, its table and its plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedkit.availability import (
    ClientInfo,
    card_summary_table,
    plot_scenario_card,
    scenario_card,
)

# Clients 0, 1, 2 hold classes 0, 1, 1; class 2 has no client (L = 3).
INFO = ClientInfo.one_class_per_client([0, 1, 1], num_classes=3)
AVAILABLE = np.array([
    [1, 1, 0],  # round 1
    [1, 0, 1],  # round 2
    [0, 1, 0],  # round 3
    [1, 1, 1],  # round 4
], dtype=bool)
PARTICIPATED = np.array([
    [1, 0, 0],
    [0, 0, 1],
    [0, 1, 0],
    [1, 0, 0],
], dtype=bool)


@pytest.fixture(scope="module")
def card():
    return scenario_card(AVAILABLE, PARTICIPATED, INFO)


def test_rates(card):
    assert card["num_rounds"] == 4 and card["num_clients"] == 3 and card["num_classes"] == 3
    assert card["availability_rate"] == [0.75, 0.75, 0.5]
    assert card["participation_rate"] == [0.5, 0.25, 0.25]
    assert card["availability_rate_summary"] == pytest.approx({"mean": 2 / 3, "min": 0.5,
                                                               "max": 0.75})
    assert card["participation_rate_summary"] == pytest.approx({"mean": 1 / 3, "min": 0.25,
                                                                "max": 0.5})
    assert card["online_per_round"] == {"mean": 2.0, "min": 1.0, "max": 3.0}
    assert card["participants_per_round"] == {"mean": 1.0, "min": 1.0, "max": 1.0}
    assert card["never_participated"] == 0


def test_staleness(card):
    # client 0 (rounds 1, 4): 0, 1, 2, 0; client 1 (round 3): 0, 1; client 2 (round 2): 0, 1, 2
    assert card["staleness"]["mean"] == pytest.approx(7 / 9)
    assert card["staleness"]["max"] == 2
    assert card["staleness"]["per_client_max"] == [2, 1, 2]


def test_availability_per_class(card):
    assert card["class_availability"] == [
        [1.0, 0.5, None],
        [1.0, 0.5, None],
        [0.0, 0.5, None],
        [1.0, 1.0, None],
    ]
    assert card["class_availability_mean"] == [0.75, 0.625, None]


def test_card_is_json_and_inputs_untouched(card):
    assert json.loads(json.dumps(card)) == card
    avail, part = AVAILABLE.copy(), PARTICIPATED.copy()
    scenario_card(avail, part, INFO)
    assert np.array_equal(avail, AVAILABLE) and np.array_equal(part, PARTICIPATED)


def test_nobody_participating():
    card = scenario_card(AVAILABLE, np.zeros_like(AVAILABLE), INFO)
    assert card["never_participated"] == 3
    assert card["staleness"] == {"mean": None, "max": None, "per_client_max": [None] * 3}
    assert "| staleness (rounds) | - | - | - |" in card_summary_table(card)


def test_summary_table(card):
    table = card_summary_table(card)
    lines = table.splitlines()
    assert lines[0] == "| metric | mean | min | max |"
    assert "| availability rate | 0.667 | 0.500 | 0.750 |" in lines
    assert "| participation rate | 0.333 | 0.250 | 0.500 |" in lines
    assert "| online clients per round | 2.0 | 1 | 3 |" in lines
    assert "| staleness (rounds) | 0.78 | - | 2 |" in lines
    assert lines[-1] == "4 rounds, 3 clients, 0 never participated."


def test_plot_writes_a_png(card, tmp_path):
    out = plot_scenario_card(card, AVAILABLE, PARTICIPATED, tmp_path / "card.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("available", "participated", "match"),
    [
        (AVAILABLE, AVAILABLE | np.eye(4, 3, k=2, dtype=bool),
         "client 2 participated in round 1 but was not available"),
        (AVAILABLE, PARTICIPATED[:3], r"available has shape \(4, 3\) and participated \(3, 3\)"),
        (AVAILABLE[:, :2], PARTICIPATED[:, :2], r"expected both \(rounds, 3\)"),
        (AVAILABLE.astype(int), PARTICIPATED, "available has dtype int64 and shape"),
        (AVAILABLE, PARTICIPATED[0], "participated has dtype bool and shape \\(3,\\)"),
        (AVAILABLE[:0], PARTICIPATED[:0], r"available has dtype bool and shape \(0, 3\)"),
    ],
)
def test_invalid_inputs(available, participated, match):
    with pytest.raises(ValueError, match=match):
        scenario_card(available, participated, INFO)
