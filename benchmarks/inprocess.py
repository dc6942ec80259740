"""Where the time goes, in one process: preprocessing and inference at batch 1, 8 and 64.

``python -m benchmarks.inprocess [--json]``; the backend comes from KERAS_BACKEND as in
the server. The batch-64 pipeline rate is the reference of `make bench`'s batch target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from app.config import Config
from app.serving.predictor import Predictor
from app.serving.registry import VersionSelection
from benchmarks.reviews import REVIEWS

BATCH_SIZES = (1, 8, 64)


def median_seconds(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``call`` over ``repeat`` runs, after a few warm-up calls."""
    for _ in range(5):
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(predictor: Predictor) -> dict[str, dict[str, float]]:
    """Per batch size: median µs for preprocessing, inference and both, and rows/s."""
    encoder, infer = predictor.bundle.encoder, predictor._infer
    results = {}
    for size in BATCH_SIZES:
        texts = [REVIEWS[i % len(REVIEWS)] for i in range(size)]
        ids = encoder.encode_batch(texts)
        repeat = max(200, 4000 // size)
        preprocess = median_seconds(lambda texts=texts: encoder.encode_batch(texts), repeat)
        inference = median_seconds(lambda ids=ids: infer(ids), repeat)
        pipeline = median_seconds(lambda texts=texts: predictor.predict_proba(texts), repeat)
        results[str(size)] = {
            "preprocess_us": preprocess * 1e6,
            "inference_us": inference * 1e6,
            "pipeline_us": pipeline * 1e6,
            "rows_per_s": size / pipeline,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (used by make bench)")
    args = parser.parse_args()
    folder = VersionSelection.from_config(vars(Config)).default_folder()
    predictor = Predictor.load(folder, Config.KERAS_BACKEND, Config.INFERENCE_THREADS)
    results = measure(predictor)
    if args.json:
        print(json.dumps({"backend": Config.KERAS_BACKEND, "batches": results}))
        return
    print(f"backend={Config.KERAS_BACKEND}  (median per call)")
    print(
        f"{'batch':>5} {'preprocess µs':>14} {'inference µs':>13} {'pipeline µs':>12} {'rows/s':>9}"
    )
    for size, row in results.items():
        print(
            f"{size:>5} {row['preprocess_us']:>14.1f} {row['inference_us']:>13.1f} "
            f"{row['pipeline_us']:>12.1f} {row['rows_per_s']:>9.0f}"
        )


if __name__ == "__main__":
    main()
