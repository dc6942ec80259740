"""Export one model folder's ``model.keras`` to OpenVINO IR, in a process of its own.

A serving worker on the OpenVINO backend needs OpenVINO and NumPy, not Keras: importing
Keras (with the SciPy, h5py and optree it brings) costs a worker ~100 MB that it would
carry for its whole life. So the worker runs this module as a short-lived child when the
IR is not exported yet (``Predictor.load``); the child loads the Keras model, applies
every check ``load_model_bundle`` makes, writes the IR and exits, and its memory goes
with it.

``python -m app.serving.openvino_export MODEL_DIR TARGET_DIR``: exit 0 with the IR in
TARGET_DIR; exit 2 with the ``ModelBundleError`` message as the last line on stderr.

``python -m app.serving.openvino_export --prebuild BASE_DIR``: export every version folder
of BASE_DIR into the project's ``.openvino/`` folder, where workers look first. Heroku's
Python buildpack runs it from ``bin/post_compile`` at build time, so that a fresh dyno's
workers compile at once instead of exporting first (seconds of boot per version).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.serving import predictor
from app.serving.predictor import (
    MODEL_FILE,
    ModelBundleError,
    export_name,
    export_once,
    load_model_bundle,
)
from app.serving.registry import VersionSelection

BAD_BUNDLE_EXIT = 2


def export(model_dir: Path, target_dir: Path) -> None:
    """Check the folder as ``load_model_bundle`` does and write ``target_dir/model.xml``."""
    bundle = load_model_bundle(model_dir)
    bundle.model.export(str(target_dir / "model.xml"), format="openvino", verbose=False)


def prebuild(base_dir: Path) -> list[Path]:
    """Export each numeric version folder of ``base_dir`` into ``predictor.PREBUILT_DIR``
    (each in its own child), except those that ship their own IR (version 3)."""
    versions = VersionSelection(base_dir).folders().values()  # the folders a server loads
    folders = [d for d in versions if not (d / predictor.IR_FILE).is_file()]
    root = predictor.PREBUILT_DIR
    return [export_once(folder, root / export_name(folder / MODEL_FILE)) for folder in folders]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(
            "usage: python -m app.serving.openvino_export MODEL_DIR TARGET_DIR\n"
            "       python -m app.serving.openvino_export --prebuild BASE_DIR",
            file=sys.stderr,
        )
        return 1
    os.environ["KERAS_BACKEND"] = "openvino"  # before Keras is imported
    try:
        if argv[0] == "--prebuild":
            for path in prebuild(Path(argv[1])):
                print(f"exported {path}")
        else:
            export(Path(argv[0]), Path(argv[1]))
    except ModelBundleError as error:
        print(error, file=sys.stderr)
        return BAD_BUNDLE_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
