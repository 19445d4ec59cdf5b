"""The edge's partitioner must put a key where the Java client (and aiokafka's) would."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2 as reference

from ingest.partitioner import murmur2, partition_for


def test_murmur2_is_kafkas_for_every_length_and_tail() -> None:
    rng = random.Random(7)
    for length in range(0, 260):
        for _ in range(8):
            data = rng.randbytes(length)
            assert murmur2(data) == reference(data), (length, data)
    key = "proj-1:trace-é".encode()
    assert partition_for(key, 12) == (reference(key) & 0x7FFFFFFF) % 12
