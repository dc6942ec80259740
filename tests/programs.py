"""Programs some tests drive besides Python: ApacheBench, curl, Prometheus, Chromium.
Missing, such a test is skipped with the package to install, so that `make test` runs on
a fresh machine; with REQUIRE_TOOLS=1 (`.ci/run` sets it) it fails instead, so that CI
never passes by skipping them."""

from __future__ import annotations

import os
import shutil

import pytest


def missing(reason: str) -> None:
    """Skip the test for ``reason`` (a program not installed), or fail it in CI."""
    if os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail(f"REQUIRE_TOOLS=1 but {reason}")
    pytest.skip(reason)


def require_program(name: str, package: str) -> str:
    """The path of the program ``name``, from Debian's ``package``."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found: install Debian's {package} (apt-get install {package})")
    return found
