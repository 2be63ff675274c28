"""Where fedkit's apps run: the in-process grids, the availability wrapper, ``flwr run``.

:class:`~fedkit.flower.runtime.inprocess.InProcessGrid` calls the ClientApp directly;
:class:`~fedkit.flower.runtime.batched.BatchedInProcessGrid` executes the train messages of
fedkit's own ClientApp together (through its ``prepare_train`` / ``finish_train``);
:class:`~fedkit.flower.runtime.availability.AvailabilityGrid` hides offline clients from any
grid; :mod:`fedkit.flower.runtime.simulation` runs an app under Flower's Simulation Engine.
"""
