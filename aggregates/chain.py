"""The hash chain's canonical encoding (documented in README, "Integrity").

Every stored event state is the envelope ``{"body":B,"hash":H}`` where ``B`` is the
canonical JSON of the event (keys sorted by code point, no whitespace, UTF-8, non-ASCII
unescaped) and ``H`` is the lowercase hex SHA-256 of ``B``. ``B`` holds the originator id,
version, topic, class version, both times, the actor, ``prev_hash`` (``H`` of the same
originator's previous event, or 64 zeros) and the payload fields.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS = "0" * 64
_HEAD = b'{"body":'
ENVELOPE_START = _HEAD  # how every unencrypted stored state begins
_MID = b',"hash":"'
_TAIL = b'"}'
_HASH_LEN = 64


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (same as json.dumps(sort_keys, compact, ensure_ascii=False))."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def envelope(body: bytes, body_hash: str) -> bytes:
    return _HEAD + body + _MID + body_hash.encode() + _TAIL


def open_envelope(state: bytes) -> tuple[bytes, str]:
    """Split a stored envelope into (body bytes, recorded hash) without re-encoding."""
    if not (state.startswith(_HEAD) and state.endswith(_TAIL)):
        raise ValueError("stored state is not a hash-chain envelope")
    cut = len(state) - len(_TAIL) - _HASH_LEN
    if state[cut - len(_MID) : cut] != _MID:
        raise ValueError("stored state is not a hash-chain envelope")
    return state[len(_HEAD) : cut - len(_MID)], state[cut : cut + _HASH_LEN].decode()


def link(previous_digest: str, event_hash: str) -> str:
    """One step of the log digest: SHA-256 over the two 32-byte hashes."""
    return hashlib.sha256(bytes.fromhex(previous_digest) + bytes.fromhex(event_hash)).hexdigest()
