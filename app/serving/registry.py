"""The model versions this process serves: every one loaded and ready, and the labels
(``stable``, ``canary``, …) that name them.

Follows TensorFlow Serving's model-server config: versions are the numeric sub-folders
of one base folder; a label may point only at a loaded version (TF Serving refuses labels
for versions that are not available unless told otherwise); a request names a version
or a label, never both.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.serving.predictor import (
    ModelBundleError,
    Predictor,
    check_regular,
    is_transformer,
    size_kernel_cache,
)

LABELS_FILE = "labels.json"
STABLE = "stable"
CANARY = "canary"
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


class UnknownVersion(LookupError):
    """No loaded version has this number, or no label has this name."""


@dataclass(frozen=True)
class VersionSelection:
    """What to load: one folder (``MODEL_DIR``), or versions of a base folder."""

    base_dir: Path
    versions: str = "all"  # "all" or "1,2"
    labels: str = ""  # "stable=2,canary=1"; empty: the base folder's labels.json
    model_dir: str = ""  # one version folder, served alone

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VersionSelection:
        """From the settings of the same names (``app.config.Config`` or a Flask config)."""
        return cls(
            base_dir=Path(config["MODEL_BASE_DIR"]),
            versions=config["MODEL_VERSIONS"],
            labels=config["MODEL_LABELS"],
            model_dir=config["MODEL_DIR"].strip(),  # blank is unset, as for the others
        )

    def folders(self) -> dict[str | None, Path]:
        """Version number → folder, ascending (``None``: ``MODEL_DIR``'s folder, whose
        version its metadata says); raises ``ModelBundleError`` naming the setting when a
        requested version has no folder."""
        if self.model_dir:
            return {None: Path(self.model_dir)}
        if not self.base_dir.is_dir():
            raise ModelBundleError(f"MODEL_BASE_DIR={self.base_dir}: not a folder")
        numbered = [
            path for path in self.base_dir.iterdir() if path.is_dir() and ascii_digits(path.name)
        ]
        padded = [path.name for path in numbered if path.name.startswith("0")]
        if padded:  # skipped, it was served by no version (and '2' was "no folder")
            number = int(padded[0])
            fix = f"name it {number} (no leading zeros)" if number else "versions start at 1"
            raise ModelBundleError(
                f"MODEL_BASE_DIR={self.base_dir}: folder {padded[0]!r} is no version name: "
                f"{fix}, or move it out"
            )
        found = {path.name: path for path in numbered}
        if self.versions.strip().lower() == "all":
            wanted = sorted(found, key=int)
            if not wanted:
                raise ModelBundleError(f"MODEL_BASE_DIR={self.base_dir}: no version folders")
        else:
            wanted = _parse_versions(self.versions)
            missing = [version for version in wanted if version not in found]
            if missing:
                raise ModelBundleError(
                    f"MODEL_VERSIONS={self.versions}: no folder {self.base_dir / missing[0]}"
                )
        return {version: found[version] for version in sorted(wanted, key=int)}

    def default_folder(self) -> Path:
        """The folder of the version that answers by default (``stable``), without
        loading anything: for tools that score with one version (batch, Spark). Labels
        the server refuses to start with are refused here too (``ModelBundleError``):
        ``stable=4`` with version 4 not loaded scored with the highest version instead
        (an outside probe)."""
        folders = self.folders()
        if self.model_dir:  # served alone: no labels
            return folders[None]
        labels = self.label_map()
        check_labels(list(folders), labels, self.label_source())
        return folders[labels.get(STABLE, next(reversed(folders)))]

    def label_source(self) -> str:
        """Where ``label_map`` takes the labels from, as a refusal names it."""
        return "MODEL_LABELS" if self.labels.strip() else str(self.base_dir / LABELS_FILE)

    def label_map(self) -> dict[str, str]:
        """Label → version from ``labels``, else from the base folder's labels.json; none
        for ``MODEL_DIR``, which overrides both (a rollout's leftover labels stopped a
        folder served alone)."""
        if self.model_dir:
            return {}
        if self.labels.strip():
            return _parse_labels(self.labels)
        path = self.base_dir / LABELS_FILE
        if not os.path.lexists(path):
            return {}
        check_regular(path)  # a folder or a pipe was taken for none
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:  # a link to nothing or a loop: OSError
            raise ModelBundleError(f"{path}: not readable JSON ({error})") from None
        except RecursionError:
            raise ModelBundleError(f"{path}: not readable JSON (nested too deep)") from None
        if not isinstance(data, dict):
            raise ModelBundleError(f"{path}: expected an object of label → version")
        if not data:
            return {}
        for key, value in data.items():  # pasted into "label=version,...", unchecked
            if not (isinstance(value, str) and "," not in key + value and "=" not in key + value):
                raise ModelBundleError(
                    f"{path}: expected label names and version strings, such as "
                    f'{{"stable": "2"}} (got {key!r}: {value!r})'
                )
        pairs = ",".join(f"{key}={value}" for key, value in data.items())
        return _parse_labels(pairs, f"{path} ({pairs})")


def ascii_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²" and "３", which int() refuses."""
    return text.isascii() and text.isdigit()


def _parse_versions(text: str) -> list[str]:
    versions = [part.strip() for part in text.split(",") if part.strip()]
    if not versions or not all(ascii_digits(part) for part in versions):
        raise ModelBundleError(f"MODEL_VERSIONS={text}: use 'all' or version numbers: 1,2")
    return [str(int(part)) for part in versions]


def _parse_labels(text: str, source: str = "") -> dict[str, str]:
    """``stable=2,canary=1`` as a dict; a refusal names ``source`` (default: the setting)."""
    source = source or f"MODEL_LABELS={text}"
    labels: dict[str, str] = {}
    for part in (part.strip() for part in text.split(",")):
        name, _, version = part.partition("=")
        name, version = name.strip(), version.strip()
        if not _LABEL.fullmatch(name) or not ascii_digits(version):
            raise ModelBundleError(f"{source}: use label=version pairs such as stable=2,canary=1")
        if name in labels:
            raise ModelBundleError(f"{source}: label {name!r} given twice")
        labels[name] = str(int(version))
    return labels


def check_labels(versions: list[str], labels: Mapping[str, str], labels_from: str) -> None:
    """Refuse (``ModelBundleError``) labels that name a version not in ``versions`` (the
    loaded ones, ascending), or a canary that would be stable too. Without a stable label
    the highest loaded version is stable: unless that is the canary (MODEL_LABELS=canary=5
    made the candidate stable and sent it all traffic)."""
    for label, version in labels.items():
        if version not in versions:
            raise ModelBundleError(
                f"{labels_from}: {label}={version} names a version that is not loaded "
                f"(loaded: {', '.join(versions)})"
                + ("" if labels_from == "MODEL_LABELS" else "; MODEL_LABELS overrides it")
            )
    highest = versions[-1]
    if STABLE not in labels and labels.get(CANARY) == highest:
        lowest = versions[0]
        example = (
            f"e.g. stable={lowest},canary={highest}"
            if lowest != highest
            else "and load it: it is the only version loaded"
        )
        raise ModelBundleError(
            f"{labels_from}: canary={highest} and no stable label, so the highest loaded "
            f"version, {highest}, would be stable too: name the stable version as well "
            f"({example})"
        )


class ModelRegistry:
    """Ready versions of one model, and its labels. ``ModelRegistry.load()`` returns only
    when every selected version has loaded and passed its checks."""

    def __init__(
        self,
        versions: Mapping[str, Predictor],
        labels: Mapping[str, str],
        labels_from: str = "MODEL_LABELS",
    ):
        self.versions = dict(sorted(versions.items(), key=lambda item: int(item[0])))
        names = {predictor.bundle.name for predictor in self.versions.values()}
        if len(names) != 1:
            said = ", ".join(
                f"{predictor.bundle.directory / 'metadata.json'} says {predictor.bundle.name!r}"
                for predictor in self.versions.values()
            )
            raise ModelBundleError(f"the versions name different models: {said}")
        self.name = names.pop()
        check_labels(list(self.versions), labels, labels_from)
        self.labels = dict(labels)
        self.labels.setdefault(STABLE, next(reversed(self.versions)))

    @classmethod
    def load(
        cls,
        selection: VersionSelection,
        backend: str = "openvino",
        inference_threads: int = 1,
        batching: tuple[int, float] | None = None,
        precision: str | None = None,
    ) -> ModelRegistry:
        labels = selection.label_map()
        versions: dict[str, Predictor] = {}
        folders = selection.folders()
        if backend == "openvino":
            size_kernel_cache(sum(is_transformer(folder) for folder in folders.values()))
        for expected, folder in folders.items():
            predictor = Predictor.load(folder, backend, inference_threads, batching, precision)
            version = predictor.bundle.version
            if expected is not None and version != expected:
                raise ModelBundleError(
                    f"{folder}: metadata.json says version {version}, the folder {expected}"
                )
            versions[version] = predictor
        return cls(versions, labels, selection.label_source())

    @property
    def stable(self) -> Predictor:
        return self.versions[self.labels[STABLE]]

    def labels_of(self, version: str) -> list[str]:
        return sorted(label for label, target in self.labels.items() if target == version)

    def version(self, version: str) -> Predictor:
        """The loaded version ``version`` names: ASCII digits ("03" is 3; int() would also
        take "３", " 3" and "0_3")."""
        try:
            if not (version.isascii() and version.isdigit()):
                raise ValueError(version)
            return self.versions[str(int(version))]
        except (KeyError, ValueError):
            raise UnknownVersion(f"version {version!r}") from None

    def labelled(self, label: str) -> Predictor:
        try:
            return self.versions[self.labels[label]]
        except KeyError:
            raise UnknownVersion(f"label {label!r}") from None
