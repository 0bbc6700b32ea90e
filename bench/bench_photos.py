"""Milliseconds per 4000x3000 phone JPEG, from received bytes to stored photo + thumbnail.

Side by side in one run, alternating, median of N (this machine is shared and noisy: only the ratio
within one run means much):

  naive   Image.open, exif_transpose on the full 12 MP image, convert RGB, thumbnail(1600), save JPEG,
          thumbnail(320), save JPEG
  ingest  PhotoStore.ingest: checks, draft decode at reduced scale, resize, rotate the small image,
          strip EXIF, hashes, two atomic fsync'd writes (into a fresh media dir each run, so the
          "already stored" shortcut never triggers)

Run:  .venv/bin/python bench/bench_photos.py [--runs 15] [--orientation 6]
Goal: ingest <= 0.5x naive.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from storage.photos import PhotoStore  # noqa: E402
from tests.photo_factory import phone_jpeg  # noqa: E402


def naive(data: bytes, out: Path) -> None:
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)  # full-size decode + rotate
    im = im.convert("RGB")
    im.thumbnail((1600, 1600))  # default resampling; no draft (already loaded)
    im.save(out / "photo.jpg", "JPEG", quality=85)
    im.thumbnail((320, 320))
    im.save(out / "thumb.jpg", "JPEG", quality=85)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--orientation", type=int, default=6, help="EXIF orientation (6 = phone held upright)")
    ap.add_argument("--quick", action="store_true", help="5 runs")
    args = ap.parse_args()
    if args.quick:
        args.runs = 5

    t0 = time.perf_counter()
    data = phone_jpeg(7, (4000, 3000), quality=90, orientation=args.orientation, gps=True, taken="2025:03:01 09:30:00")
    print(
        f"photo: 4000x3000 JPEG q90 with EXIF (orientation {args.orientation}, GPS), "
        f"{len(data) / 1e6:.2f} MB, generated in {time.perf_counter() - t0:.1f} s"
    )

    scratch = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    try:
        # Warm up both paths once (imports, allocator, page cache).
        naive(data, scratch)
        PhotoStore(scratch / "warm").ingest(data)
        t_naive: list[float] = []
        t_ingest: list[float] = []
        for i in range(args.runs):
            media = scratch / f"media-{i}"  # fresh dir per run: no sha-exists shortcut
            for which in ("naive", "ingest") if i % 2 == 0 else ("ingest", "naive"):
                if which == "naive":
                    t = time.perf_counter()
                    naive(data, scratch)
                    t_naive.append(time.perf_counter() - t)
                else:
                    store = PhotoStore(media)
                    t = time.perf_counter()
                    photo = store.ingest(data)
                    t_ingest.append(time.perf_counter() - t)
                    assert photo.is_new
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n_ms, i_ms = statistics.median(t_naive) * 1e3, statistics.median(t_ingest) * 1e3
    print(f"runs: {args.runs} each, alternating; median (min)")
    print(f"  naive : {n_ms:7.1f} ms/photo ({min(t_naive) * 1e3:.1f})")
    print(
        f"  ingest: {i_ms:7.1f} ms/photo ({min(t_ingest) * 1e3:.1f})  -> {photo.width}x{photo.height}, "
        f"{photo.size_bytes / 1e3:.0f} kB"
    )
    print(f"  ratio : {i_ms / n_ms:.2f}x naive (goal <= 0.50x)")


if __name__ == "__main__":
    main()
