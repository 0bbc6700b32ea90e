"""Run every benchmark in bench/ one after another (`make bench`). Each prints its own table of ratios
measured side by side in one run; pass --quick for smaller sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "bench_pipeline.py",
    "bench_workers.py",
    "bench_photos.py",
    "bench_sweep.py",
    "bench_delivery.py",
    "bench_export.py",
    "bench_minutes.py",
    "bench_import.py",
    "bench_memory.py",
    "bench_web.py",
    "bench_privacy.py",
    "bench_national.py",
]


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for name in ORDER:
        path = HERE / name
        if not path.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        rc = subprocess.call([sys.executable, str(path), *extra], cwd=HERE.parent)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
