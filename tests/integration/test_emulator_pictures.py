"""The emulator draws a placeholder for each picture URL it sends: no broken image on a page."""

from __future__ import annotations

import struct
import zlib

import aiohttp
import pytest

from aiotwinne import TwinneClient
from aiotwinne.testing import SNGINE_VERSIONS, TwinneEmulator

pytest_plugins = ["aiotwinne.testing.pytest_plugin"]

DEFAULT_PICTURES = (
    "/content/themes/default/images/blank_profile.png",
    "/content/themes/default/images/blank_profile_male.png",
    "/content/themes/default/images/blank_profile_female.png",
)


def png_pixels(body: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG, checking every chunk's CRC."""
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    offset, chunks = 8, dict[bytes, bytes]()
    while offset < len(body):
        (length,) = struct.unpack(">I", body[offset : offset + 4])
        kind = body[offset + 4 : offset + 8]
        data = body[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", body[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + data
        offset += 12 + length
    assert offset == len(body)
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)  # 8-bit RGB
    return width, height, zlib.decompress(chunks[b"IDAT"])


async def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One plain request: status, headers and body."""
    async with aiohttp.ClientSession() as http, http.request(method, url) as resp:
        return resp.status, dict(resp.headers), await resp.read()


@pytest.mark.parametrize("sngine", SNGINE_VERSIONS)
async def test_the_picture_a_profile_names_is_a_png(sngine: str) -> None:
    """On every version, the picture URL in a user's profile answers 200 image/png."""
    async with TwinneEmulator(sngine=sngine) as emu:
        app = emu.add_app(name="Pictures")
        user = emu.add_user(user_name="ada")
        token = emu.issue_token(user, app)
        async with TwinneClient(app.app_id, app.secret, base_url=emu.base_url) as client:
            profile = await client.get_user_info(token)
        url = profile.display_picture_url
        assert url is not None
        assert url.startswith(emu.base_url + "/content/")
        status, headers, body = await fetch(url)
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    width, height, pixels = png_pixels(body)
    assert (width, height) == (96, 96)
    assert len(pixels) == height * (1 + 3 * width)  # a filter byte and RGB per scanline


@pytest.mark.parametrize("path", DEFAULT_PICTURES)
async def test_the_default_pictures_are_grey_placeholders(path: str) -> None:
    """Sngine's default pictures (each gender's) are served, all the same grey figure."""
    async with TwinneEmulator() as emu:
        status, headers, body = await fetch(emu.base_url + path)
        _, _, other = await fetch(emu.base_url + DEFAULT_PICTURES[0])
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert body == other
    _, _, pixels = png_pixels(body)
    assert pixels[1:4] == bytes((0x9E, 0xA7, 0xB0))  # the top-left pixel: the background


async def test_each_upload_path_has_its_own_stable_colour() -> None:
    """Two users' pictures differ; the same path gives the same bytes every time."""
    async with TwinneEmulator() as emu:
        base = emu.base_url + "/content/uploads/photos/2021/03/"
        _, _, first = await fetch(base + "user1.jpg")
        _, _, again = await fetch(base + "user1.jpg")
        _, _, second = await fetch(base + "user2.jpg")
    assert first == again
    assert first != second
    assert png_pixels(first)[2][1:4] != png_pixels(second)[2][1:4]


async def test_head_has_the_headers_and_other_methods_are_refused() -> None:
    """HEAD answers like GET without a body; a POST to a picture is 405 with Allow."""
    async with TwinneEmulator() as emu:
        url = emu.base_url + "/content/uploads/photos/me.png"
        status, headers, body = await fetch(url, "HEAD")
        assert (status, headers["Content-Type"], body) == (200, "image/png", b"")
        status, headers, _ = await fetch(url, "POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/content/uploads/",  # the bare folder Sngine sends as every cover (a server bug)
        "/content/uploads/notes.txt",
        "/content/themes/default/images/blank_profile_other.png",
        "/content/themes/default/images/logo.png",
    ],
)
async def test_what_is_not_a_picture_is_the_sites_404(path: str) -> None:
    """Only picture files are drawn: a folder, another file or another image is a 404 page."""
    async with TwinneEmulator() as emu:
        status, headers, _ = await fetch(emu.base_url + path)
        assert emu.count("other") == 1  # counted like any page of the site
    assert status == 404
    assert headers["Content-Type"].startswith("text/html")


async def test_no_secret_reaches_a_picture_answer() -> None:
    """A picture's answer carries no cookie and no credential of the app or the user."""
    async with TwinneEmulator() as emu:
        app = emu.add_app(name="Pictures")
        user = emu.add_user(user_name="ada")
        token = emu.issue_token(user, app)
        status, headers, body = await fetch(emu.base_url + "/content/uploads/photos/a.jpg")
    assert status == 200
    assert "Set-Cookie" not in headers
    for secret in (app.secret, token):
        assert secret.encode() not in body
        assert all(secret not in value for value in headers.values())
