"""Flower deployment: certificates, SuperLink/SuperNode processes, runs on a SuperLink.

See docs/deployment.md. ``fedkit deploy ...`` (:mod:`fedkit.deploy.cli`) wraps it.
"""

from fedkit.deploy.certs import NodeKeyFiles, TlsFiles, write_node_keys, write_tls_files
from fedkit.deploy.local import LocalFederation
from fedkit.deploy.processes import FlowerProcess, ProcessError, free_port
from fedkit.deploy.runner import Connection, register_supernodes, run_on_superlink, write_connection

__all__ = [
    "Connection",
    "FlowerProcess",
    "LocalFederation",
    "NodeKeyFiles",
    "ProcessError",
    "TlsFiles",
    "free_port",
    "register_supernodes",
    "run_on_superlink",
    "write_connection",
    "write_node_keys",
    "write_tls_files",
]
