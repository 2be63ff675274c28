"""Availability models: which clients are online in round r.

An availability model is a pure function of ``(parameters, seed, round)`` answering
``available(r) -> (N,) bool`` (contract in :mod:`fedkit.availability.base`). In simulation it
wraps the grid (only online clients are visible to the strategy); in deployment a client can
enforce the same scenario on itself. Scenario files (``simulations/scenarios/*.toml``) name a
model and its parameters; :func:`scenario_card` reports what availability and selection did.

==================  ==============================================  =========================
name                model                                           source
==================  ==============================================  =========================
always              everyone online                                 --
bernoulli           independent coins, ``p`` or one per client      --
class-correlated    ``p_min + (1 - p_min) min_label / (L - 1)``     MIFA (Gu et al. 2021)
fedau               label-weighted p_n; bernoulli/markov/cyclic     FedAU (Wang & Ji 2024)
alternating         class groups online in turn (E, alpha E)        FedLaAvg (Yan et al.)
markov              on/off sessions, geometric lengths              --
flgo                FLGo's IDL/YMF/MDF/LDF/YFF/HOMO/LN/SLN/YC       FLGo (easyFL)
trace               replay of interval lists, wrapped               FedScale
==================  ==============================================  =========================

This package imports numpy and the standard library only (matplotlib lazily for plots); it
knows nothing of algorithms, Flower or torch.
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
