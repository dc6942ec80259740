"""What a Spark cluster needs from this repository: the code as a zip (``--py-files``) and a
model version folder as an archive (``--archives`` / ``SparkContext.addArchive``).

``python -m app.offline.package DEST [--model-version N]`` (``make spark-package``) writes
``DEST/app.zip`` and ``DEST/model-<name>-<version>.tar.gz``; ``app.offline.spark`` builds
the same two files on the fly when it runs from a checkout.
"""

from __future__ import annotations

import argparse
import tarfile
import zipfile
from pathlib import Path

from app.config import PROJECT_ROOT, Config
from app.serving.predictor import ModelBundleError
from app.serving.registry import VersionSelection

CODE_ZIP = "app.zip"


def code_zip(destination: Path) -> Path:
    """``destination/app.zip``: the ``app`` package's Python files, paths from ``app/``."""
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / CODE_ZIP
    package = PROJECT_ROOT / "app"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            archive.write(path, path.relative_to(PROJECT_ROOT).as_posix())
    return target


def model_archive_name(model_dir: Path) -> str:
    """``model-sentiment-1.tar.gz`` for ``model/sentiment/1``: unique per version folder."""
    return f"model-{model_dir.parent.name}-{model_dir.name}.tar.gz"


def model_archive(model_dir: Path, destination: Path) -> Path:
    """A gzipped tar of the folder's files (at the archive's root), as Spark unpacks it."""
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / model_archive_name(model_dir)
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            if path.is_file():
                archive.add(path, arcname=path.name)
    return target


def model_version_dir(version: str | None) -> Path:
    """``MODEL_BASE_DIR/N`` for ``--model-version N``; without one, the version the server
    answers with by default (``MODEL_DIR``, else ``stable``), as ``app.batch`` scores with.
    Raises ``ModelBundleError`` when those settings name no folder."""
    if version is None:
        return VersionSelection.from_config(vars(Config)).default_folder()
    return Path(Config.MODEL_BASE_DIR) / version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.offline.package", description=__doc__)
    parser.add_argument("destination", type=Path, help="folder to write the two files into")
    parser.add_argument(
        "--model-version", help="a folder of MODEL_BASE_DIR (default: the stable version)"
    )
    args = parser.parse_args(argv)
    try:
        model_dir = model_version_dir(args.model_version)
    except ModelBundleError as error:
        parser.error(str(error))
    if not model_dir.is_dir():
        parser.error(f"no model folder {model_dir}")
    for path in (code_zip(args.destination), model_archive(model_dir, args.destination)):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
