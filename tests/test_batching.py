"""Dynamic batching (app.serving.batching) with real threads and a recording model."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.serving.batching import DynamicBatcher


class Recorder:
    """A model whose answer is each row's sum and width, remembering each call's shape."""

    def __init__(self, seconds: float = 0.0, fail: bool = False):
        self.shapes: list[tuple[int, int]] = []
        self.seconds, self.fail = seconds, fail

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        self.shapes.append(ids.shape)
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("model failed")
        return np.stack([ids.sum(axis=1), (ids != 0).sum(axis=1)], axis=1).astype(np.float32)


def run_concurrently(batcher, inputs):
    results: list = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def call(index):
        start.wait()
        try:
            results[index] = batcher(inputs[index])
        except RuntimeError as error:
            results[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_waiting_requests_share_calls_and_each_gets_its_own_rows() -> None:
    model = Recorder(seconds=0.02)
    batcher = DynamicBatcher(model, max_batch_size=8, timeout=0.05)
    # Rows of different widths: each answer must be computed on its own ids only.
    inputs = [np.full((1, 2 + i % 3), i + 1, dtype=np.int32) for i in range(8)]
    results = run_concurrently(batcher, inputs)
    for i, result in enumerate(results):
        assert result.tolist() == [[(i + 1) * (2 + i % 3), 2 + i % 3]]
    assert len(model.shapes) < 8  # shared
    assert all(rows <= 8 for rows, _ in model.shapes)


def test_a_batch_never_exceeds_the_size_and_multi_row_requests_stay_whole() -> None:
    model = Recorder(seconds=0.01)
    batcher = DynamicBatcher(model, max_batch_size=4, timeout=0.05)
    inputs = [np.ones((3, 4), dtype=np.int32) * (i + 1) for i in range(5)]
    results = run_concurrently(batcher, inputs)
    assert [r[:, 0].tolist() for r in results] == [[4.0 * (i + 1)] * 3 for i in range(5)]
    assert all(rows <= 4 for rows, _ in model.shapes)


def test_a_full_batch_runs_at_once_without_waiting_out_the_timeout() -> None:
    """A batch is called as soon as it holds max_batch_size rows, in one call."""
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch_size=2, timeout=5.0)
    started = time.perf_counter()
    results = run_concurrently(batcher, [np.ones((1, 4), dtype=np.int32)] * 2)
    assert [r.tolist() for r in results] == [[[4.0, 4.0]]] * 2
    assert time.perf_counter() - started < 1.0
    assert model.shapes == [(2, 4)]


def test_the_settings_timeout_is_in_milliseconds(make_app) -> None:
    app = make_app(DYNAMIC_BATCH_MAX_SIZE=8, DYNAMIC_BATCH_TIMEOUT_MS=2)
    registry = app.extensions["models"].registry
    batchers = [registry.versions[version].batcher for version in registry.versions]
    assert batchers and all(b.max_batch_size == 8 and b.timeout == 0.002 for b in batchers)


def test_a_lone_request_waits_at_most_the_timeout() -> None:
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch_size=16, timeout=0.03)
    started = time.perf_counter()
    assert batcher(np.ones((1, 8), dtype=np.int32)).tolist() == [[8.0, 8.0]]
    assert 0.03 <= time.perf_counter() - started < 1.0
    assert model.shapes == [(1, 8)]


def test_a_failing_call_fails_every_request_in_it_and_the_next_ones_still_run() -> None:
    model = Recorder(seconds=0.01, fail=True)
    batcher = DynamicBatcher(model, max_batch_size=8, timeout=0.05)
    results = run_concurrently(batcher, [np.ones((1, 4), dtype=np.int32)] * 4)
    assert all(isinstance(r, RuntimeError) for r in results)
    model.fail = False
    assert batcher(np.ones((2, 4), dtype=np.int32)).shape == (2, 2)


@pytest.mark.parametrize("rows", [8, 20])
def test_a_request_as_big_as_a_batch_runs_alone(rows) -> None:
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch_size=8, timeout=5.0)
    assert batcher(np.ones((rows, 4), dtype=np.int32)).shape == (rows, 2)
    assert model.shapes == [(rows, 4)]


def test_a_transformer_request_is_scored_in_calls_of_bounded_size() -> None:
    """``infer_in_calls``: calls of at most CALL_TOKENS ids, rows sorted by length and cut
    to their longest, answers back in the request's order."""
    from app.serving.predictor import CALL_TOKENS, infer_in_calls

    rng = np.random.default_rng(7)
    lengths = rng.integers(3, 128, size=64)
    ids = np.zeros((64, 128), dtype=np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1000, 2000, size=length)
    model = Recorder()
    result = infer_in_calls(ids, model)
    assert result.tolist() == model_answers(ids)
    assert all(rows * width <= CALL_TOKENS for rows, width in model.shapes)
    assert sum(rows for rows, _ in model.shapes) == 64


def model_answers(ids: np.ndarray) -> list[list[float]]:
    return np.stack([ids.sum(axis=1), (ids != 0).sum(axis=1)], axis=1).astype(float).tolist()
