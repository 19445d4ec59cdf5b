"""Request bodies as bytes: content codings (gzip, deflate, zstd) and the client errors of decoding.

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

    Accepts identity, gzip (also x-gzip, concatenated members), deflate (zlib-wrapped, or raw
    as some clients send it) and zstd (also several frames). A list such as "gzip, zstd" is
    undone last coding first, as RFC 9110 says it was applied in order.
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


_DECODERS = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "zstd": _unzstd,
}
