"""Where fedkit's apps run: the in-process grids, the availability wrapper, ``flwr run``.

:class:`~fedkit.flower.runtime.inprocess.InProcessGrid` calls the ClientApp directly;
:class:`~fedkit.flower.runtime.batched.BatchedInProcessGrid` executes the messages a ClientApp
declares batchable together (:mod:`fedkit.flower.runtime.batching`), and
:func:`~fedkit.flower.runtime.engines.run_inprocess` runs the apps on either;
:class:`~fedkit.flower.runtime.availability.AvailabilityGrid` hides offline clients from any
grid; :mod:`fedkit.flower.runtime.simulation` runs the apps under Flower's Simulation Engine
on a SuperLink of its own, with the ``flwr`` CLI helpers of :mod:`fedkit.flower.runtime.flwr_cli`.
"""
