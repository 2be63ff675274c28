"""Hazardous materials: use :mod:`fedkit.privacy.secagg`.

Low-level cryptographic building blocks of fedkit's secure aggregation. They are easy to
misuse (reusing a key across rounds, dropping the associated data, combining shares of two
different secrets) and are only meant for :mod:`fedkit.privacy.secagg`, its tests and
benchmarks. Modules:

- :mod:`~fedkit.privacy.hazmat.keys`: X25519 key pairs and HKDF-SHA256 with a bound ``info``.
- :mod:`~fedkit.privacy.hazmat.prg`: AES-128-CTR keystream -> ring mask vectors.
- :mod:`~fedkit.privacy.hazmat.shamir`: Shamir secret sharing over GF(2^521 - 1).
- :mod:`~fedkit.privacy.hazmat.aead`: AES-128-GCM with associated data binding round and ids.

All randomness here comes from the operating system (``os.urandom`` / ``secrets``).
"""
