"""Request bodies as bytes: content codings and the client errors of decoding.

The codings are those OpenTelemetry Collectors' OTLP/HTTP exporters send (gzip, zstd, zlib,
deflate, snappy, x-snappy-framed, lz4) and x-gzip.

Both ingestion dialects (the batch JSON API and OTLP/HTTP) read their body through
`decompress`, which stops as soon as the output passes the limit, so a small compressed
"bomb" costs at most `limit` bytes of memory. Every error here is the client's fault and
carries the HTTP status the edge answers with; none is worth a retry.
"""

from __future__ import annotations

import io
import zlib

import zstandard

# Output is produced in slices of this size, so the limit is checked at least this often.
_CHUNK = 256 * 1024


class ClientError(Exception):
    """Bad input from the client: answered with `status` and `message`, never retried."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DecodeError(ClientError):
    """Corrupt compressed data or a malformed payload (400)."""

    status = 400


class BodyTooLarge(ClientError):
    """The body, once decompressed, is larger than the limit (413)."""

    status = 413


class UnsupportedEncoding(ClientError):
    """A Content-Encoding this edge does not decode (415, RFC 9110 §15.5.16)."""

    status = 415


class UnsupportedMediaType(ClientError):
    """A Content-Type this endpoint does not accept (415)."""

    status = 415


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo the Content-Encoding of `body`; raise BodyTooLarge once output exceeds `limit` bytes.

    Accepts identity, gzip (also x-gzip, concatenated members), deflate and zlib (zlib-wrapped,
    or raw as some clients send it), zstd and lz4 (also several frames), snappy (the block or the
    framing format) and x-snappy-framed. A list such as "gzip, zstd" is undone last coding
    first, as RFC 9110 says it was applied in order.
    """
    codings = _codings(content_encoding)
    data = body
    if not codings and len(data) > limit:
        raise BodyTooLarge(f"body exceeds {limit} bytes")
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise UnsupportedEncoding(f"unsupported Content-Encoding {coding!r}")
        data = decoder(data, limit)
    return data


def _codings(header: str | None) -> list[str]:
    if not header:
        return []
    out = []
    for part in header.split(","):
        coding = part.strip().lower()
        if coding and coding != "identity":
            out.append(coding)
    return out


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"decompressed body exceeds {limit} bytes")


def _zlib_stream(data: bytes, limit: int, wbits: int, name: str) -> bytes:
    """Inflate with bounded output; gzip members may follow each other (RFC 1952 §2.2)."""
    out = bytearray()
    pending = data
    try:
        while True:
            d = zlib.decompressobj(wbits)
            while pending:
                out += d.decompress(pending, min(_CHUNK, limit + 1 - len(out)))
                if len(out) > limit:
                    raise _too_large(limit)
                pending = d.unconsumed_tail
                if d.eof:
                    break
            while not d.eof:
                # All input consumed but the stream may still hold output (or be truncated).
                chunk = d.decompress(b"", min(_CHUNK, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise _too_large(limit)
            if not d.eof:
                raise DecodeError(f"truncated {name} data")
            pending = d.unused_data
            if not pending.strip(b"\x00"):  # tolerate zero padding, as gzip(1) does
                return bytes(out)
            if wbits != _GZIP_WBITS:
                raise DecodeError(f"trailing garbage after {name} data")
    except zlib.error as exc:
        raise DecodeError(f"corrupt {name} data: {exc}") from None


_GZIP_WBITS = 16 + zlib.MAX_WBITS


def _gunzip(data: bytes, limit: int) -> bytes:
    return _zlib_stream(data, limit, _GZIP_WBITS, "gzip")


def _inflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" means the zlib format (RFC 1950), but some clients send raw deflate:
    # a zlib stream starts with a header whose CM is 8 and whose 16 bits are a multiple of 31.
    is_zlib = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return _zlib_stream(data, limit, zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS, "deflate")


_ZSTD = zstandard.ZstdDecompressor()


def _unzstd(data: bytes, limit: int) -> bytes:
    # zstandard's bounded reader silently stops at a truncated frame, and its decompressobj,
    # which reports truncation, has no output bound. So: first measure the output with the
    # reader (in slices, kept nowhere), then decode for real, knowing the output fits.
    size = 0
    try:
        with _ZSTD.stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
            while chunk := reader.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
        out = bytearray()
        pending = data
        while pending:
            d = _ZSTD.decompressobj()
            out += d.decompress(pending)
            if not d.eof:
                raise DecodeError("truncated zstd data")
            pending = d.unused_data
    except zstandard.ZstdError as exc:
        raise DecodeError(f"corrupt zstd data: {exc}") from None
    return bytes(out)


def _unlz4(data: bytes, limit: int) -> bytes:
    """LZ4 frames (the Collector's `lz4`), one after another too, output bounded."""
    # Imported at first use, as snappy's codec: ~2 MB of the api's RSS that most never need.
    import lz4.frame

    out = bytearray()
    pending = data
    try:
        while pending:
            d = lz4.frame.LZ4FrameDecompressor()
            out += d.decompress(pending, max_length=limit + 1 - len(out))
            while not d.eof and not d.needs_input and len(out) <= limit:
                out += d.decompress(b"", max_length=limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit)
            if not d.eof:
                raise DecodeError("truncated lz4 data")
            pending = d.unused_data or b""
    except RuntimeError as exc:  # python-lz4's error for a frame it cannot decode
        raise DecodeError(f"corrupt lz4 data: {exc}") from None
    return bytes(out)


# The stream identifier that starts snappy's framing format (framing_format.txt, chunk 0xff).
_SNAPPY_STREAM = b"\xff\x06\x00\x00sNaPpY"
_SNAPPY_CHUNK = 65536  # the most a chunk of the framing format decompresses to


def _unsnappy(data: bytes, limit: int) -> bytes:
    """`snappy`: the block format (Collectors since 0.125, Prometheus), or the framing format,
    which earlier Collectors sent under this name: told apart by the stream identifier, as the
    Collector's own server does."""
    if data.startswith(_SNAPPY_STREAM):
        return _unsnappy_framed(data, limit)
    return bytes(_snappy_block(data, limit))


def _snappy_block(data: bytes, limit: int) -> bytes:
    import cramjam

    # The block starts with its decompressed length: checked before anything is decompressed.
    if _snappy_length(data) > limit:
        raise _too_large(limit)
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"corrupt snappy data: {exc}") from None


def _snappy_length(block: bytes) -> int:
    """What a snappy block says it decompresses to."""
    import cramjam

    try:
        return int(cramjam.snappy.decompress_raw_len(block))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"corrupt snappy data: {exc}") from None


def _snappy_chunk(chunk: bytes) -> bytes:
    """One data chunk of the framing format (at most 64 KiB once decompressed, checked before),
    decompressed by the format's own decoder as a stream of that chunk alone: it verifies the
    chunk's CRC-32C, which the standard library has no function for."""
    import cramjam

    try:
        return bytes(cramjam.snappy.decompress(_SNAPPY_STREAM + chunk))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"corrupt snappy chunk: {exc}") from None


def _unsnappy_framed(data: bytes, limit: int) -> bytes:
    """Snappy's framing format (`x-snappy-framed`): chunks of at most 64 KiB each, decompressed
    one by one, so the output is bounded as it grows, and each checked against its CRC-32C."""
    out = bytearray()
    at, end = 0, len(data)
    if data and not data.startswith(_SNAPPY_STREAM):  # an empty stream is an empty body
        raise DecodeError("snappy framed data must start with its stream identifier")
    while at < end:
        if end - at < 4:
            raise DecodeError("truncated snappy frame")
        kind, size = data[at], int.from_bytes(data[at + 1 : at + 4], "little")
        start = at
        body = data[at + 4 : at + 4 + size]
        if len(body) < size:
            raise DecodeError("truncated snappy frame")
        at += 4 + size
        if kind in (0x00, 0x01):  # compressed or uncompressed data, after a 4-byte checksum
            if size < 4:
                raise DecodeError("snappy chunk without its checksum")
            # What it decompresses to: an uncompressed chunk's data, a compressed one's length.
            if (size - 4 if kind == 0x01 else _snappy_length(body[4:])) > _SNAPPY_CHUNK:
                raise DecodeError("snappy chunk longer than 65536 bytes")
            out += _snappy_chunk(data[start:at])
            if len(out) > limit:
                raise _too_large(limit)
        elif kind == 0xFF:
            if body != b"sNaPpY":
                raise DecodeError("bad snappy stream identifier")
        elif kind < 0x80:
            raise DecodeError(f"reserved unskippable snappy chunk {kind:#x}")
        # 0x80-0xfe (padding among them): skippable
    return bytes(out)


_DECODERS = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "zlib": _inflate,
    "zstd": _unzstd,
    "lz4": _unlz4,
    "snappy": _unsnappy,
    "x-snappy-framed": _unsnappy_framed,
}
