"""Which partition a record's key goes to: Kafka's default partitioner.

Its own module so that `make up` compiles it (ops/stack/native.py): the edge hashes the key of
every record, ~1.3 µs of each span as Python when a trace exports five; 0.08 µs a key compiled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_extensions import i64  # a 64-bit int to mypyc, an int to the interpreter


# Not cached: a cache of 65,536 keys (one per trace) held ~20 MB of the api's 150 MB budget
# once full, whatever the load, and a hit (~0.1 µs) saved nothing over the hash compiled.
def partition_for(key: bytes, partitions: int) -> int:
    # The Java client's default partitioner, so other producers agree on a key's partition.
    return (murmur2(key) & 0x7FFFFFFF) % partitions


_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils), as aiokafka's but faster: compiled
    in 64-bit integers (a 32-bit word times _M stays below 2**63, where mypyc's own ints, 63
    bits, overflow into objects and ran slower than the interpreter), the words read byte by
    byte (struct.unpack_from made a tuple of int objects: 0.7 µs for a 74-byte key)."""
    length: i64 = len(data)
    h: i64 = 0x9747B28C ^ length
    n4: i64 = length >> 2
    end: i64 = n4 << 2
    i: i64 = 0
    while i < end:
        k: i64 = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        i += 4
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        i = n4 << 2
        if tail == 3:
            h ^= data[i + 2] << 16
        if tail >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)
