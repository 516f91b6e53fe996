"""The seal's sketch: a small, fixed-size summary of the events a seal covers.

An invertible Bloom lookup table: each event (position, originator, version, topic, the
first 16 bytes of its hash) is added to four of 96 cells, one in each quarter (count, XOR of
the 48-byte key, XOR of its checksum). The difference of two sketches of the same positions
holds only the events that differ, and "peeling" it lists them: nearly always when up to
about 40 differ (a tampering typically changes one to four). ``ledger verify`` uses it to
name what changed in a sealed segment of the log: an event deleted, inserted, moved or
rewritten after the seal, which the digest alone could only say "differs".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from dataclasses import dataclass

PARTS = 4
PER_PART = 24
CELLS = PARTS * PER_PART
KEY = struct.Struct(">q16siI16s")  # position, originator, version, topic's CRC-32, hash
KEY_SIZE = KEY.size
CELL = struct.Struct(f">i{KEY_SIZE}s8s")  # count, XOR of keys, XOR of checksums
MASK = (1 << 63) - 1
VERSION_MASK = (1 << 31) - 1


@dataclass(frozen=True)
class Entry:
    """One event as the sketch knows it."""

    position: int
    key: str  # the originator's 32 hex digits
    version: int
    topic_crc: int
    hash: str  # the first 32 hex digits of its hash


def topic_crc(topic: str) -> int:
    return zlib.crc32(topic.encode())


def _originator_bytes(key: str) -> bytes:
    try:
        raw = binascii.unhexlify(key)
    except (binascii.Error, ValueError):
        raw = b""
    return raw if len(raw) == 16 else hashlib.sha256(key.encode()).digest()[:16]


def _clamp(number: int) -> int:
    return number if -MASK <= number <= MASK else number & MASK


class Sketch:
    def __init__(self) -> None:
        self.counts = [0] * CELLS
        self.keys = [0] * CELLS
        self.checks = [0] * CELLS

    def add(
        self,
        position: int,
        key: object,
        version: object,
        topic: object,
        event_hash: bytes,
        sign: int = 1,
    ) -> None:
        """Add one event, its columns as stored. ValueError when they are not what the ledger
        writes (originator and topic as text, a whole-number version): SQLite keeps whatever
        an UPDATE stores there (text, a real, a blob, NULL), and no entry can hold it."""
        if not (isinstance(key, str) and isinstance(version, int) and isinstance(topic, str)):
            raise ValueError(f"the row at position {position} has columns the ledger never writes")
        packed = KEY.pack(
            _clamp(position),
            _originator_bytes(key),
            version if -VERSION_MASK <= version <= VERSION_MASK else version & VERSION_MASK,
            topic_crc(topic),
            event_hash[:16].rjust(16, b"\0"),
        )
        self._toggle(packed, sign)

    def _toggle(self, packed: bytes, sign: int) -> None:
        digest = hashlib.sha256(packed).digest()
        number = int.from_bytes(packed, "big")
        check = int.from_bytes(digest[8:16], "big")
        for part in range(PARTS):
            cell = part * PER_PART + int.from_bytes(digest[2 * part : 2 * part + 2]) % PER_PART
            self.counts[cell] += sign
            self.keys[cell] ^= number
            self.checks[cell] ^= check

    def encode(self) -> str:
        cells = b"".join(
            CELL.pack(count, key.to_bytes(KEY_SIZE, "big"), check.to_bytes(8, "big"))
            for count, key, check in zip(self.counts, self.keys, self.checks, strict=True)
        )
        return base64.b64encode(cells).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Sketch:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        if len(raw) != CELL.size * CELLS:
            raise ValueError(f"a sketch has {CELLS} cells")
        sketch = cls()
        for cell, (count, key, check) in enumerate(CELL.iter_unpack(raw)):
            sketch.counts[cell] = count
            sketch.keys[cell] = int.from_bytes(key, "big")
            sketch.checks[cell] = int.from_bytes(check, "big")
        return sketch

    def minus(self, other: Sketch) -> Sketch:
        difference = Sketch()
        for cell in range(CELLS):
            difference.counts[cell] = self.counts[cell] - other.counts[cell]
            difference.keys[cell] = self.keys[cell] ^ other.keys[cell]
            difference.checks[cell] = self.checks[cell] ^ other.checks[cell]
        return difference

    def peel(self) -> tuple[list[Entry], list[Entry], bool]:
        """(entries only in self, entries only in the other, whether all were found)."""
        added: list[Entry] = []
        removed: list[Entry] = []
        progress = True
        while progress:
            progress = False
            for cell in range(CELLS):
                sign = self.counts[cell]
                if sign not in (1, -1) or not self._pure(cell):
                    continue
                packed = self.keys[cell].to_bytes(KEY_SIZE, "big")
                (added if sign == 1 else removed).append(_entry(packed))
                self._toggle(packed, -sign)
                progress = True
        complete = not any(self.counts) and not any(self.keys) and not any(self.checks)
        return added, removed, complete

    def _pure(self, cell: int) -> bool:
        packed = self.keys[cell].to_bytes(KEY_SIZE, "big")
        return self.checks[cell] == int.from_bytes(hashlib.sha256(packed).digest()[8:16], "big")


def _entry(packed: bytes) -> Entry:
    position, originator, version, crc, event_hash = KEY.unpack(packed)
    return Entry(position, originator.hex(), version, crc, event_hash.hex())
