"""Derived seeds: one stable seed per (run seed, question, stage, sample), independent of batching,
sharding and process, so the same command gives the same samples however it is split up."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
