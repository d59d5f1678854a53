"""The placeholder pictures the emulator serves for profile pictures.

Sngine serves uploaded pictures from ``/content/uploads/...`` and its default
ones from ``/content/themes/default/images/blank_profile*.png``; the emulator
has no files, so it draws a small PNG instead: a head and shoulders on a
colour chosen from the picture's path (each user gets their own, the same on
every run), grey for the default pictures. Built with :mod:`zlib` and
:mod:`struct` only: no imaging dependency for a test double.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from typing import Final

__all__ = ["PNG_TYPE", "SIZE", "placeholder_png"]

PNG_TYPE: Final = "image/png"
#: Width and height in pixels (sites show profile pictures at 96 or less).
SIZE: Final = 96
_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_GREY: Final = (0x9E, 0xA7, 0xB0)
_FIGURE: Final = (0xF4, 0xF5, 0xF7)


def placeholder_png(path: str, *, default: bool = False) -> bytes:
    """A PNG placeholder for the picture at *path*.

    Args:
        path: The picture's URL path; it chooses the background colour.
        default: Sngine's default picture: grey, whatever the path.

    Returns:
        The whole PNG file, :data:`SIZE` pixels square, 8-bit RGB.
    """
    return _draw(_GREY if default else _colour(path))


def _colour(path: str) -> tuple[int, int, int]:
    # Stable across runs (unlike hash()), and never too light for the figure.
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).digest()
    r, g, b = digest[0] % 160 + 40, digest[1] % 160 + 40, digest[2] % 160 + 40
    return r, g, b


@functools.lru_cache(maxsize=256)
def _draw(background: tuple[int, int, int]) -> bytes:
    head_x, head_y, head_r = SIZE / 2, SIZE * 0.38, SIZE * 0.19
    body_y, body_rx, body_ry = SIZE * 1.02, SIZE * 0.36, SIZE * 0.36
    back, figure = bytes(background), bytes(_FIGURE)
    rows = []
    for y in range(SIZE):
        row = bytearray(b"\x00")  # filter type 0 (None) for every scanline
        for x in range(SIZE):
            cx, cy = x + 0.5, y + 0.5
            in_head = (cx - head_x) ** 2 + (cy - head_y) ** 2 <= head_r**2
            in_body = ((cx - head_x) / body_rx) ** 2 + ((cy - body_y) / body_ry) ** 2 <= 1
            row += figure if in_head or in_body else back
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
