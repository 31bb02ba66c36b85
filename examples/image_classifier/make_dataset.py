"""Write the digits that ship with scikit-learn as PNG files plus a Label Studio tasks file.

Why: a labelling demo needs real image files that Label Studio serves and
the backend downloads, not arrays. Nothing is downloaded: `load_digits` is
part of scikit-learn. Each 8x8 digit (grey levels 0..16) becomes a 32x32
greyscale PNG (nearest-neighbour upscaling, so the model can shrink it back
without loss).

    python make_dataset.py --out ./digits [--n 500] [--url-prefix /data/local-files/?d=digits/]

Writes `<out>/<NNNNN>.png`, `<out>/tasks.json` (tasks whose `image` is
`<url-prefix><NNNNN>.png`) and `<out>/labels.json` (file name -> true digit,
for simulations; never import it into Label Studio).
With Label Studio's local files serving (`LOCAL_FILES_SERVING_ENABLED=true`,
`LOCAL_FILES_DOCUMENT_ROOT` = the parent of `<out>`) and a "Local files"
source storage on `<out>` in the project (Label Studio serves nothing
outside one), import `tasks.json` as is. Or upload the PNGs through the
Import dialog. `--url-prefix ''` writes absolute paths (for tests and
scripts that run the model directly).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

SCALE = 4  # 8x8 -> 32x32


def digit_png(pixels: np.ndarray, path: Path) -> None:
    """Save one 8x8 digit (values 0..16) as an upscaled 8-bit greyscale PNG."""
    grey = np.clip(np.asarray(pixels, dtype=float).reshape(8, 8) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    Image.fromarray(np.kron(grey, np.ones((SCALE, SCALE), dtype=np.uint8)), mode="L").save(path)


def make_dataset(
    out: Path, n: int | None = None, url_prefix: str = "/data/local-files/?d=digits/", seed: int = 0
) -> list[dict]:
    """Write `n` digits (all 1,797 when None), shuffled with `seed`; returns the tasks."""
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        order = order[: min(n, len(order))]
    out.mkdir(parents=True, exist_ok=True)
    tasks, truth = [], {}
    for rank, index in enumerate(order):
        name = f"{rank:05d}.png"
        digit_png(digits.images[index], out / name)
        tasks.append({"data": {"image": f"{url_prefix}{name}" if url_prefix else str((out / name).resolve())}})
        truth[name] = str(int(digits.target[index]))
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    (out / "labels.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("digits"), help="output directory (default: ./digits)")
    parser.add_argument("--n", type=int, default=None, help="number of images (default: all 1,797)")
    parser.add_argument(
        "--url-prefix",
        default="/data/local-files/?d=digits/",
        help="prefix of each task's image URL; '' writes absolute local paths",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        tasks = make_dataset(args.out, args.n, args.url_prefix, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(tasks)} PNGs, {args.out / 'tasks.json'} and {args.out / 'labels.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
