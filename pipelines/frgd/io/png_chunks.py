"""PNG chunks: writing ancillary chunks (iTXt) into an encoded PNG, and checking a PNG's chunk structure."""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, ``kind``, ``payload``, CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def itxt(key: str, text: str) -> bytes:
    """An uncompressed iTXt chunk ``key`` = ``text`` (UTF-8)."""
    # keyword \0 compression-flag compression-method language-tag \0 translated-keyword \0 text (UTF-8)
    payload = key.encode("latin-1") + b"\x00\x00\x00" + b"\x00" + b"\x00" + text.encode("utf-8")
    return png_chunk(b"iTXt", payload)


def iccp(profile: bytes, name: str = "ICC profile") -> bytes:
    """An iCCP chunk holding the ICC ``profile`` (zlib-compressed, as the PNG specification requires)."""
    return png_chunk(b"iCCP", name.encode("latin-1")[:79] + b"\x00\x00" + zlib.compress(profile))


def insert_png_chunks(png: bytes, chunks: list[bytes]) -> bytes:
    """Insert ancillary chunks right after IHDR (PNG signature 8 bytes + IHDR 25 bytes)."""
    ihdr_end = 8 + 25
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("encoder did not produce a PNG")
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Adam7 passes: (x start, y start, x step, y step)."""


def check_png_stream(data: bytes) -> None:
    """Validate a PNG's chunk structure, CRCs and image data size before OpenCV sees it (libpng prints its own
    complaints about damaged files straight to stderr). Raises ValueError naming the defect."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("PNG header is truncated")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    if channels is None or depth not in (1, 2, 4, 8, 16) or interlace not in (0, 1):
        raise ValueError(f"invalid PNG header (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    pos, idat, ended = 8, [], False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 8 : end - 4]
        if struct.unpack(">I", data[end - 4 : end])[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC")
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        pos = end
    if not ended:
        raise ValueError("PNG data is truncated (no IEND chunk)")

    def row_bytes(width: int) -> int:
        return 1 + (width * channels * depth + 7) // 8 if width else 0

    if interlace:
        expected = sum(
            row_bytes(max(0, (w - x0 + dx - 1) // dx)) * max(0, (h - y0 + dy - 1) // dy)
            for x0, y0, dx, dy in _ADAM7
            if (w - x0 + dx - 1) // dx > 0
        )
    else:
        expected = row_bytes(w) * h
    dec = zlib.decompressobj()
    try:
        raw = dec.decompress(b"".join(idat), expected + 1)
    except zlib.error as err:
        raise ValueError(f"PNG image data is corrupt ({err})") from err
    if len(raw) != expected:
        raise ValueError(f"PNG image data has {len(raw)} bytes, the header needs {expected}")
