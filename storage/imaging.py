"""Turn untrusted upload bytes into a small, EXIF-free JPEG + thumbnail, or refuse them with a reason.

Pure and in memory: no files, no database. ``storage.photos`` writes the result to disk.

Order matters, cheapest and safest first: byte size -> format sniffed from the content -> header only
(pixel count, tiny images) -> a real decode, at reduced scale for JPEG -> convert/resize -> rotate the small
image. Nothing from the original's metadata is written back: we only *read* the capture time, whether it
had a location, and the orientation.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from core.clock import LOCAL_TZ
from storage.errors import RecordError

log = logging.getLogger(__name__)

# Adds the HEIF opener (iPhone photos). Registration only adds a format; it changes nothing else in Pillow.
pillow_heif.register_heif_opener()


# Decoders raise a zoo of types on hostile input; all of them mean "this file is broken".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)


class PhotoRejected(RecordError):
    """The upload is not a usable photo: ``code`` says why, with the values that explain it (sizes, the
    format); ``conversations/refusals.py`` words it for the teacher, as for every other refusal."""


def _not_image() -> PhotoRejected:
    return PhotoRejected("not_image")


def _broken(code: str) -> PhotoRejected:
    return PhotoRejected(code)  # "truncated" (cut off on the way) or "corrupt"


def _bomb(size: tuple[int, int] | None) -> PhotoRejected:
    if size is None:  # Pillow's own limit, before the header told the size
        return PhotoRejected("bomb_unmeasured")
    return PhotoRejected("bomb", w=str(size[0]), h=str(size[1]))


# --- format sniffing: from the bytes, never from the file name or the MIME type the client claims --------

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def sniff_format(data: bytes) -> str | None:
    """Pillow format id for an accepted image type, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"  # a static GIF is a fine photo; an animated one gives its first frame
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def _other_image_kind(data: bytes) -> str | None:
    """Name of a recognisable image format we do not accept (a clearer message than 'not an image')."""
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data[:2] == b"\xff\x0a" or data[4:12] == b"JXL \r\n\x87\n":
        return "JPEG XL"
    if data[:4] == b"8BPS":
        return "PSD"
    if data[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    return None


# --- metadata we keep as columns (the file itself keeps none) ----------------------------------------------

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_exif_time(value: object, offset: object = None) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" -> aware UTC. No offset tag: the phone's clock was Vietnamese local time."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 ")
    if len(text) < 19:
        return None
    text = text[:10].replace("-", ":") + text[10:19]  # some apps write dashes in the date
    try:
        naive = datetime.strptime(text, "%Y:%m:%d %H:%M:%S")
    except ValueError:  # "0000:00:00 00:00:00", blanks, garbage
        return None
    tz: timezone | ZoneInfo = LOCAL_TZ
    if isinstance(offset, bytes):
        offset = offset.decode("ascii", "ignore")
    if isinstance(offset, str) and (m := _OFFSET_RE.match(offset.strip("\x00 "))):
        minutes = int(m[2]) * 60 + int(m[3])
        if minutes <= 14 * 60:
            tz = timezone(timedelta(minutes=-minutes if m[1] == "-" else minutes))
    return naive.replace(tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class _Meta:
    orientation: int = 1
    captured_at: datetime | None = None
    had_location: bool = False


def _read_meta(img: Image.Image) -> _Meta:
    # A broken EXIF block must not cost the teacher the photo: any failure here means "no EXIF".
    try:
        exif = img.getexif()
    except Exception:
        return _Meta()
    orientation = 1
    try:
        value = exif.get(0x0112, 1)
        if isinstance(value, int) and 1 <= value <= 8:
            orientation = value
    except Exception:
        pass
    captured_at = None
    try:
        sub = exif.get_ifd(0x8769)
        captured_at = parse_exif_time(sub.get(0x9003) or sub.get(0x9004), sub.get(0x9011) or sub.get(0x9012))
    except Exception:
        pass
    try:
        gps = exif.get_ifd(0x8825)
        had_location = any(tag != 0 for tag in gps)  # anything beyond GPSVersionID is location data
    except Exception:
        had_location = 0x8825 in exif  # unreadable GPS block: still say it was there
    return _Meta(orientation, captured_at, had_location)


# --- pixels ---------------------------------------------------------------------------------------------

# EXIF orientation -> the transpose that makes the image upright (same table as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def fit(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """``size`` scaled so its long side is at most ``long_side``, keeping the aspect."""
    w, h = size
    if max(w, h) <= long_side:
        return w, h
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any decoded mode -> RGB; transparency is composited on white (a signed paper on a white page)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit greyscale: convert("L") would clip everything above 255 to white; scale instead.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB", "1") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img if img.mode == "RGB" else img.convert("RGB")


def dhash(img: Image.Image) -> int:
    """64-bit difference hash as a signed int64 (fits a BIGINT column).

    Greyscale 9x8, one bit per pair of horizontal neighbours: survives re-compression, resizing and small
    crops, which is exactly how a photo gets "reused" for another handover.
    """
    small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = small.tobytes()
    value = 0
    for y in range(8):
        row = px[y * 9 : y * 9 + 9]
        for x in range(8):
            value = (value << 1) | (row[x + 1] > row[x])
    return value - (1 << 64) if value >= 1 << 63 else value


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    img.info = {}  # resize/transpose copy .info; Pillow's JPEG writer reads a comment from it
    buf = io.BytesIO()
    # No exif=, no icc_profile=: the file carries no metadata at all. optimize=True costs ~2x encode time
    # for a few percent of size.
    img.save(buf, "JPEG", quality=quality, optimize=False)
    return buf.getvalue()


@dataclass(frozen=True)
class Normalised:
    jpeg: bytes
    thumb: bytes
    sha256: str
    dhash: int
    width: int
    height: int
    captured_at: datetime | None
    had_location: bool


def normalise(
    data: bytes,
    *,
    max_side: int = 1600,
    thumb_side: int = 320,
    quality: int = 85,
    max_bytes: int = 20 * 1024 * 1024,
    max_pixels: int = 50_000_000,
    min_side: int = 64,
) -> Normalised:
    """Validate and normalise one upload. Raises PhotoRejected with a message for the teacher."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone flipped the global switch: truncated uploads would be stored half grey. Fail loudly.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; photo checks would be unsafe")
    if not data:
        raise _not_image()
    if len(data) > max_bytes:
        mb, limit = len(data) / 1024 / 1024, max_bytes // 1024 // 1024
        raise PhotoRejected("too_large", mb=f"{mb:.1f}", limit=limit)
    fmt = sniff_format(data[:32])
    if fmt is None:
        other = _other_image_kind(data[:32])
        if other is None:
            raise _not_image()
        raise PhotoRejected("unsupported_format", fmt=other)

    try:
        # Only the header is read here. Pillow's own bomb guard (2x Image.MAX_IMAGE_PIXELS, read, never
        # changed) raises before any pixel buffer exists; our tighter max_pixels is checked just below.
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise _bomb(None) from None
    except (UnidentifiedImageError, *_DECODE_ERRORS):
        # The signature said image, the header disagrees: a damaged photo, not a random file.
        raise _broken("corrupt") from None

    with img:
        w, h = img.size
        if w * h > max_pixels:
            raise _bomb((w, h))
        if min(w, h) < min_side:
            raise PhotoRejected("too_small", w=str(w), h=str(h), min_side=str(min_side))
        target = fit((w, h), max_side)
        if fmt == "JPEG" and target != (w, h):
            # Decode at 1/2, 1/4 or 1/8 scale inside libjpeg. Ask with the photo's OWN aspect: Pillow picks the
            # scale from the smaller ratio, so a square box does nothing for a 4:3 photo.
            img.draft("RGB", target)
        try:
            img.load()  # the real decode (first frame of an animation); truncated data raises here
        except Image.DecompressionBombError:
            raise _bomb((w, h)) from None
        except _DECODE_ERRORS as exc:
            raise _broken("truncated" if "truncated" in str(exc) else "corrupt") from None
        meta = _read_meta(img)  # after load: PNG keeps EXIF after the pixel data
        try:
            rgb = to_rgb(img)
        except _DECODE_ERRORS:
            raise _broken("corrupt") from None
        # Everything that touches pixels stays inside ``with``: closing a Pillow image frees its pixels.
        if rgb.size != target:
            rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
        if meta.orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[meta.orientation])  # on the small image: rotating 12 MP costs +30%
        thumb = rgb.resize(fit(rgb.size, thumb_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
        jpeg = _encode_jpeg(rgb, quality)
        thumb_jpeg = _encode_jpeg(thumb, quality)
        thumb_hash = dhash(thumb)
        width, height = rgb.size
    return Normalised(
        jpeg=jpeg,
        thumb=thumb_jpeg,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        dhash=thumb_hash,
        width=width,
        height=height,
        captured_at=meta.captured_at,
        had_location=meta.had_location,
    )


def read_qr_codes(path: Path) -> list[str]:
    """The QR codes readable on a stored photo (already normalised: at most 1,600 px, upright, small): what a
    photographed minutes sheet says it is (``BG000123``). Empty when none can be read (blur, glare, cut off):
    reading is a help, never a requirement."""
    import zxingcpp

    with Image.open(path) as img:
        gray = img.convert("L")
    try:
        results = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
    except Exception:  # a decoder failure must not cost the teacher their photo
        log.warning("QR reading failed on %s", path.name, exc_info=True)
        return []
    return [r.text for r in results if r.valid and r.text]
