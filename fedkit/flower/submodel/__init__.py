"""Secure federated submodel learning over Flower messages (``task = "submodel"``).

The server round (:mod:`fedkit.flower.submodel.server`), its secure exchanges
(:mod:`fedkit.flower.submodel.secure_round`), the client handlers
(:mod:`fedkit.flower.submodel.client`) and the recommendation task they share
(:mod:`fedkit.flower.submodel.task`). See ``docs/submodel.md``.
"""
