"""Secure aggregation over Flower messages: one exchange, one workflow, one client mod.

The protocol itself (:mod:`fedkit.privacy.secagg`) knows no transport; this package carries
it over ``grid.send_and_receive``. See ``docs/secagg.md`` ("On Flower").
"""
