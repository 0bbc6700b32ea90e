"""Generated test photos: realistic enough to hash and compress like real ones, reproducible from a seed.

Flat colours are useless here: they hash to degenerate dHashes and compress to nothing. A "scene" has a
gradient background, random shapes (people, desks, laptops), a sheet of paper with text-like rows and
seeded sensor noise, so two seeds give two genuinely different handover scenes.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from datetime import datetime

from PIL import Image, ImageChops, ImageDraw, ImageOps


def _colour(rnd: random.Random) -> tuple[int, int, int]:
    return (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))


def scene(seed: int, size: tuple[int, int] = (800, 600), *, noise: int = 12) -> Image.Image:
    """An RGB image of a made-up handover scene; ``noise`` is the +/- amplitude of the sensor noise."""
    rnd = random.Random(seed)
    w, h = size
    # Background: a wall-to-floor gradient between two random colours, at a random angle.
    grad = Image.linear_gradient("L").rotate(rnd.uniform(-40, 40), expand=False, fillcolor=128).resize(size)
    img = ImageOps.colorize(grad, black=_colour(rnd), white=_colour(rnd))
    draw = ImageDraw.Draw(img)
    unit = min(w, h)
    for _ in range(rnd.randint(8, 14)):  # large shapes: people, desks, a laptop
        x, y = rnd.randrange(w), rnd.randrange(h)
        bw, bh = rnd.randint(unit // 10, unit // 2), rnd.randint(unit // 10, unit // 2)
        kind = rnd.choice(("rect", "ellipse", "poly"))
        if kind == "rect":
            draw.rectangle((x, y, x + bw, y + bh), fill=_colour(rnd))
        elif kind == "ellipse":
            draw.ellipse((x, y, x + bw, y + bh), fill=_colour(rnd))
        else:
            pts = [(x + rnd.randint(-bw, bw), y + rnd.randint(-bh, bh)) for _ in range(rnd.randint(3, 6))]
            draw.polygon(pts, fill=_colour(rnd))
    # A sheet of paper with text-like rows: what the photo is really about (a signed receipt).
    px, py = rnd.randrange(w // 2), rnd.randrange(h // 2)
    pw, ph = w // 3, h // 3
    draw.rectangle((px, py, px + pw, py + ph), fill=(245, 245, 240))
    line_h = max(4, ph // 14)
    for row in range(1, 12):
        cx = px + line_h
        ty = py + row * line_h
        while cx < px + pw - line_h:
            word = rnd.randint(line_h, 4 * line_h)
            draw.rectangle((cx, ty, min(cx + word, px + pw - line_h), ty + line_h // 2), fill=(30, 30, 60))
            cx += word + line_h // 2
    if noise:
        # Seeded noise (Image.effect_noise uses C rand(), not reproducible): uniform in [-noise, +noise].
        bands = []
        for _ in range(3):
            raw = rnd.randbytes(w * h)
            bands.append(Image.frombytes("L", size, raw).point(lambda v: v * (2 * noise + 1) // 256))
        img = ImageChops.add(img, Image.merge("RGB", bands), scale=1.0, offset=-noise)
    return img


def exif_bytes(
    *,
    orientation: int | None = None,
    taken: datetime | str | None = None,
    offset: str | None = None,
    gps: bool = False,
    extra: bool = True,
) -> bytes:
    """An EXIF block like a phone's: camera make/serial, comment, optional orientation, time and GPS."""
    ex = Image.Exif()
    if extra:
        ex[0x010F] = "PhoneMaker"  # Make
        ex[0x0110] = "Model X"  # Model
        ex[0x010E] = "Nguyễn Văn A, 0912345678"  # ImageDescription: personal data to be stripped
    if orientation is not None:
        ex[0x0112] = orientation
    exif_ifd = ex.get_ifd(0x8769)
    if extra:
        exif_ifd[0xA431] = "SERIAL-123456"  # BodySerialNumber
    if taken is not None:
        exif_ifd[0x9003] = taken if isinstance(taken, str) else taken.strftime("%Y:%m:%d %H:%M:%S")
    if offset is not None:
        exif_ifd[0x9011] = offset  # OffsetTimeOriginal
    if gps:
        g = ex.get_ifd(0x8825)
        g[0x0000] = b"\x02\x02\x00\x00"
        g[0x0001] = "N"
        g[0x0002] = (10.0, 45.0, 30.5)
        g[0x0003] = "E"
        g[0x0004] = (106.0, 40.0, 12.25)
    return ex.tobytes()


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buf = io.BytesIO()
    if fmt in ("HEIF", "HEIC"):
        import pillow_heif

        pillow_heif.from_pillow(img).save(buf, format="HEIF", **params)
    else:
        img.save(buf, fmt, **params)
    return buf.getvalue()


def phone_jpeg(
    seed: int = 1,
    size: tuple[int, int] = (800, 600),
    *,
    quality: int = 90,
    **exif: object,
) -> bytes:
    """A JPEG straight from a phone camera: noisy scene, quality 90, EXIF with serial/GPS/time if asked."""
    return encode(scene(seed, size), "JPEG", quality=quality, exif=exif_bytes(**exif))  # type: ignore[arg-type]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def huge_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` white pixels, built row by row.

    Never allocates the image: a 30,000 x 30,000 bomb is ~110 KB of zlib'd zero rows. The header alone is
    what the store must look at before refusing it.
    """
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte "none" + packed bits
    comp = zlib.compressobj(9)
    parts = []
    block = row * 256
    full, rest = divmod(height, 256)
    for _ in range(full):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * rest))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def minimal_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def sheet_photo(code: str, seed: int = 1, *, size: tuple[int, int] = (2400, 3200), angle: float = 3.0) -> bytes:
    """A phone photo of a printed minutes sheet: a slightly tilted, noisy page with the sheet's QR code (as
    reports.minutes prints it, 20 mm wide on A4) in its bottom right corner."""
    from reports.minutes import qr_png

    rnd = random.Random(seed)
    page = scene(seed, (size[0] // 4, size[1] // 4), noise=6).resize(size).point(lambda v: 200 + v // 5)
    qr = Image.open(io.BytesIO(qr_png(code))).convert("RGB")
    side = int(size[0] * 20 / 210)
    qr = qr.resize((side, side), Image.Resampling.NEAREST)
    page.paste(qr, (size[0] - side - int(size[0] * 0.08), size[1] - side - int(size[1] * 0.06) - rnd.randint(0, 20)))
    tilted = page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(90, 80, 70))
    return encode(tilted, "JPEG", quality=85)
