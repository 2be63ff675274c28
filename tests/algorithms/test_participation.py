"""How many clients take part: fedkit's K and Flower's fractions, with Flower's defaults."""

import pytest

from fedkit.algorithms import FedAvg, Participation, wait_for_nodes


def resolve(**changes):
    arguments = {"clients_per_round": None, "num_clients": None, "fraction_train": None,
                 "min_train_nodes": None, "fraction_evaluate": 1.0, "min_evaluate_nodes": 2,
                 "min_available_nodes": None, **changes}
    return Participation.from_arguments(**arguments)


def test_flowers_defaults_and_sample_sizes():
    p = resolve()
    assert (p.fraction_train, p.min_train_nodes, p.min_available_nodes) == (1.0, 2, 2)
    assert p.flower_convention and p.trains and p.evaluates
    # max(int(n * fraction), minimum), capped at the n online.
    p = resolve(fraction_train=0.25, min_train_nodes=3, fraction_evaluate=0.5,
                min_evaluate_nodes=1)
    assert [p.train_sample_size(n) for n in (0, 2, 10, 20)] == [0, 2, 3, 5]
    assert [p.evaluate_sample_size(n) for n in (0, 1, 10)] == [0, 1, 5]
    assert p.nodes_to_wait_for("train") == 3 and p.nodes_to_wait_for("evaluate") == 2


def test_fedkits_k_is_a_cap_and_nobody_is_waited_for():
    p = resolve(clients_per_round=5, num_clients=20)
    assert not p.flower_convention
    assert [p.train_sample_size(n) for n in (0, 3, 5, 20)] == [0, 3, 5, 5]
    assert p.nodes_to_wait_for("train") == 0 and p.nodes_to_wait_for("evaluate") == 0
    assert resolve(clients_per_round=5, min_available_nodes=7).nodes_to_wait_for("train") == 7


def test_a_zero_fraction_switches_the_phase_off():
    p = resolve(fraction_train=0.0, fraction_evaluate=0.0)
    assert not p.trains and not p.evaluates
    assert p.min_train_nodes == 0 and p.min_evaluate_nodes == 0
    assert p.train_sample_size(10) == 0 and p.evaluate_sample_size(10) == 0


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"clients_per_round": 2, "fraction_train": 0.5}, "not both"),
        ({"clients_per_round": 2, "min_train_nodes": 1}, "not both"),
        ({"clients_per_round": 3, "num_clients": 2}, r"clients_per_round = 3, expected 1\.\.num"),
        ({"clients_per_round": 0}, r"clients_per_round = 0, expected >= 1"),
        ({"fraction_train": 1.5}, r"fraction_train = 1\.5, expected a fraction in \[0, 1\]"),
        ({"fraction_evaluate": -0.1}, r"fraction_evaluate = -0\.1, expected a fraction"),
        ({"min_train_nodes": -1}, r"min_train_nodes = -1, expected an integer >= 0"),
        ({"min_available_nodes": 1.5}, r"min_available_nodes = 1\.5, expected an integer"),
    ],
)
def test_argument_errors(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        resolve(**changes)
    with pytest.raises(ValueError, match=pattern):
        FedAvg(**{k: v for k, v in changes.items()})


class GrowingGrid:
    """A grid whose nodes connect one per poll."""

    def __init__(self):
        self.connected = 0

    def get_node_ids(self):
        return list(range(self.connected))


def test_wait_for_nodes_polls_until_enough_are_online():
    grid, sleeps = GrowingGrid(), []

    def sleep(seconds):
        sleeps.append(seconds)
        grid.connected += 1

    assert wait_for_nodes(grid, 3, sleep=sleep) == 3
    assert sleeps == [1.0, 1.0, 1.0]
    assert wait_for_nodes(grid, 0, sleep=sleep) == 3 and len(sleeps) == 3
