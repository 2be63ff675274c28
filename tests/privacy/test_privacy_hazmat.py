"""Known-answer and property tests of the hazardous-materials layer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fedkit.privacy.hazmat import aead, shamir
from fedkit.privacy.hazmat.keys import (
    KeyAgreementError,
    KeyPair,
    derive_key,
    hkdf_info,
    hkdf_sha256,
)
from fedkit.privacy.hazmat.prg import MaskExpander, expand_mask, ring_dtype

# RFC 7748 §6.1 (X25519 Diffie-Hellman).
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 5869 Appendix A.1 (test case 1, HKDF-SHA256).
HKDF_IKM = bytes.fromhex("0b" * 22)
HKDF_SALT = bytes.fromhex("000102030405060708090a0b0c")
HKDF_INFO = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
HKDF_OKM = bytes.fromhex(
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
)

# NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), first block: keystream = plaintext ^ ciphertext.
CTR_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
CTR_IV = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
CTR_PT = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
CTR_CT = bytes.fromhex("874d6191b620e3261bef6864990db6ce")


def test_x25519_rfc7748_vectors():
    alice = KeyPair.from_private_bytes(ALICE_PRIVATE)
    bob = KeyPair.from_private_bytes(BOB_PRIVATE)
    assert alice.public == ALICE_PUBLIC
    assert bob.public == BOB_PUBLIC
    assert alice.exchange(BOB_PUBLIC) == SHARED == bob.exchange(ALICE_PUBLIC)


def test_hkdf_rfc5869_case1():
    assert hkdf_sha256(HKDF_IKM, salt=HKDF_SALT, info=HKDF_INFO, length=42) == HKDF_OKM


def test_keypair_repr_redacts_private_key():
    pair = KeyPair.from_private_bytes(ALICE_PRIVATE)
    assert "redacted" in repr(pair)
    assert ALICE_PRIVATE.hex()[:8] not in repr(pair) + str(pair)


def test_exchange_rejects_low_order_point_and_bad_length():
    pair = KeyPair.generate()
    with pytest.raises(KeyAgreementError, match="low-order point"):
        pair.exchange(bytes(32))
    with pytest.raises(KeyAgreementError, match="must be 32 bytes, got 31"):
        pair.exchange(bytes(31))
    with pytest.raises(KeyAgreementError, match="private key must be 32 bytes"):
        KeyPair.from_private_bytes(b"short")


def test_derive_key_binds_round_purpose_and_ids():
    base = dict(purpose="mask", run_id=1, round_id=2, u=3, v=4)
    key = derive_key(SHARED, **base)
    assert key == derive_key(SHARED, **{**base, "u": 4, "v": 3})  # ordered ids
    for change in ({"round_id": 3}, {"run_id": 2}, {"purpose": "enc"}, {"v": 5}):
        assert derive_key(SHARED, **{**base, **change}) != key
    assert hkdf_info(**base).startswith(b"fedkit-secagg\x01")


def test_derive_key_rejects_bad_arguments():
    with pytest.raises(ValueError, match="purpose 'other' unknown"):
        derive_key(SHARED, purpose="other", run_id=0, round_id=0, u=0, v=1)
    with pytest.raises(ValueError, match=r"round_id=-1 must be an integer in \[0, 2\*\*64\)"):
        derive_key(SHARED, purpose="mask", run_id=0, round_id=-1, u=0, v=1)
    with pytest.raises(KeyAgreementError, match="at least 32 bytes"):
        derive_key(b"x", purpose="mask", run_id=0, round_id=0, u=0, v=1)


def test_prg_matches_aes_ctr_known_answer():
    keystream = bytes(a ^ b for a, b in zip(CTR_PT, CTR_CT, strict=True))
    mask = expand_mask(CTR_KEY + CTR_IV, 4, bits=32)
    assert mask.tobytes() == keystream
    assert expand_mask(CTR_KEY + CTR_IV, 2, bits=64).tobytes() == keystream


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("length", [1, 3, 1000, 4097])
def test_prg_output_length_exact_and_distinct_keys_distinct_streams(bits, length):
    a, b = os.urandom(32), os.urandom(32)
    mask_a = expand_mask(a, length, bits=bits)
    assert mask_a.shape == (length,) and mask_a.dtype == ring_dtype(bits)
    assert np.array_equal(mask_a, expand_mask(a, length, bits=bits))
    if length >= 3:
        assert not np.array_equal(mask_a, expand_mask(b, length, bits=bits))
    # a one-bit change of the seed changes the stream
    flipped = bytes([a[0] ^ 1]) + a[1:]
    assert not np.array_equal(mask_a, expand_mask(flipped, length, bits=bits))


def test_mask_expander_add_subtract_cancels_and_validates():
    expander = MaskExpander(10, bits=32)
    acc = np.arange(10, dtype=np.uint32)
    expander.add_into(acc, SHARED, sign=+1)
    assert not np.array_equal(acc, np.arange(10))
    expander.add_into(acc, SHARED, sign=-1)
    assert np.array_equal(acc, np.arange(10))
    with pytest.raises(ValueError, match=r"expected \(10,\) uint32"):
        expander.add_into(np.zeros(9, np.uint32), SHARED, sign=1)
    with pytest.raises(ValueError, match="sign=2 must be"):
        expander.add_into(acc, SHARED, sign=2)
    with pytest.raises(ValueError, match="seed must be 32 bytes, got 5"):
        expander.expand(b"short")
    with pytest.raises(ValueError, match="bits=16 unsupported"):
        MaskExpander(3, bits=16)
    with pytest.raises(ValueError, match="length=0 must be a positive"):
        MaskExpander(0)


@pytest.mark.parametrize(("n", "t"), [(2, 2), (5, 3), (12, 7), (200, 101)])
def test_shamir_any_threshold_subset_recovers(n, t):
    secret = os.urandom(32)
    shares = shamir.split(secret, n, t)
    rng = np.random.default_rng(n)
    for _ in range(3):
        subset = [shares[i] for i in rng.permutation(n)[:t]]
        assert shamir.combine(subset, t) == secret


def test_shamir_custom_xs_and_precomputed_coefficients():
    secret = bytes(range(32))
    shares = shamir.split(secret, 4, 3, xs=[7, 11, 2, 40])
    coeffs = shamir.lagrange_coefficients([s.x for s in shares[1:]])
    assert shamir.combine_with(coeffs, [s.y for s in shares[1:]]) == secret


def test_shamir_fewer_shares_do_not_reveal_and_are_refused():
    secret = os.urandom(32)
    shares = shamir.split(secret, 5, 3)
    with pytest.raises(shamir.ShamirError, match="got 2 shares, need at least threshold=3"):
        shamir.combine(shares[:2], 3)
    with pytest.raises(shamir.ShamirError, match="duplicate share x-coordinate 1"):
        shamir.combine([shares[0], shares[0], shares[1]], 3)


def test_shamir_rejects_bad_parameters():
    with pytest.raises(shamir.ShamirError, match="secret must be 32 bytes, got 31"):
        shamir.split(bytes(31), 3, 2)
    with pytest.raises(shamir.ShamirError, match="threshold=4 must satisfy"):
        shamir.split(bytes(32), 3, 4)
    with pytest.raises(shamir.ShamirError, match="duplicate share x-coordinate 2"):
        shamir.split(bytes(32), 3, 2, xs=[1, 2, 2])
    with pytest.raises(shamir.ShamirError, match="x-coordinate 0 must be"):
        shamir.split(bytes(32), 2, 2, xs=[0, 1])
    with pytest.raises(shamir.ShamirError, match="got 2 x-coordinates"):
        shamir.split(bytes(32), 3, 2, xs=[1, 2])
    with pytest.raises(shamir.ShamirError, match="must be 66 bytes"):
        shamir.Share.from_bytes(1, bytes(65))
    with pytest.raises(shamir.ShamirError, match="not a field element"):
        shamir.Share.from_bytes(1, b"\xff" * 66)


def test_shamir_corrupted_share_out_of_range_is_detected():
    secret = os.urandom(32)
    shares = shamir.split(secret, 3, 3)
    bad = [
        shares[0],
        shares[1],
        shamir.Share(shares[2].x, (shares[2].y + (1 << 400)) % shamir.PRIME),
    ]
    with pytest.raises(shamir.ShamirError, match="inconsistent"):
        shamir.combine(bad, 3)  # the secret moves by 2^400: no longer 32 bytes


def test_share_repr_redacts_value():
    share = shamir.split(bytes(32), 2, 2)[0]
    assert repr(share) == "Share(x=1, y=<redacted>)"


def test_aead_round_trip_and_tampering():
    key = os.urandom(16)
    ad = aead.associated_data(run_id=0, round_id=3, sender=1, receiver=2)
    ct = aead.encrypt(key, b"share bundle", associated=ad)
    assert aead.decrypt(key, ct, associated=ad) == b"share bundle"
    corrupted = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(aead.AuthenticationError, match="failed AES-GCM authentication"):
        aead.decrypt(key, corrupted, associated=ad)
    for other in (
        aead.associated_data(run_id=0, round_id=4, sender=1, receiver=2),
        aead.associated_data(run_id=0, round_id=3, sender=2, receiver=1),
        aead.associated_data(run_id=1, round_id=3, sender=1, receiver=2),
    ):
        with pytest.raises(aead.AuthenticationError, match="another round, sender or receiver"):
            aead.decrypt(key, ct, associated=other)
    with pytest.raises(aead.AuthenticationError, match="shorter than nonce"):
        aead.decrypt(key, b"tiny", associated=ad)
    with pytest.raises(ValueError, match="key must be 16 bytes, got 32"):
        aead.encrypt(bytes(32), b"x", associated=ad)
