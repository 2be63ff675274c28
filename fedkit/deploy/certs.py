"""Development certificates and SuperNode keys for a Flower deployment (``fedkit deploy certs``).

Flower 1.42 needs TLS material for the SuperLink (``--ssl-certfile/--ssl-keyfile/
--ssl-ca-certfile``; the server certificate must name every host or IP address clients dial
in its subjectAltName) and, for SuperNode authentication, one EC key pair per SuperNode
(P-384 here; private key in OpenSSH format, public key an ``ecdsa-sha2-nistp384`` line, as
Flower's ``load_ssh_private_key`` / ``load_ssh_public_key`` read), registered with
``flwr supernode register``. The CA made here is for development and tests: plain files,
private keys with mode 0600 and never echoed. See docs/deployment.md §2.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "NodeKeyFiles", "write_tls_files", "write_node_keys"]

_VALID_DAYS = 365


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """Paths of the development CA and the SuperLink's server certificate."""

    ca_key: Path
    ca_cert: Path
    server_key: Path
    server_cert: Path


@dataclasses.dataclass(frozen=True)
class NodeKeyFiles:
    """One SuperNode's authentication key pair (OpenSSH formats)."""

    name: str
    private_key: Path
    public_key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable only by its owner (0600 from creation on)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def write_tls_files(out: str | Path, hosts: Iterable[str] = ("127.0.0.1", "localhost"), *,
                    now: datetime.datetime | None = None) -> TlsFiles:
    """Create a development CA and a SuperLink certificate for ``hosts`` in ``out``.

    Files: ``ca.key``/``ca.pem`` (the CA) and ``server.key``/``server.pem`` (signed by the CA,
    subjectAltName = every host name and IP address in ``hosts``). Existing files are replaced.

    Args:
        out: Folder to write into (created if missing).
        hosts: Names and IP addresses that SuperNodes and the CLI use to reach the SuperLink.
        now: Start of the validity period (a deterministic seam for tests); default: now.

    Returns:
        The four paths.

    Raises:
        ValueError: If ``hosts`` is empty.

    Example:
        >>> files = write_tls_files("certs", ["127.0.0.1", "server.example.org"])  # doctest: +SKIP
    """
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise ValueError("hosts is empty: the server certificate must name at least one host "
                         "or IP address that SuperNodes dial")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=_VALID_DAYS)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedkit development CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    files = TlsFiles(ca_key=folder / "ca.key", ca_cert=folder / "ca.pem",
                     server_key=folder / "server.key", server_cert=folder / "server.pem")
    _write_private(files.ca_key, _pem_key(ca_key))
    _write_private(files.server_key, _pem_key(server_key))
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return files


def write_node_keys(out: str | Path, names: Iterable[str]) -> list[NodeKeyFiles]:
    """Create one SuperNode authentication key pair per name in ``out``.

    Files per name: ``<name>.key`` (OpenSSH private key, 0600; give it to the SuperNode as
    ``--auth-supernode-private-key``) and ``<name>.pub`` (register it on the SuperLink side
    with ``flwr supernode register <name>.pub <connection>``).

    Raises:
        ValueError: If a name is empty or contains a path separator.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for name in names:
        if not name or os.sep in name or name.startswith("."):
            raise ValueError(f"SuperNode key name {name!r} must be a plain, non-empty file name")
        key = ec.generate_private_key(ec.SECP384R1())
        files = NodeKeyFiles(name=name, private_key=folder / f"{name}.key",
                             public_key=folder / f"{name}.pub")
        _write_private(files.private_key, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()))
        files.public_key.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n")
        result.append(files)
    return result
