"""Availability models: which clients are online in round r.

A model is a pure function of ``(parameters, seed, round)`` answering
``available(r) -> (N,) bool`` (:mod:`fedkit.availability.base`). In simulation it wraps the
grid, so the strategy sees only online clients; in deployment a client can enforce the same
scenario on itself. Models: ``always``, ``bernoulli``, ``class-correlated`` (MIFA, Gu et al.
2021), ``fedau`` (Wang & Ji 2024), ``alternating`` (FedLaAvg, Yan et al.), ``markov``,
``flgo`` (FLGo/easyFL) and ``trace`` (FedScale). Scenario files
(``fedkit/scenarios/*.toml``, shipped in the package) name a model and its parameters;
:func:`scenario_card` reports what availability and selection did. numpy and the standard
library only (matplotlib lazily). See docs/availability.md.
"""

from fedkit.availability.alternating import AlternatingAvailability
from fedkit.availability.base import (
    AvailabilityModel,
    ClientInfo,
    availability_schedule,
    bernoulli_draw,
)
from fedkit.availability.card import card_summary_table, plot_scenario_card, scenario_card
from fedkit.availability.fedau import FedAUAvailability, fedau_probabilities
from fedkit.availability.flgo import FLGO_DEFAULT_BETA, FLGoAvailability
from fedkit.availability.markov import MarkovAvailability, TwoStateChain
from fedkit.availability.memoryless import (
    AlwaysAvailable,
    BernoulliAvailability,
    ClassCorrelatedAvailability,
)
from fedkit.availability.scenario import (
    MODELS,
    SCENARIO_DIR,
    build_availability,
    list_scenarios,
    load_scenario,
)
from fedkit.availability.trace import TraceAvailability, parse_trace, read_trace

__all__ = [
    "FLGO_DEFAULT_BETA",
    "MODELS",
    "SCENARIO_DIR",
    "AlternatingAvailability",
    "AlwaysAvailable",
    "AvailabilityModel",
    "BernoulliAvailability",
    "ClassCorrelatedAvailability",
    "ClientInfo",
    "FLGoAvailability",
    "FedAUAvailability",
    "MarkovAvailability",
    "TraceAvailability",
    "TwoStateChain",
    "availability_schedule",
    "bernoulli_draw",
    "build_availability",
    "card_summary_table",
    "fedau_probabilities",
    "list_scenarios",
    "load_scenario",
    "parse_trace",
    "plot_scenario_card",
    "read_trace",
    "scenario_card",
]
