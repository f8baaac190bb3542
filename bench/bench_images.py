"""Image hashing throughput: fakeguard's query path against the naive path, same images, one run.

Run with ``python -m bench.bench_images [--images 200] [--side 1000]``. Single-threaded.

* naive: ``imagehash.phash(Image.open(f))`` (full decode, RGB -> L, 32x32 resize, DCT);
* fakeguard: ``detector.images.decode`` (JPEG draft decoding, EXIF, alpha, grayscale, border
  trim, quality) + ``hash_query`` (whole frame and trimmed view), i.e. everything a listing
  image goes through before the index is searched;
* fakeguard, reference path: the full decode and all variant hashes computed at upload.

Synthetic 1000x1000 JPEGs (quality 90): natural-looking noise textures with shapes, generated in
the run. Prints medians of per-image times and images/s, with the ratio against naive.
The index latency at 1M and 10M stored hashes is measured by ``python -m bench.bench_index``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import imagehash  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from detector import images  # noqa: E402


def make_jpeg(seed: int, side: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((side, side), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, side - 50, 2))
        w, h = (int(v) for v in rng.integers(40, side // 2, 2))
        draw.rectangle(
            [x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 255, 3))
        )
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def naive(data: bytes) -> int:
    return int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)


def ours(data: bytes) -> int:
    return images.hash_query(images.decode(data))[0].value


def reference(data: bytes) -> int:
    return len(images.hash_reference(images.decode(data, draft=False)))


def per_image(fn: Callable[[bytes], object], corpus: list[bytes], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for data in corpus:
            start = time.perf_counter()
            fn(data)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus = [make_jpeg(i, args.side) for i in range(args.images)]
    mean_kb = sum(map(len, corpus)) / len(corpus) / 1024
    print(
        f"{args.images} synthetic {args.side}x{args.side} JPEGs, mean {mean_kb:.0f} KB, "
        f"{args.rounds} rounds, single thread"
    )
    for fn in (naive, ours):  # warm up
        fn(corpus[0])
    # interleave rounds so that machine noise hits both paths alike
    naive_t: list[float] = []
    ours_t: list[float] = []
    for _ in range(args.rounds):
        naive_t += per_image(naive, corpus, 1)
        ours_t += per_image(ours, corpus, 1)
    ref_t = per_image(reference, corpus[: max(5, args.images // 10)], 1)
    n_med, o_med, r_med = (statistics.median(t) for t in (naive_t, ours_t, ref_t))
    print(
        f"naive  imagehash.phash(full decode):   median {n_med * 1e3:7.2f} ms  "
        f"{1 / n_med:8.1f} images/s"
    )
    print(
        f"fakeguard query path (decode+hashes):  median {o_med * 1e3:7.2f} ms  "
        f"{1 / o_med:8.1f} images/s   x{n_med / o_med:.1f} vs naive"
    )
    print(
        f"fakeguard reference path (upload):     median {r_med * 1e3:7.2f} ms  "
        f"{1 / r_med:8.1f} images/s   ({reference(corpus[0])} hashes per reference)"
    )


if __name__ == "__main__":
    main()
