"""Long-term signing keys of the consistency round: Ed25519 keys and the operator's key list.

With ``SecAggConfig(consistency_check=True)`` (docs/secagg.md, "Consistency round") each
client holds a long-term Ed25519 signing key, and every client holds the same **key list**:
client id -> Ed25519 public key. The operator distributes the key list to the clients over
their own configuration (a file named by the node's ``secagg-key-list``), never through the
server: a server that could hand out the key list could also add keys it holds. The server
may hold a copy too, for robustness only (``SecAggServer(key_list=...)`` drops a badly signed
entry instead of relaying it; clients still check every entry against their own list).

What is signed (every statement starts with a domain label, the protocol version and the
32-byte :func:`config_digest` of the instance, which binds run, round and every parameter):

* :func:`roster_statement` -- advertise keys: the client's id, the 16-byte digest of its two
  X25519 public keys (:func:`fedkit.privacy.graph.key_digest`) and, with ``committed_graph``,
  its nonce commitment;
* :func:`survivors_statement` -- consistency check: the set U3 of clients whose masked input
  the server says it received.

Key list file (:meth:`KeyList.load`, :meth:`KeyList.save`): a JSON object whose keys are
client ids written as decimal strings and whose values are public keys, each either 64 hex
digits (the raw 32-byte key) or a PEM ``PUBLIC KEY`` block of an Ed25519 key::

    {"0": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "1": "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA...\\n-----END PUBLIC KEY-----\\n"}

A signing key file is a PEM ``PRIVATE KEY`` (PKCS#8, unencrypted) of an Ed25519 key
(:meth:`SigningKey.from_pem`, :meth:`SigningKey.to_pem`).

Example:
    >>> keys, key_list = generate_signing_keys(3)
    >>> statement = b"fedkit"
    >>> key_list.verify(2, keys[2].sign(statement), statement)
    True
    >>> key_list.verify(1, keys[2].sign(statement), statement)
    False

References:
    K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
    Learning", CCS 2017, §4 and Fig. 4 (signed keys and ConsistencyCheck against an active
    server). RFC 8032 (Ed25519).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fedkit.privacy.hazmat.keys import PROTOCOL, PROTOCOL_VERSION
from fedkit.privacy.secagg._config import SecAggConfig, SecAggConfigError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "KeyList",
    "SigningIdentity",
    "SigningKey",
    "config_digest",
    "generate_signing_keys",
    "roster_statement",
    "simulation_signing_keys",
    "survivors_statement",
    "write_signing_keys",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
_U64 = (1 << 64) - 1
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class SigningKey:
    """A client's long-term Ed25519 signing key; the private half never appears in ``repr``.

    Example:
        >>> key = SigningKey.generate()
        >>> len(key.public), len(key.sign(b"x"))
        (32, 64)
    """

    __slots__ = ("_private", "public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "signing key") -> SigningKey:
        """Read an unencrypted PKCS#8 PEM Ed25519 private key.

        Raises:
            SecAggConfigError: Not a PEM private key, or not an Ed25519 one (``source`` is
                named; the key is never echoed).
        """
        try:
            private = serialization.load_pem_private_key(bytes(data), password=None)
        except (ValueError, TypeError) as exc:
            raise SecAggConfigError(f"{source}: not an unencrypted PEM private key ({exc})"
                                    ) from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise SecAggConfigError(f"{source}: a {type(private).__name__}, expected an "
                                    "Ed25519 private key")
        return cls(private)

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        """Read :meth:`from_pem` from a file.

        Raises:
            SecAggConfigError: An unreadable or invalid file (its path is named).
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SecAggConfigError(f"signing key file {path}: cannot be read ({exc})") from exc
        return cls.from_pem(data, source=f"signing key file {path}")

    def to_pem(self) -> bytes:
        """The key as an unencrypted PKCS#8 PEM block (keep it on the client)."""
        return self._private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_pem` to ``path``, readable by its owner only."""
        target = Path(path)
        target.touch(mode=0o600, exist_ok=True)
        target.write_bytes(self.to_pem())

    def sign(self, statement: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``statement``."""
        return self._private.sign(bytes(statement))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public[:4].hex()}..., private=<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # pragma: no cover - defensive
        raise TypeError("SigningKey holds a private key and cannot be pickled")


def _public_bytes(value: object, where: str) -> bytes:
    """A raw 32-byte Ed25519 public key from raw bytes, 64 hex digits or a PEM block."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if len(raw) != PUBLIC_KEY_SIZE:
            raise SecAggConfigError(f"{where}: public key has {len(raw)} bytes, expected "
                                    f"{PUBLIC_KEY_SIZE}")
        return raw
    if not isinstance(value, str):
        raise SecAggConfigError(f"{where}: public key is a {type(value).__name__}, expected "
                                "64 hex digits or a PEM Ed25519 public key")
    text = value.strip()
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise SecAggConfigError(f"{where}: unreadable PEM public key ({exc})") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise SecAggConfigError(f"{where}: PEM public key is a {type(key).__name__}, "
                                    "expected an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise SecAggConfigError(f"{where}: public key {text[:20]!r}... is neither 64 hex digits "
                            "nor a PEM Ed25519 public key")


class KeyList(Mapping[int, bytes]):
    """The operator's list of client ids and their Ed25519 public keys (read-only).

    Args:
        keys: Client id (an integer in ``[0, 2^64)``) -> raw 32-byte public key, 64 hex
            digits or a PEM public key.
        source: Named in errors (e.g. the file it came from).

    Raises:
        SecAggConfigError: An id that is not an integer in range, a key that is not an
            Ed25519 public key, or two ids with the same key (one party holding two
            identities); the error names the entry.
    """

    def __init__(self, keys: Mapping[int, bytes | str], *, source: str = "key list") -> None:
        entries: dict[int, bytes] = {}
        verifiers: dict[int, Ed25519PublicKey] = {}
        owner: dict[bytes, int] = {}
        for raw_id, value in keys.items():
            where = f"{source}: entry {raw_id!r}"
            if isinstance(raw_id, bool) or not isinstance(raw_id, int) or not (
                    0 <= raw_id <= _U64):
                raise SecAggConfigError(f"{where}: client id must be an integer in "
                                        "[0, 2^64)")
            public = _public_bytes(value, where)
            try:
                verifiers[raw_id] = Ed25519PublicKey.from_public_bytes(public)
            except ValueError as exc:
                raise SecAggConfigError(f"{where}: not an Ed25519 public key ({exc})") from exc
            if public in owner:
                raise SecAggConfigError(f"{source}: entries {owner[public]} and {raw_id} have "
                                        "the same public key (one key, two identities)")
            owner[public] = raw_id
            entries[raw_id] = public
        self._keys = dict(sorted(entries.items()))
        self._verifiers = verifiers  # the validated keys, ready to verify
        self.source = source

    # -- Mapping -------------------------------------------------------------------------
    def __getitem__(self, client_id: int) -> bytes:
        return self._keys[client_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyList({len(self)} clients, source={self.source!r})"

    def verify(self, client_id: int, signature: bytes, statement: bytes) -> bool:
        """Whether ``signature`` is client ``client_id``'s signature of ``statement``; False
        for an id not in the list or a signature of the wrong size."""
        if client_id not in self._verifiers or len(signature) != SIGNATURE_SIZE:
            return False
        try:
            self._verifiers[client_id].verify(bytes(signature), bytes(statement))
        except InvalidSignature:
            return False
        return True

    # -- files ---------------------------------------------------------------------------
    def to_json(self) -> str:
        """The key list file's text: ``{"<id>": "<64 hex digits>", ...}`` in id order."""
        return json.dumps({str(cid): key.hex() for cid, key in self._keys.items()}, indent=1)

    @classmethod
    def from_json(cls, text: str, *, source: str = "key list") -> KeyList:
        """Parse :meth:`to_json`'s format (values may also be PEM public keys).

        Raises:
            SecAggConfigError: Not a JSON object, an id that is not a decimal integer, or an
                invalid entry (named).
        """
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise SecAggConfigError(f"{source}: not JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise SecAggConfigError(f"{source}: a JSON {type(raw).__name__}, expected an "
                                    'object {"<client id>": "<public key>", ...}')
        keys: dict[int, str] = {}
        for name, value in raw.items():
            if not re.fullmatch(r"[0-9]+", name):
                raise SecAggConfigError(f"{source}: entry {name!r}: client id must be a "
                                        "decimal integer")
            keys[int(name)] = value
        return cls(keys, source=source)

    @classmethod
    def load(cls, path: str | Path) -> KeyList:
        """Read a key list file.

        Raises:
            SecAggConfigError: An unreadable file or an invalid entry (file and entry named).
        """
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecAggConfigError(f"key list file {path}: cannot be read ({exc})") from exc
        return cls.from_json(text, source=f"key list file {path}")

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json() + "\n")


class SigningIdentity:
    """What a client signs and verifies with: its own signing key and the operator's key list.

    Args:
        signing_key: This client's long-term key.
        key_list: Every client's public key, from the client's own configuration.
    """

    __slots__ = ("key_list", "signing_key")

    def __init__(self, signing_key: SigningKey, key_list: KeyList) -> None:
        if not isinstance(signing_key, SigningKey) or not isinstance(key_list, KeyList):
            raise SecAggConfigError("SigningIdentity needs a SigningKey and a KeyList, got "
                                    f"{type(signing_key).__name__} and "
                                    f"{type(key_list).__name__}")
        self.signing_key = signing_key
        self.key_list = key_list

    def check_owner(self, client_id: int) -> None:
        """Refuse unless the key list gives ``client_id`` this identity's public key.

        Raises:
            SecAggConfigError: ``client_id`` missing from the key list, or listed with
                another key (a misconfigured node, or a server that assigned it another id).
        """
        listed = self.key_list.get(client_id)
        if listed is None:
            raise SecAggConfigError(f"client {client_id} is not in its {self.key_list.source}"
                                    "; the consistency check needs every client in the list")
        if listed != self.signing_key.public:
            raise SecAggConfigError(f"client {client_id}: its signing key is not the key its "
                                    f"{self.key_list.source} lists for client {client_id} "
                                    "(wrong key file, or the server assigned another id)")

    def __repr__(self) -> str:
        return f"SigningIdentity({self.signing_key!r}, {self.key_list!r})"


def generate_signing_keys(num_clients: int, *, client_ids: Iterable[int] | None = None
                          ) -> tuple[dict[int, SigningKey], KeyList]:
    """Fresh signing keys (from the OS) for ``num_clients`` clients, and their key list.

    Args:
        num_clients: How many clients; ids ``0..num_clients-1`` unless ``client_ids``.
        client_ids: The ids, if not ``range(num_clients)``.

    Returns:
        ``(client id -> SigningKey, KeyList)``: give each client its key and all of them the
        key list (docs/deployment.md).
    """
    ids = list(range(num_clients)) if client_ids is None else sorted(client_ids)
    if client_ids is not None and len(ids) != num_clients:
        raise SecAggConfigError(f"generate_signing_keys: {len(ids)} client ids given for "
                                f"num_clients={num_clients}")
    keys = {cid: SigningKey.generate() for cid in ids}
    return keys, KeyList({cid: key.public for cid, key in keys.items()},
                         source="generated key list")


def write_signing_keys(folder: str | Path, num_clients: int) -> tuple[dict[int, Path], Path]:
    """Generate a key set for clients ``0..num_clients-1`` and write it for distribution:
    ``client-<id>.pem`` (each client's private key, mode 0600: copy it to that client only)
    and ``key-list.json`` (every client gets the same copy; the server needs none, and may
    hold one to drop badly signed entries: ``secagg_key_list``).

    Returns:
        ``(client id -> its key file, the key list file)``.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    keys, key_list = generate_signing_keys(num_clients)
    paths = {cid: target / f"client-{cid}.pem" for cid in keys}
    for cid, key in keys.items():
        key.save(paths[cid])
    key_list.save(target / "key-list.json")
    return paths, target / "key-list.json"


def simulation_signing_keys(seed: int, num_clients: int) -> tuple[dict[int, SigningKey], KeyList]:
    """Signing keys of clients ``0..num_clients-1`` derived from a run seed: **simulation only**.

    Everyone who knows the seed -- the server included -- knows every key, so these keys
    protect nothing against a malicious server; they let a simulation, where every party is
    one process, run the consistency round's real signatures and checks. Key of client u:
    ``SHA-256("fedkit-secagg/simulation-signing-key" | "<seed>|<u>")`` as an Ed25519 seed.
    """
    keys = {}
    for cid in range(num_clients):
        raw = hashlib.sha256(PROTOCOL + b"/simulation-signing-key"
                             + f"{int(seed)}|{cid}".encode()).digest()
        keys[cid] = SigningKey(Ed25519PrivateKey.from_private_bytes(raw))
    return keys, KeyList({cid: key.public for cid, key in keys.items()},
                         source=f"simulation key list (seed {seed})")


def config_digest(config: SecAggConfig) -> bytes:
    """32 bytes binding an instance: SHA-256 over its class name and ``to_fields`` (run,
    round and every parameter), so a signature of one instance is worthless in another."""
    fields = json.dumps(config.to_fields(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(PROTOCOL + b"/instance" + type(config).__name__.encode() + b"|"
                          + fields.encode()).digest()


def _statement(label: bytes, config: SecAggConfig) -> bytes:
    return PROTOCOL + label + struct.pack(">B", PROTOCOL_VERSION) + config_digest(config)


def roster_statement(config: SecAggConfig, client_id: int, key_digest: bytes,
                     commitment: bytes = b"") -> bytes:
    """What a client signs in advertise keys: ``"fedkit-secagg/roster-entry" | u8 version |
    config digest | u64 id | key digest (16) | nonce commitment (32, committed graph only)``."""
    return (_statement(b"/roster-entry", config) + struct.pack(">Q", client_id)
            + bytes(key_digest) + bytes(commitment))


def survivors_statement(config: SecAggConfig, survivors: Iterable[int]) -> bytes:
    """What a client signs in the consistency check: ``"fedkit-secagg/survivors" | u8
    version | config digest | u32 count | u64 id*`` (U3, increasing ids)."""
    ids = sorted(survivors)
    return (_statement(b"/survivors", config)
            + struct.pack(f">I{len(ids)}Q", len(ids), *ids))
