"""Fuzz the real server (Gunicorn from the Procfile) against its own published contract.

Schemathesis reads ``<url>/openapi.json`` and generates requests for every operation,
valid ones and ones that break the schema; each response must be no 5xx and have a
documented status, content type and body schema (checks: schemathesis.toml). About 500
examples in all, over loopback; the budget per operation is below.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.slow

# Examples per operation and mode. Bodies are where the bugs hide; a GET without
# parameters has one possible request, and its path parameters have one valid value.
BUDGET = {
    ("POST", GenerationMode.POSITIVE): 100,
    ("POST", GenerationMode.NEGATIVE): 50,
    ("GET", GenerationMode.POSITIVE): 5,
    ("GET", GenerationMode.NEGATIVE): 15,
}
TOTAL_RANGE = (500, 900)  # a sanity check that the budget was actually spent
TIME_LIMIT_S = 150


def has_inputs(operation) -> bool:
    """Whether a negative (schema-breaking) request can exist for the operation."""
    return bool(operation.path_parameters or operation.body)


def fuzz(operation, mode: GenerationMode, base_url: str) -> int:
    """Run one operation's examples in one mode; the number run. Raises on a failure."""
    count = 0

    @settings(
        max_examples=BUDGET[(operation.method.upper(), mode)],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        nonlocal count
        count += 1
        case.call_and_validate(base_url=base_url)

    run()
    return count


def test_server_keeps_its_published_contract(start_server):
    server = start_server(WEB_CONCURRENCY="2")
    server.wait_ready("/ready")
    contract = schemathesis.openapi.from_url(server.url + "/openapi.json")
    started = time.monotonic()
    ran: dict[str, int] = {}
    failures: dict[str, str] = {}

    for result in contract.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue
            label = f"{operation.label} [{mode.value}]"
            try:
                ran[label] = fuzz(operation, mode, server.url)
            except Exception as error:  # keep going: report every operation that fails
                failures[label] = f"{type(error).__name__}: {error}"

    elapsed = time.monotonic() - started
    total = sum(ran.values())
    print(f"schemathesis: {total} examples over {len(ran)} operation/modes in {elapsed:.1f}s")
    for label, count in ran.items():
        print(f"  {count:4d}  {label}")
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
    assert TOTAL_RANGE[0] <= total <= TOTAL_RANGE[1], ran
    assert elapsed < TIME_LIMIT_S
