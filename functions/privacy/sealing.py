"""The cryptography CityShare applies to personal values, with no pyarrow: keyed tokens, sealed
values padded to length buckets, and sealed files in authenticated chunks.

- Tokens are 128-bit keyed pseudorandom values, as 32 hex characters (TokenKey). The key decides
  the token space: a department's own key for its curated data, a key derived per grant
  for masking, a key derived per (pair of departments, identifier kind) for linkage.
- A sealed value is AES-256-GCM over the value padded (ISO/IEC 7816-4: 0x80 then zeros) to a
  length bucket, so a ciphertext tells which bucket a value falls in, not its exact length.
- A sealed file is a sequence of AES-256-GCM chunks, each bound to its position and to whether it
  is the last one, so chunks cannot be reordered, dropped or cut off unnoticed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# cryptography's ciphers are imported where they are used: the API and analytics functions import
# this module (through key derivation) on every cold start, but most of their requests seal nothing.

TOKEN_BYTES = 16
SHORT_VALUE_BYTES = 15  # with one byte of padding, one AES block
_NONCE = 12
_BUCKET_STEP_ABOVE = 256
_CHUNK_BYTES = 8 * 1024 * 1024
_SEALED_VALUE_VERSION = b"\x02"


def derived_key(secret: bytes, *label: str) -> bytes:
    """A 256-bit key for one purpose, derived from a platform secret (HMAC-SHA256 as a PRF)."""
    return hmac.new(secret, "\x1f".join(label).encode(), hashlib.sha256).digest()


class TokenKey:
    """One token space. A value of at most SHORT_VALUE_BYTES bytes (plates, ids, phone numbers) is
    one AES block: its token is AES-256 of the padded value (a keyed pseudorandom permutation),
    which many values take in one call. A longer value's token is keyed BLAKE2b (a MAC by design),
    one value at a time. Both are 128 bits, under keys derived apart from the space's key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        # ECB on purpose: each value is exactly one block, so this is AES applied to each value on its
        # own, deterministic by design (a token), never a mode over a longer message.
        self._block_cipher = Cipher(algorithms.AES(derived_key(key, "token", "short")), modes.ECB())  # noqa: S305
        self._mac = hashlib.blake2b(key=derived_key(key, "token", "long"), digest_size=TOKEN_BYTES)

    def blocks(self, padded: bytes | memoryview) -> bytes:
        """AES of consecutive padded 16-byte blocks (each a short value), in one call."""
        encryptor = self._block_cipher.encryptor()
        sealed = encryptor.update(padded)
        rest = encryptor.finalize()  # nothing in ECB over whole blocks: no copy of a large result
        return sealed + rest if rest else sealed

    def open_blocks(self, sealed: bytes) -> bytes:
        """The inverse of `blocks`: what the linkage path needs to re-key short values."""
        decryptor = self._block_cipher.decryptor()
        return decryptor.update(sealed) + decryptor.finalize()

    def long(self, value: bytes) -> str:
        state = self._mac.copy()
        state.update(value)
        return state.hexdigest()

    def token(self, value: str) -> str:
        data = value.encode()
        if len(data) <= SHORT_VALUE_BYTES:
            return self.blocks(data + b"\x80" + b"\x00" * (SHORT_VALUE_BYTES - len(data))).hex()
        return self.long(data)


def token_function(key: bytes) -> Callable[[str], str]:
    """value -> its token under `key`, one value at a time (functions.privacy.protect does many at once)."""
    return TokenKey(key).token


def padded_length(length: int) -> int:
    """The bucket a value of `length` bytes is padded to (one byte of padding at least): 16, 32, 64,
    128, 256, then multiples of 256."""
    needed = length + 1
    if needed > _BUCKET_STEP_ABOVE:
        return -(-needed // _BUCKET_STEP_ABOVE) * _BUCKET_STEP_ABOVE
    bucket = 16
    while bucket < needed:
        bucket *= 2
    return bucket


def _pad(data: bytes) -> bytes:
    return data + b"\x80" + b"\x00" * (padded_length(len(data)) - len(data) - 1)


def _unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise ValueError("bad padding")
    return end[:-1]


class ValueSealer:
    """Seals and opens single values with one data key; `associated` binds a value to its place
    (dataset and column), so a ciphertext cannot be moved elsewhere."""

    def __init__(self, key: bytes) -> None:
        self._cipher = _aes_gcm(key)

    def seal(self, value: str, associated: bytes) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._cipher.encrypt(nonce, _pad(value.encode()), associated)
        return base64.b64encode(_SEALED_VALUE_VERSION + nonce + sealed).decode()

    def open(self, sealed: str, associated: bytes) -> str:
        raw = base64.b64decode(sealed)
        if raw[:1] != _SEALED_VALUE_VERSION:
            raise ValueError("not a sealed value")
        return _unpad(self._cipher.decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], associated)).decode()


def seal_stream(source: BinaryIO, key: bytes, associated: bytes) -> Iterator[bytes]:
    """The sealed form of `source`, chunk by chunk (memory bounded by one chunk)."""
    cipher = _aes_gcm(key)
    index = 0
    current = source.read(_CHUNK_BYTES)
    while True:
        following = source.read(_CHUNK_BYTES) if current else b""
        last = not following
        nonce = os.urandom(_NONCE)
        sealed = cipher.encrypt(nonce, current, _chunk_context(associated, index, last))
        yield struct.pack(">I", len(sealed)) + nonce + sealed
        if last:
            return
        current, index = following, index + 1


def open_stream(chunks: Iterable[bytes], key: bytes, associated: bytes) -> bytes:
    """The plain bytes of a sealed file; ValueError if any chunk was altered, moved or cut off."""
    data = b"".join(chunks)
    cipher = _aes_gcm(key)
    plain: list[bytes] = []
    offset, index = 0, 0
    while offset < len(data):
        if offset + 4 + _NONCE > len(data):
            raise ValueError("sealed file cut off")
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        nonce = data[offset + 4 : offset + 4 + _NONCE]
        body = data[offset + 4 + _NONCE : offset + 4 + _NONCE + length]
        offset += 4 + _NONCE + length
        last = offset >= len(data)
        try:
            plain.append(cipher.decrypt(nonce, body, _chunk_context(associated, index, last)))
        except Exception:
            raise ValueError("sealed file altered, reordered or cut off") from None
        index += 1
    if index == 0:
        raise ValueError("empty sealed file")
    return b"".join(plain)


def _aes_gcm(key: bytes) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _chunk_context(associated: bytes, index: int, last: bool) -> bytes:
    return associated + b"|" + str(index).encode() + (b"|last" if last else b"|more")
