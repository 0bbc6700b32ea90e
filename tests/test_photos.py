"""Photo evidence store: safe, small, private and checked for reuse (issue 4).

Every image is generated here (tests/photo_factory.py); stored files are always read back from disk.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFile, ImageOps, ImageStat
from PIL.JpegImagePlugin import JpegImageFile

from conversations.refusals import refusal
from core.vocabulary import FlagKind, flag_text
from storage import photos
from storage.imaging import parse_exif_time
from storage.photos import (
    NEAR_DUPLICATE_THRESHOLD,
    PhotoRejected,
    PhotoStore,
    PhotoStoreError,
    StoredPhoto,
    capture_time_flag,
    hamming,
    is_near_duplicate,
    near_duplicates,
)
from tests.photo_factory import encode, exif_bytes, huge_bilevel_png, minimal_pdf, phone_jpeg, scene

UTC = UTC


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_no_metadata(path: Path) -> None:
    raw = path.read_bytes()
    with Image.open(path) as im:
        assert im.format == "JPEG"
        assert not im.getexif(), f"EXIF left in {path}"
        assert "exif" not in im.info and "icc_profile" not in im.info and "comment" not in im.info
    assert b"Exif" not in raw and b"\xff\xe1" not in raw  # no APP1 segment at all
    for secret in (b"SERIAL-123456", b"PhoneMaker", b"Model X", "Nguyễn".encode()):
        assert secret not in raw


def assert_stored(store: PhotoStore, photo: StoredPhoto) -> Image.Image:
    """Both files exist, carry no metadata, and match the columns; returns the decoded photo."""
    main, thumb = store.open_path(photo.path), store.open_path(photo.thumb_path)
    assert re.fullmatch(r"photos/[0-9a-f]{2}/[0-9a-f]{64}\.jpg", photo.path)
    assert photo.path == f"photos/{photo.sha256[:2]}/{photo.sha256}.jpg"
    assert photo.thumb_path == f"thumbs/{photo.sha256[:2]}/{photo.sha256}.jpg"
    data = main.read_bytes()
    assert hashlib.sha256(data).hexdigest() == photo.sha256
    assert len(data) == photo.size_bytes
    assert -(2**63) <= photo.dhash < 2**63
    assert_no_metadata(main)
    assert_no_metadata(thumb)
    with Image.open(thumb) as t:
        assert max(t.size) <= store.thumb_side
    im = Image.open(main)
    im.load()
    assert im.mode == "RGB" and im.size == (photo.width, photo.height)
    assert max(im.size) <= store.max_side
    return im


def mean_rgb(im: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(im.convert("RGB")).mean)


def close(a: tuple[float, ...], b: tuple[float, ...], tol: float = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


# --- phone JPEGs: orientation, privacy, metadata columns ----------------------------------------------


def test_phone_jpeg_is_rotated_stripped_and_dated(store: PhotoStore) -> None:
    img = scene(3, (400, 200))
    img.paste((255, 0, 0), (0, 0, 40, 200))  # a red left edge
    data = encode(img, quality=90, exif=exif_bytes(orientation=6, gps=True, taken="2025:03:01 09:30:00"))
    photo = store.ingest(data)
    im = assert_stored(store, photo)
    assert (photo.width, photo.height) == (200, 400)  # orientation 6: turned upright
    r, g, b = im.getpixel((100, 10))  # the left edge is now the top edge
    assert r > 200 and g < 60 and b < 60
    assert photo.captured_at == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)  # 09:30 in Vietnam
    assert photo.had_location is True
    assert photo.is_new


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow_reference(store: PhotoStore, orientation: int) -> None:
    data = encode(scene(orientation, (320, 160), noise=0), quality=95, exif=exif_bytes(orientation=orientation))
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    photo = store.ingest(data)
    im = assert_stored(store, photo)
    assert im.size == expected.size
    assert ImageStat.Stat(ImageChops.difference(im, expected).convert("L")).mean[0] < 6


def test_capture_time_uses_exif_offset_and_defaults_to_vietnam() -> None:
    assert parse_exif_time("2025:03:01 09:30:00", "+09:00") == datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    assert parse_exif_time("2025:03:01 09:30:00") == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
    assert parse_exif_time(b"2025-03-01 09:30:00\x00", b"-05:00") == datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    for junk in ("0000:00:00 00:00:00", "    :  :     :  :  ", "yesterday", "", None, 42):
        assert parse_exif_time(junk) is None


def test_jpeg_without_exif_has_no_time_and_no_location(store: PhotoStore) -> None:
    # A Telegram "photo" (compressed): <= 1280 px, no EXIF. Kept at its size.
    photo = store.ingest(encode(scene(4, (1280, 960)), quality=87))
    assert_stored(store, photo)
    assert (photo.width, photo.height) == (1280, 960)
    assert photo.captured_at is None and photo.had_location is False


def test_exif_without_gps_is_not_a_location(store: PhotoStore) -> None:
    photo = store.ingest(phone_jpeg(5, (300, 200), taken="2025:01:02 03:04:05", offset="+07:00"))
    assert photo.had_location is False
    assert photo.captured_at == datetime(2025, 1, 1, 20, 4, 5, tzinfo=UTC)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize(
    "app1",
    [
        b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + b"\x00" * 10,  # IFD claims 65535 entries
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
        b"Exif\x00\x00garbage garbage garbage",
    ],
)
def test_broken_exif_block_is_treated_as_no_exif(store: PhotoStore, app1: bytes) -> None:
    clean = encode(scene(6, (300, 200)), quality=90)
    data = clean[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + clean[2:]
    with Image.open(io.BytesIO(data)) as im:
        assert im.info.get("exif")  # the broken block really is there
    photo = store.ingest(data)
    assert_stored(store, photo)
    assert photo.captured_at is None and photo.had_location is False
    assert (photo.width, photo.height) == (300, 200)


# --- scaling -----------------------------------------------------------------------------------------------


def test_large_jpeg_uses_draft_with_its_own_aspect(store: PhotoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[int, int], tuple[int, int]]] = []
    original = JpegImageFile.draft

    def spy(self: JpegImageFile, mode: str | None, size: tuple[int, int] | None) -> object:
        result = original(self, mode, size)
        calls.append((size, self.size))  # (asked for, what libjpeg will decode)
        return result

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    photo = store.ingest(encode(scene(8, (3400, 1700), noise=0), quality=90))
    assert calls == [((1600, 800), (1700, 850))]  # half-scale decode, not the full 5.8 MP
    im = assert_stored(store, photo)
    assert im.size == (1600, 800)
    with Image.open(store.open_path(photo.thumb_path)) as t:
        assert t.size == (320, 160)


def test_small_max_side_and_thumb_side_are_respected(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path, max_side=500, thumb_side=100)
    photo = store.ingest(encode(scene(9, (900, 1200)), "PNG"))
    assert (photo.width, photo.height) == (375, 500)
    assert_stored(store, photo)


# --- other formats and colour modes ------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb(store: PhotoStore) -> None:
    rgb = scene(10, (300, 200), noise=0)
    data = encode(rgb.convert("CMYK"), quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    im = assert_stored(store, store.ingest(data))
    assert close(mean_rgb(im), mean_rgb(rgb))


def test_grayscale_jpeg_becomes_rgb(store: PhotoStore) -> None:
    im = assert_stored(store, store.ingest(encode(scene(11, (300, 200)).convert("L"), quality=90)))
    assert im.mode == "RGB"


def test_png_transparency_is_composited_on_white(store: PhotoStore) -> None:
    img = scene(12, (300, 200), noise=0).convert("RGBA")
    img.paste((0, 0, 0, 0), (0, 0, 150, 200))  # left half fully transparent (black underneath)
    img.paste((0, 0, 200, 255), (150, 0, 300, 200))  # right half opaque blue
    im = assert_stored(store, store.ingest(encode(img, "PNG")))
    assert close(mean_rgb(im.crop((10, 10, 140, 190))), (255, 255, 255), 3)
    assert close(mean_rgb(im.crop((160, 10, 290, 190))), (0, 0, 200), 6)


@pytest.mark.parametrize("mode", ["P", "LA"])
def test_palette_and_grey_alpha_transparency(store: PhotoStore, mode: str) -> None:
    rgba = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    rgba.paste((20, 20, 20, 255), (100, 0, 200, 100))
    img = rgba.convert("LA") if mode == "LA" else rgba.convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "P":
        img.info["transparency"] = img.getpixel((0, 0))
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode == mode
    im = assert_stored(store, store.ingest(data))
    assert close(mean_rgb(im.crop((5, 5, 95, 95))), (255, 255, 255), 3)
    assert close(mean_rgb(im.crop((105, 5, 195, 95))), (20, 20, 20), 6)


def test_sixteen_bit_grey_png_is_scaled_not_clipped(store: PhotoStore) -> None:
    img = Image.new("I;16", (200, 100), 100 * 256)  # 16-bit mid-dark grey
    im = assert_stored(store, store.ingest(encode(img, "PNG")))
    assert close(mean_rgb(im), (100, 100, 100), 3)


def test_webp_and_static_gif_are_accepted(store: PhotoStore) -> None:
    img = scene(13, (300, 200))
    for data in (encode(img, "WEBP", quality=90), encode(img.convert("P"), "GIF")):
        im = assert_stored(store, store.ingest(data))
        assert im.size == (300, 200)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_in_png_and_webp_is_read_then_dropped(store: PhotoStore, fmt: str) -> None:
    data = encode(scene(28, (300, 200)), fmt, exif=exif_bytes(gps=True, taken="2025:03:01 09:30:00"))
    photo = store.ingest(data)
    assert_stored(store, photo)
    assert photo.had_location and photo.captured_at == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)


def test_multi_picture_jpeg_keeps_only_the_main_picture(store: PhotoStore) -> None:
    # Phones write MPO/MPF JPEGs (depth maps, HDR gain maps); Pillow opens them as MPO.
    buf = io.BytesIO()
    main, extra = scene(29, (800, 400)), scene(30, (800, 400))
    main.save(buf, "MPO", save_all=True, append_images=[extra], quality=90, exif=exif_bytes(orientation=8))
    im = assert_stored(store, store.ingest(buf.getvalue()))
    assert b"MPF" not in store.open_path(store.ingest(buf.getvalue()).path).read_bytes()
    assert im.size == (400, 800)
    expected = main.transpose(Image.Transpose.ROTATE_90)
    assert ImageStat.Stat(ImageChops.difference(im, expected).convert("L")).mean[0] < 8


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_keeps_its_first_frame(store: PhotoStore, fmt: str) -> None:
    frames = [Image.new("RGB", (120, 100), c) for c in ((220, 30, 30), (30, 220, 30), (30, 30, 220))]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 3
    im = assert_stored(store, store.ingest(buf.getvalue()))
    assert close(mean_rgb(im), (220, 30, 30))


def test_heic_from_iphone(store: PhotoStore) -> None:
    try:
        data = encode(
            scene(14, (400, 300)),
            "HEIF",
            quality=80,
            exif=exif_bytes(orientation=6, gps=True, taken="2025:03:01 09:30:00"),
        )
    except Exception as exc:  # pragma: no cover - depends on the libheif build
        pytest.skip(f"this pillow_heif build cannot encode HEIF: {exc}")
    assert data[4:12] == b"ftypheic"
    photo = store.ingest(data, mime_type="image/heic", file_name="IMG_0001.HEIC")
    assert_stored(store, photo)
    # libheif applies the rotation itself and resets EXIF orientation to 1: turned once, not twice.
    assert (photo.width, photo.height) == (300, 400)
    assert photo.had_location is True
    assert photo.captured_at == datetime(2025, 3, 1, 2, 30, tzinfo=UTC)


def test_format_comes_from_content_not_from_claims(store: PhotoStore) -> None:
    png = encode(scene(15, (200, 150)), "PNG")
    assert_stored(store, store.ingest(png, mime_type="image/jpeg", file_name="photo.jpg"))
    with pytest.raises(PhotoRejected) as err:
        store.ingest(minimal_pdf(), mime_type="image/jpeg", file_name="photo.jpg")
    assert err.value.code == "not_image"


# --- refusals: clear Vietnamese message, nothing on disk --------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = encode(scene(16, (400, 300)), quality=90)
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("data", "code", "vi"),
    [
        pytest.param(
            minimal_pdf(),
            "not_image",
            "Tệp này không phải là ảnh. Vui lòng gửi ảnh JPEG, PNG, WebP hoặc HEIC.",
            id="renamed-pdf",
        ),
        pytest.param("Biên bản bàn giao".encode(), "not_image", "không phải là ảnh", id="text"),
        pytest.param(b"", "not_image", "không phải là ảnh", id="empty"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 50, "corrupt", "Ảnh bị hỏng", id="jpeg-magic-only"),
        pytest.param(_truncated_jpeg(), "truncated", "chưa được gửi hết", id="truncated-jpeg"),
        pytest.param(
            encode(Image.new("RGB", (200, 100)), "BMP"), "unsupported_format", "Chưa hỗ trợ ảnh định dạng BMP", id="bmp"
        ),
        pytest.param(
            encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "too_small", "Ảnh quá nhỏ (1 x 1 điểm ảnh)", id="1x1"
        ),
        pytest.param(encode(Image.new("RGB", (63, 500)), "PNG"), "too_small", "cạnh ngắn ít nhất 64", id="thin"),
    ],
)
def test_bad_input_is_refused_with_vietnamese_message(store: PhotoStore, data: bytes, code: str, vi: str) -> None:
    with pytest.raises(PhotoRejected) as err:
        store.ingest(data, file_name="anh.jpg", mime_type="image/jpeg")
    assert err.value.code == code
    assert vi in refusal(err.value, "vi")
    assert refusal(err.value, "en") and refusal(err.value, "en") != refusal(err.value, "vi")
    assert files_under(store.media_dir) == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "HEIF"])
def test_cut_off_upload_is_refused_in_every_format(store: PhotoStore, fmt: str) -> None:
    try:
        data = encode(scene(31, (400, 300)), fmt)
    except Exception as exc:  # pragma: no cover - HEIF encoding depends on the libheif build
        pytest.skip(f"cannot encode {fmt}: {exc}")
    with pytest.raises(PhotoRejected) as err:
        store.ingest(data[: len(data) * 9 // 10])
    assert err.value.code in ("truncated", "corrupt")
    assert files_under(store.media_dir) == []


def test_truncated_jpeg_stays_refused_and_global_switch_untouched(store: PhotoStore) -> None:
    with pytest.raises(PhotoRejected):
        store.ingest(_truncated_jpeg())
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default: we never change global limits


def test_unsafe_global_truncation_switch_fails_loudly(store: PhotoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        store.ingest(_truncated_jpeg())


def test_over_20_mb_is_refused_before_reading(store: PhotoStore) -> None:
    data = encode(scene(17, (200, 150)), quality=90)
    data += b"\x00" * (20 * 1024 * 1024 + 1 - len(data))
    with pytest.raises(PhotoRejected) as err:
        store.ingest(data)
    assert err.value.code == "too_large"
    assert "nhỏ hơn 20 MB" in refusal(err.value)


@pytest.fixture
def decode_spy(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every real pixel decode, to prove bombs are refused from the header alone."""
    calls: list[object] = []
    original = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> object:
        calls.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("size", "code", "shown"),
    [((30_000, 30_000), "bomb_unmeasured", ""), ((8_000, 7_000), "bomb", "(8000 x 7000 điểm ảnh)")],
    ids=["pillow-limit", "our-limit"],
)
def test_pixel_bomb_refused_from_header(
    store: PhotoStore, decode_spy: list[object], size: tuple[int, int], code: str, shown: str
) -> None:
    data = huge_bilevel_png(*size)
    assert len(data) < 200_000  # tiny on disk, 900 MP (or 56 MP) once decoded
    with pytest.raises(PhotoRejected) as err:
        store.ingest(data)
    assert err.value.code == code
    assert "Ảnh có kích thước quá lớn" in refusal(err.value) and shown in refusal(err.value)
    assert decode_spy == []
    assert files_under(store.media_dir) == []


# --- content addressing, hostile names, idempotence ---------------------------------------------------------


def test_hostile_file_name_is_never_used(store: PhotoStore, tmp_path: Path) -> None:
    photo = store.ingest(phone_jpeg(18, (300, 200)), file_name="../../etc/passwd", mime_type="text/plain")
    assert "passwd" not in photo.path and ".." not in photo.path
    assert all(p.is_relative_to(store.media_dir) for p in files_under(tmp_path))
    assert {p.relative_to(store.media_dir).as_posix() for p in files_under(store.media_dir)} == {
        photo.path,
        photo.thumb_path,
    }


def test_same_photo_twice_is_stored_once(store: PhotoStore) -> None:
    data = phone_jpeg(19, (400, 300), gps=True, taken="2025:03:01 09:30:00")
    first = store.ingest(data)
    stat = store.open_path(first.path).stat()
    second = store.ingest(data)
    assert second == first and first.is_new and not second.is_new
    again = store.open_path(first.path).stat()
    assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # not rewritten
    assert len(files_under(store.media_dir)) == 2


def test_open_path_refuses_traversal(store: PhotoStore, tmp_path: Path) -> None:
    photo = store.ingest(phone_jpeg(20, (300, 200)))
    assert store.open_path(photo.path) == (store.media_dir / photo.path).resolve()
    (store.media_dir / "escape").symlink_to(tmp_path)
    for bad in ("../secret", "/etc/passwd", "photos/../../x", "", ".", "a\x00b", "..\\..\\x", "escape/x"):
        with pytest.raises(ValueError):
            store.open_path(bad)


# --- failures: no orphans, a storage error is not the teacher's fault ----------------------------------------


def test_thumbnail_write_failure_removes_the_photo(store: PhotoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    real = photos._write_atomic

    def write(path: Path, data: bytes) -> None:
        if "thumbs" in path.parts:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(photos, "_write_atomic", write)
    with pytest.raises(PhotoStoreError) as err:
        store.ingest(phone_jpeg(21, (300, 200)))
    assert refusal(err.value) == "Không lưu được ảnh do lỗi lưu trữ máy chủ. Vui lòng thử lại sau."
    assert not isinstance(err.value, PhotoRejected)
    assert files_under(store.media_dir) == []


def test_failed_thumbnail_for_existing_photo_keeps_the_existing_photo(
    store: PhotoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = phone_jpeg(22, (300, 200))
    photo = store.ingest(data)
    store.open_path(photo.thumb_path).unlink()
    monkeypatch.setattr(photos, "_write_atomic", lambda path, data: (_ for _ in ()).throw(OSError("EIO")))
    with pytest.raises(PhotoStoreError):
        store.ingest(data)
    assert store.open_path(photo.path).exists()  # an earlier handover still uses it


@pytest.mark.parametrize("fail", ["replace", "fsync", "write"])
def test_disk_errors_leave_no_partial_files(store: PhotoStore, monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "write":
        monkeypatch.setattr(photos.os, "fdopen", lambda fd, mode: _FullDisk(fd))
    else:
        monkeypatch.setattr(photos.os, fail, boom)
    with pytest.raises(PhotoStoreError):
        store.ingest(phone_jpeg(23, (300, 200)))
    assert files_under(store.media_dir) == []  # no photo, no thumbnail, no .tmp-*.part


class _FullDisk(io.FileIO):
    def __init__(self, fd: int) -> None:
        super().__init__(fd, "wb")

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_unwritable_media_dir_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(PhotoStoreError):
        PhotoStore(blocker / "media").ingest(phone_jpeg(24, (300, 200)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_media_dir_is_a_storage_error(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    media = tmp_path / "media"
    media.mkdir()
    media.chmod(0o500)
    try:
        with pytest.raises(PhotoStoreError):
            PhotoStore(media).ingest(phone_jpeg(24, (300, 200)))
    finally:
        media.chmod(0o700)


def test_discard_removes_new_files_and_is_safe_twice(store: PhotoStore) -> None:
    photo = store.ingest(phone_jpeg(25, (300, 200)))
    store.discard(photo)
    assert files_under(store.media_dir) == []
    store.discard(photo)  # already gone: fine


def test_discard_never_removes_a_photo_an_earlier_handover_uses(store: PhotoStore) -> None:
    data = phone_jpeg(26, (300, 200))
    store.ingest(data)  # committed earlier
    reused = store.ingest(data)
    store.discard(reused)  # the second handover's transaction failed
    assert len(files_under(store.media_dir)) == 2


# --- reuse: exact and near duplicates ---------------------------------------------------------------------------

SEEDS = range(100, 108)


def _hash(store: PhotoStore, img: Image.Image, **params: object) -> int:
    return store.ingest(encode(img, **params)).dhash  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scenes() -> dict[int, Image.Image]:
    return {s: scene(s, (800, 600)) for s in SEEDS}


def test_recompressed_resized_and_cropped_copies_are_near_duplicates(
    store: PhotoStore, scenes: dict[int, Image.Image]
) -> None:
    big_crop_hits = 0
    for img in scenes.values():
        w, h = img.size
        base = _hash(store, img, quality=90)
        variants = {
            "q40": _hash(store, img, quality=40),
            "q70": _hash(store, img, quality=70),
            "half size": _hash(store, img.resize((w // 2, h // 2)), quality=85),
            "png": _hash(store, img, fmt="PNG"),
            "5% cropped (2.5% per edge)": _hash(store, img.crop((20, 15, w - 20, h - 15)), quality=85),
            "5% off one side": _hash(store, img.crop((0, 0, w, h - 30)), quality=85),
        }
        for name, value in variants.items():
            assert is_near_duplicate(base, value), f"{name}: {hamming(base, value)} bits"
        big_crop_hits += is_near_duplicate(base, _hash(store, img.crop((40, 30, w - 40, h - 30)), quality=85))
    # 5% off EVERY edge (an 11% zoom) is where one 64-bit dHash runs out: most, not all, still match.
    assert big_crop_hits >= 6


def test_different_scenes_are_not_near_duplicates(store: PhotoStore, scenes: dict[int, Image.Image]) -> None:
    hashes = {s: _hash(store, img, quality=90) for s, img in scenes.items()}
    for a in SEEDS:
        for b in SEEDS:
            if a < b:
                assert not is_near_duplicate(hashes[a], hashes[b]), (a, b, hamming(hashes[a], hashes[b]))


def test_exact_duplicate_has_the_same_sha(store: PhotoStore, scenes: dict[int, Image.Image]) -> None:
    data = encode(scenes[100], quality=90)
    other = encode(scenes[100], quality=89)
    assert store.ingest(data).sha256 == store.ingest(data).sha256
    assert store.ingest(other).sha256 != store.ingest(data).sha256


def test_hamming_and_threshold() -> None:
    assert hamming(0, -1) == 64  # signed int64 hashes compare as 64-bit patterns
    assert hamming(-1, 2**64 - 1) == 0
    assert hamming(0b1011, 0b0001) == 2 == hamming(0b0001, 0b1011)
    near = (1 << NEAR_DUPLICATE_THRESHOLD) - 1  # exactly threshold bits set
    assert is_near_duplicate(0, near) and not is_near_duplicate(0, near << 1 | 1)
    assert is_near_duplicate(0, 0b111, threshold=3) and not is_near_duplicate(0, 0b1111, threshold=3)
    found = list(near_duplicates(0, [("a", 0b1), ("b", -1), ("c", 0)]))
    assert found == [("a", 1), ("c", 0)]


# --- capture time plausibility ---------------------------------------------------------------------------------


def test_capture_time_flag() -> None:
    handover = date(2025, 3, 15)
    vn = lambda *a: datetime(*a, tzinfo=photos.LOCAL_TZ)
    assert capture_time_flag(None, handover) is None
    assert capture_time_flag(vn(2025, 3, 15, 8), handover) is None
    assert capture_time_flag(vn(2025, 3, 8, 0, 1), handover) is None  # exactly 7 days before
    early = flag_text(FlagKind.CAPTURE_TIME, capture_time_flag(vn(2025, 3, 7, 23), handover))
    assert early == (
        "Ảnh được chụp ngày 07/03/2025, trước ngày bàn giao 15/03/2025 tới 8 ngày (chỉ cho phép tối đa 7 ngày)."
    )
    assert capture_time_flag(vn(2025, 3, 1), handover, max_days_before=14) is None
    after = flag_text(FlagKind.CAPTURE_TIME, capture_time_flag(vn(2025, 3, 16, 0, 5), handover))
    assert after == "Ảnh được chụp ngày 16/03/2025, sau ngày bàn giao 15/03/2025."
    # Local dates, not UTC dates: 18:00 UTC on the 15th is already the 16th in Vietnam.
    assert capture_time_flag(datetime(2025, 3, 15, 18, tzinfo=UTC), handover) is not None
    assert capture_time_flag(datetime(2025, 3, 15, 16, 59, tzinfo=UTC), handover) is None
    assert capture_time_flag(datetime(2025, 3, 16, 0, 30), handover) is not None  # naive = local wall time


def test_capture_time_flag_from_an_ingested_photo(store: PhotoStore) -> None:
    photo = store.ingest(phone_jpeg(27, (300, 200), taken="2024:12:24 10:00:00"))
    assert capture_time_flag(photo.captured_at, date(2025, 3, 15))["shot"] == "24/12/2024"
