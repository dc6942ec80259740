"""The model's life cycle in a worker: ``Predictor.load()`` once after fork, then ``classify()``.

No Flask here. Keras (and with it TensorFlow or OpenVINO) is imported inside ``load()``
only, so importing the app in the Gunicorn master never starts an inference runtime
(loading TensorFlow before fork hangs the workers: measured). On the OpenVINO backend a
worker never imports Keras at all: a child process exports the Keras model to OpenVINO
IR once (``app.serving.openvino_export``) and the worker compiles the IR.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.serving.batching import DynamicBatcher
from app.serving.preprocessing import (
    WORDPIECE_FILE,
    TextEncoder,
    TokenizerFileError,
    WordPieceEncoder,
    encoder_from_config,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
# A folder may ship its own OpenVINO IR beside (or, in the slug, instead of) the Keras
# file: version 3's, compressed to 16-bit weights at training time (45 MB, not 90).
IR_FILE = "model.xml"
# And version 4 an int8 one (NNCF's post-training quantization of model.xml), served where
# the operator asks for INFERENCE_PRECISION=int8.
INT8_IR_FILE = "model-int8.xml"
PREPROCESSING_FILE = "preprocessing.json"
METADATA_FILE = "metadata.json"
SUPPORTED_BACKENDS = ("openvino", "tensorflow")


class ModelBundleError(Exception):
    """The artifact folder is missing a file, or its files do not fit together."""


@dataclass(frozen=True)
class ModelBundle:
    """One model version as shipped: the Keras model, its encoder and its metadata."""

    directory: Path
    # keras.Model, typed loosely so that this module does not import Keras; None on the
    # OpenVINO backend, which serves the exported graph (see ``_openvino_ir``).
    model: Any
    encoder: TextEncoder | WordPieceEncoder
    metadata: dict[str, Any]
    # The SHA-256 of the files SHA256SUMS listed and the load checked, by file name.
    digests: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def reference(self) -> dict[str, str]:
        """``{"name", "version"}``, as responses name the model that answered."""
        return {"name": self.name, "version": self.version}


# Every file a version folder may hold that the server reads (the IRs' weights too, which
# OpenVINO opens by the .xml file's name).
_READ_FILES = (
    MODEL_FILE,
    IR_FILE,
    "model.bin",
    INT8_IR_FILE,
    "model-int8.bin",
    WORDPIECE_FILE,
)


# The SHA-256 of each of those files and of preprocessing.json, as ``sha256sum`` writes
# them, made when the folder is built (``make model``) and checked at load: a copy damaged
# in place (64 KiB of model.bin overwritten, its length kept) loaded, passed its known
# answers, and answered some reviews 200 with null scores (NaN; an outside probe).
CHECKSUMS_FILE = "SHA256SUMS"
_CHECKSUMMED = (*_READ_FILES, PREPROCESSING_FILE)
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^/\\]+)")


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_checksums(directory: Path) -> None:
    """Record the SHA-256 of the folder's files that make its answers (``CHECKSUMS_FILE``)."""
    lines = [
        f"{sha256_of(Path(directory) / name)}  {name}\n"
        for name in sorted(_CHECKSUMMED)
        if (Path(directory) / name).is_file()
    ]
    (Path(directory) / CHECKSUMS_FILE).write_text("".join(lines), encoding="ascii")


def verify_checksums(directory: Path) -> dict[str, str]:
    """Each file ``CHECKSUMS_FILE`` lists, if it is there, has the SHA-256 it lists (a
    file left out on purpose, as the slug leaves out the transformers' model.keras, is not
    checked); a folder without the file is not checked. The digests checked, by file
    name; raises ``ModelBundleError``."""
    path = Path(directory) / CHECKSUMS_FILE
    checked: dict[str, str] = {}
    if not os.path.lexists(path):
        return checked
    check_regular(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, ValueError) as error:
        raise ModelBundleError(f"{path}: not readable ({error})") from None
    for number, line in enumerate(lines, start=1):
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None or match[2] not in _CHECKSUMMED:
            raise ModelBundleError(
                f"{path}: line {number} is not '<sha256>  <file>' naming a model file"
            )
        listed = Path(directory) / match[2]
        check_regular(listed)
        try:
            actual = sha256_of(listed)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ModelBundleError(f"{listed}: not readable ({error.strerror})") from None
        if actual != match[1]:
            raise ModelBundleError(
                f"{listed}: damaged: its SHA-256 is {actual[:16]}…, {CHECKSUMS_FILE} says "
                f"{match[1][:16]}… (copy the folder again, or rebuild it with make model)"
            )
        checked[match[2]] = actual
    return checked


def check_regular(path: Path) -> None:
    """A file the server will read, if it is there, is a regular one. A named pipe hung
    start-up with no line; a symbolic link's loop at model.bin aborted OpenVINO's C++ in
    every worker, which Gunicorn replaced forever; a folder at model.xml was reported as
    the Keras file not found (an outside probe). A missing file, or a link to nothing, is
    left for its reader to report."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    except OSError as error:  # a loop
        raise ModelBundleError(f"{path}: not readable ({error.strerror})") from None
    if not regular:
        raise ModelBundleError(f"{path}: not a regular file")


def _read_json(path: Path) -> dict[str, Any]:
    check_regular(path)
    try:
        with path.open(encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise ModelBundleError(f"{path}: file not found") from None
    except OSError as error:  # a symbolic link's loop, a folder, no permission
        raise ModelBundleError(f"{path}: not readable ({error.strerror})") from None
    except ValueError as error:
        raise ModelBundleError(f"{path}: not readable JSON ({error.__class__.__name__})") from None
    except RecursionError:
        raise ModelBundleError(f"{path}: not readable JSON (nested too deep)") from None
    if not isinstance(data, dict):
        raise ModelBundleError(f"{path}: expected a JSON object")
    return data


def read_model_folder(directory: Path) -> ModelBundle:
    """Read and cross-check a version folder's metadata and encoder, and find its model
    file (not loaded: ``model`` is None). Raises ``ModelBundleError`` naming the file and
    the problem."""
    directory = Path(directory)
    for name in _READ_FILES:
        check_regular(directory / name)
    digests = verify_checksums(directory)
    metadata = _read_json(directory / METADATA_FILE)
    for key in ("name", "version", "classes"):
        if key not in metadata:
            raise ModelBundleError(f"{directory / METADATA_FILE}: missing key {key!r}")
    _check_metadata(directory / METADATA_FILE, metadata)
    try:
        encoder = encoder_from_config(_read_json(directory / PREPROCESSING_FILE), directory)
    except TokenizerFileError as error:  # names the tokenizer's file itself
        raise ModelBundleError(str(error)) from None
    except (KeyError, TypeError, ValueError, OSError, AttributeError, OverflowError) as error:
        raise ModelBundleError(  # OverflowError: Infinity where a whole number belongs
            f"{directory / PREPROCESSING_FILE}: not an encoder config ({error!r})"
        ) from None
    if not (directory / MODEL_FILE).is_file() and not (directory / IR_FILE).is_file():
        raise ModelBundleError(f"{directory / MODEL_FILE}: file not found")
    # Whatever INFERENCE_PRECISION chooses: a folder that serves only under an override
    # would ship, and fail on the first deploy without it.
    folder_precision(directory, metadata)
    return ModelBundle(
        directory=directory, model=None, encoder=encoder, metadata=metadata, digests=digests
    )


def _check_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """The values the server reads from ``metadata.json``, each of the type it needs: one
    of another type was a traceback at start-up (``"version": "1.0"``, a list as
    ``training_label_mix``) or a version no URL could reach (``"05"``)."""
    name, version, classes = metadata["name"], metadata["version"], metadata["classes"]
    if not isinstance(name, str) or not name.strip():
        raise ModelBundleError(f"{path}: 'name' must be a non-empty string, not {name!r}")
    if isinstance(version, bool) or not re.fullmatch(r"0|[1-9][0-9]*", str(version)):
        raise ModelBundleError(
            f"{path}: 'version' must be a whole number without leading zeros, such as "
            f'"2", not {version!r}'
        )
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c.strip() for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ModelBundleError(
            f"{path}: 'classes' must list two or more different names, in the order of the "
            f"model's outputs, not {classes!r}"
        )
    # Each optional value, when there, must have its shape: null included (the server
    # reads these with .get(key, {}), which a null gets past).
    mixes = {}
    if "training_label_mix" in metadata:
        mixes["training_label_mix"] = metadata["training_label_mix"]
    if "reference" in metadata:
        reference = metadata["reference"]
        if not isinstance(reference, dict):
            raise ModelBundleError(f"{path}: 'reference' must be an object, not {reference!r}")
        if "label_mix" in reference:
            mixes["reference.label_mix"] = reference["label_mix"]
        histogram = reference.get("confidence_histogram", {"buckets": [], "counts": [0]})
        if not (
            isinstance(histogram, dict)
            and _numbers(histogram.get("buckets"))
            and _numbers(histogram.get("counts"))
            and len(histogram["counts"]) == len(histogram["buckets"]) + 1
        ):
            raise ModelBundleError(
                f"{path}: 'reference.confidence_histogram' must hold 'buckets' (upper bounds) "
                "and 'counts' (one more than the buckets), both lists of numbers"
            )
    for key, mix in mixes.items():
        unknown = sorted(set(mix) - set(classes)) if isinstance(mix, dict) else []
        if unknown:  # was "must map class names to shares", naming neither
            raise ModelBundleError(
                f"{path}: {key!r} names {', '.join(map(repr, unknown))}, not among the "
                f"classes {classes!r}"
            )
        if not (
            isinstance(mix, dict)
            and _numbers(list(mix.values()))
            and all(0 <= share <= 1 for share in mix.values())
        ):
            raise ModelBundleError(
                f"{path}: {key!r} must map class names to shares between 0 and 1, not {mix!r}"
            )


def _numbers(values: Any) -> bool:
    """A list of finite numbers (booleans are not)."""
    return isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_model_shape(
    bundle: ModelBundle,
    inputs: int,
    outputs: int,
    input_shape: tuple[int | None, ...],
    output_shape: tuple[int | None, ...],
    input_type: str,
) -> None:
    """The model takes one row of int32 ids of the encoder's length a text (any length,
    ``None``, for an encoder whose rows are as wide as the batch) and gives one row of
    probabilities, one per class, a text. A model of another rank or input type used to
    pass and then fail on its first call (a traceback at start-up, or a 500 to every
    request to a version without known answers)."""
    model_path = bundle.directory / MODEL_FILE
    if inputs != 1 or outputs != 1:
        raise ModelBundleError(f"{model_path}: expected one input and one output")
    if len(input_shape) != 2:
        raise ModelBundleError(
            f"{model_path}: the model takes shape {_shape(input_shape)}; expected (batch, ids)"
        )
    if input_type != "int32":
        raise ModelBundleError(
            f"{model_path}: the model's input is {input_type}; expected int32 token ids "
            '(keras.Input(..., dtype="int32"))'
        )
    if len(output_shape) != 2:
        raise ModelBundleError(
            f"{model_path}: the model outputs shape {_shape(output_shape)}; expected (batch, "
            f"{len(bundle.classes)}): one row of probabilities a text (pool the sequence "
            "before the last layer)"
        )
    input_length, output_size = input_shape[-1], output_shape[-1]
    if output_size != len(bundle.classes):
        raise ModelBundleError(
            f"{bundle.directory / METADATA_FILE}: lists {len(bundle.classes)} classes "
            f"but the model outputs {output_size}"
        )
    if not bundle.encoder.fixed_length:
        if input_length is not None:
            raise ModelBundleError(
                f"{bundle.directory / PREPROCESSING_FILE}: rows of any length, "
                f"but the model takes {input_length} ids"
            )
    elif input_length != bundle.encoder.width:
        encoder = bundle.encoder
        chars = f" + char_length {encoder.char_length}" if encoder.char_length else ""
        raise ModelBundleError(
            f"{bundle.directory / PREPROCESSING_FILE}: sequence_length "
            f"{encoder.sequence_length}{chars} ids a row but the model takes {input_length}"
        )


def _shape(dimensions: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dimensions) + ")"


def load_model_bundle(directory: Path) -> ModelBundle:
    """Read and cross-check one artifact folder with its Keras model loaded; raise
    ``ModelBundleError`` naming the file and the problem when anything is missing, corrupt
    or inconsistent."""
    import keras  # deferred: see the module docstring

    import app.serving.layers  # registers version 2's segment layer
    import app.serving.transformer  # noqa: F401  (registers version 3's layers)

    bundle = read_model_folder(directory)
    model_path = bundle.directory / MODEL_FILE
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise ModelBundleError(
            f"{model_path}: cannot be loaded as a Keras model ({error.__class__.__name__})"
        ) from None
    inputs, outputs = model.inputs, model.outputs
    _check_model_shape(
        bundle,
        len(inputs),
        len(outputs),
        tuple(inputs[0].shape),
        tuple(outputs[0].shape),
        str(inputs[0].dtype),
    )
    return dataclasses.replace(bundle, model=model)


KNOWN_ANSWERS_KEY = "known_answers"


def check_known_answers(bundle: ModelBundle, infer: Callable[[np.ndarray], np.ndarray]) -> int:
    """Score the folder's known answers (texts with the labels training saw the model give
    them) and raise ``ModelBundleError`` naming the folder and the first wrong one: a
    ``metadata.json`` whose classes are in another order than the model's outputs labels
    everything wrongly, and passes every other check. Returns how many were checked; 0
    (with a warning) for a folder that has none, which still loads, as TF Serving loads a
    version without warm-up requests."""
    path = bundle.directory / METADATA_FILE
    answers = bundle.metadata.get(KNOWN_ANSWERS_KEY)
    if answers is None:
        log.warning(
            "model folder has no known answers: its class order is not checked",
            extra={"model_dir": str(bundle.directory)},
        )
        return 0
    if (
        not isinstance(answers, list)
        or not answers
        or not all(
            isinstance(a, dict)
            and isinstance(a.get("text"), str)
            and a.get("label") in bundle.classes
            for a in answers
        )
    ):
        raise ModelBundleError(
            f"{path}: {KNOWN_ANSWERS_KEY} must be a non-empty list of "
            f'{{"text", "label"}} with labels among the classes {bundle.classes}'
        )
    probabilities = np.asarray(infer(bundle.encoder.encode_batch([a["text"] for a in answers])))
    for number, (answer, row) in enumerate(zip(answers, probabilities, strict=True), start=1):
        said = bundle.classes[int(row.argmax())]
        if said != answer["label"]:
            raise ModelBundleError(
                f"{bundle.directory}: known answer {number} of {len(answers)} is wrong: "
                f"{answer['text']!r} should be {answer['label']}, the model says {said} "
                f"({float(row.max()):.2f}); are the classes in metadata.json in the model's order?"
            )
    return len(answers)


# oneDNN (inside OpenVINO's CPU plugin) keeps up to 1,024 of the kernels it prepared, each
# for one input shape, besides those OpenVINO's own cache of 16 shapes holds: a worker
# serving version 4 in int8 grew by 276 MB after 600 calls of random shapes (1-8 rows of
# 2-128 ids), in bf16 by 127 MB, version 3 in f32 by 124 MB. Keeping 128 bounds those to
# 36, 18 and 54 MB, at the same speed for single reviews and batches of 64 (measured).
ONEDNN_PRIMITIVE_CACHE = "128"
# With both transformers in one process (every version loaded) 32: two workers in int8
# then took 492-523 MB after batches of every size and length (501-510 since versions 3
# and 4 share one tokenizer), against 569-590 MB with
# 128 (a 512 MB dyno's edge: over it in two runs of seven), for about 20% more CPU a
# version-4 review, 7-20% on version 3 and on batches, and nothing on version 2 (its
# shapes are fixed). 16 made version 4's batches take 2.3 times the CPU (measured,
# 2026-12-06).
ONEDNN_PRIMITIVE_CACHE_SHARED = "32"


def size_kernel_cache(transformers: int) -> None:
    """Size oneDNN's kernel cache for a process that will load ``transformers``
    transformers: before its first model, as oneDNN reads it once. An operator's
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` stays."""
    shared = transformers > 1
    capacity = ONEDNN_PRIMITIVE_CACHE_SHARED if shared else ONEDNN_PRIMITIVE_CACHE
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", capacity)


def _select_backend(backend: str, threads: int) -> None:
    """Make Keras use ``backend`` (it reads KERAS_BACKEND once, on first import) and,
    for TensorFlow, size its thread pools before anything starts its runtime. The
    OpenVINO backend serves without Keras in this process (see the module docstring)."""
    if backend not in SUPPORTED_BACKENDS:
        raise ModelBundleError(f"KERAS_BACKEND={backend!r}: use one of {SUPPORTED_BACKENDS}")
    if backend == "openvino":
        if "keras" not in sys.modules:  # Keras imported later here (tools, tests) agrees
            os.environ["KERAS_BACKEND"] = backend
        # Read when the process prepares its first kernel; an operator's value stays.
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_PRIMITIVE_CACHE)
        return
    os.environ["KERAS_BACKEND"] = backend
    try:  # Keras imports TensorFlow for this backend; requirements.txt does not have it
        import keras
        import tensorflow as tf
    except ImportError as error:
        raise ModelBundleError(
            f"KERAS_BACKEND=tensorflow: TensorFlow cannot be imported ({error}); install "
            "tensorflow-cpu (requirements-dev.txt pins its version), or use openvino"
        ) from None
    if keras.backend.backend() != backend:
        raise ModelBundleError(
            f"Keras was already imported with backend {keras.backend.backend()!r}"
        )

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime already started (a second load in-process)
        log.warning("TensorFlow was already initialised; its thread settings stay")


# A cold export (a child that imports Keras, loads the model and writes the IR) takes
# seconds; this bounds a child that hangs.
EXPORT_TIMEOUT_S = 120


# Exports made at build time (``bin/post_compile``, which Heroku's Python buildpack runs
# after installing the requirements): a fresh dyno then boots without exporting.
PREBUILT_DIR = Path(__file__).resolve().parents[2] / ".openvino"


def export_name(model_path: Path, digest: str | None = None) -> str:
    """The export's folder name: keyed by the model file's bytes (their SHA-256, ``digest``
    when the load has just checked it against SHA256SUMS, else read now) and the library
    versions."""
    import openvino as ov

    if digest is None:
        try:
            digest = sha256_of(model_path)
        except OSError as error:  # unreadable: one line, not a traceback
            raise ModelBundleError(f"{model_path}: cannot be read ({error.strerror})") from None
    key = f"{digest} {importlib.metadata.version('keras')} {ov.__version__}"
    return f"sentiment-openvino-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _openvino_ir(bundle: ModelBundle) -> Path:
    """The Keras model's forward pass as OpenVINO IR, exported once per model file by a
    child process (``app.serving.openvino_export``), so that this one never imports Keras:
    Keras and what it imports (SciPy, h5py, optree) cost a worker ~80 MB for its whole
    life (make heroku-check: 397 MB total PSS with them, 237 MB without).

    The build's export (``PREBUILT_DIR``) is used when it matches the model file and the
    libraries; else one in the temporary folder, made on first use. Every worker compiles
    from the same files, so the weights OpenVINO maps from the .bin file are shared
    between workers instead of private to each (7 MB a worker). The folder appears
    atomically; workers that need the same folder at once take turns (a file lock), so
    only the first exports it. A damaged model file has other bytes, so the child loads
    it, and its refusal (the same checks and messages as ``load_model_bundle``) is raised
    here as ``ModelBundleError``.
    """
    if (bundle.directory / IR_FILE).is_file():
        return bundle.directory / IR_FILE
    name = export_name(bundle.directory / MODEL_FILE, bundle.digests.get(MODEL_FILE))
    if (PREBUILT_DIR / name / "model.xml").is_file():
        return PREBUILT_DIR / name / "model.xml"
    return export_once(bundle.directory, Path(tempfile.gettempdir()) / name)


def export_once(model_dir: Path, target: Path) -> Path:
    """``target/model.xml``, exported from ``model_dir`` by the child unless it exists."""
    if (target / "model.xml").is_file():
        return target / "model.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (target / "model.xml").is_file():
            staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
            try:
                _run_export(model_dir, staging)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target / "model.xml"


def _run_export(model_dir: Path, staging: Path) -> None:
    """``python -m app.serving.openvino_export model_dir staging``; its refusal raised."""
    from app.serving import openvino_export

    # The child imports this project from where this file is, wherever it was started.
    paths = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]
    env = {
        **os.environ,
        "KERAS_BACKEND": "openvino",
        "PYTHONPATH": os.pathsep.join(path for path in paths if path),
    }
    try:
        child = subprocess.run(
            [sys.executable, "-m", openvino_export.__name__, str(model_dir), str(staging)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ModelBundleError(
            f"{model_dir / MODEL_FILE}: export to OpenVINO took over {EXPORT_TIMEOUT_S} s"
        ) from None
    last_line = (child.stderr.strip().splitlines() or [""])[-1]
    if child.returncode == openvino_export.BAD_BUNDLE_EXIT:
        raise ModelBundleError(last_line)
    if child.returncode != 0 or not (staging / "model.xml").is_file():
        raise ModelBundleError(
            f"{model_dir / MODEL_FILE}: export to OpenVINO failed "
            f"(exit code {child.returncode}: {last_line})"
        )


PRECISIONS = ("f32", "bf16", "int8")


def is_transformer(directory: Path) -> bool:
    """Whether the model folder ``directory`` holds a transformer (versions 3 and 4: a
    WordPiece encoder), read from its ``preprocessing.json``; False if it cannot be read
    (loading the folder says why)."""
    try:
        return _read_json(directory / PREPROCESSING_FILE).get("kind") == "wordpiece"
    except ModelBundleError:
        return False


def ships_int8(directory: Path) -> bool:
    """Whether the model folder ``directory`` has an int8 IR (``INT8_IR_FILE``)."""
    return (directory / INT8_IR_FILE).is_file()


def inference_precision(bundle: ModelBundle, chosen: str | None = None) -> str:
    """``chosen`` (the operator's ``INFERENCE_PRECISION``) if given, else ``metadata.json``'s
    ``serving.inference_precision``: ``f32`` unless the training pipeline measured that
    ``bf16`` keeps the answers. A CPU without bf16 runs f32. ``int8`` asked of a folder
    without an int8 IR (``INT8_IR_FILE``) gives the folder's own precision."""
    if chosen in PRECISIONS and (chosen != "int8" or ships_int8(bundle.directory)):
        return chosen
    return folder_precision(bundle.directory, bundle.metadata)


def folder_precision(directory: Path, metadata: dict[str, Any]) -> str:
    """``metadata.json``'s ``serving.inference_precision`` (``f32`` if not given), or
    ``ModelBundleError`` naming the file when ``serving`` is not an object, the precision
    is not one of ``PRECISIONS``, or it is ``int8`` without the int8 IR."""
    serving = metadata.get("serving", {})
    if not isinstance(serving, dict):
        raise ModelBundleError(
            f"{directory / METADATA_FILE}: serving must be an object, not {serving!r}"
        )
    precision = serving.get("inference_precision", "f32")
    if precision not in PRECISIONS:
        raise ModelBundleError(
            f"{directory / METADATA_FILE}: serving.inference_precision must be one "
            f"of {PRECISIONS}, not {precision!r}"
        )
    if precision == "int8" and not ships_int8(directory):
        raise ModelBundleError(
            f"{directory / INT8_IR_FILE}: not found ({METADATA_FILE} asks for int8)"
        )
    return precision


def _openvino_infer(
    bundle: ModelBundle, threads: int, precision: str | None = None
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """Compile the exported forward pass with explicit CPU settings; return the inference
    function and the precision OpenVINO compiled it with (``f32`` where a ``bf16`` hint
    meets a CPU without bf16: the hint is not an order; ``int8`` for the int8 IR).

    Keras' own OpenVINO predict path compiles with the CPU defaults (a thread per core,
    pinned, bf16 where the CPU has it), and two workers then fight over two cores. Keras'
    public export gives the same graph, which we compile with one stream, ``threads``
    threads, no pinning, and the folder's precision (``inference_precision``: f32 for
    the n-gram versions, as fast here and the same numbers as TensorFlow). The int8 IR
    is compiled with an f32 hint: what it does not quantize then runs in f32, which took
    0.75 ms a 16-token call against 0.93 with a bf16 hint (version 4, measured).

    Single texts, the common request, get a second compilation with the batch size fixed
    at 1 and an input buffer filled in place: 45 µs a call inside a request against 72 µs
    through the dynamic-batch graph (measured), for 3 MB more a worker.
    """
    import openvino as ov

    core = ov.Core()
    precision = inference_precision(bundle, precision)
    int8 = precision == "int8"
    ir_path = bundle.directory / INT8_IR_FILE if int8 else _openvino_ir(bundle)
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": "f32" if int8 else precision,
    }
    # Both compile from one read of the IR (each compilation takes its own copy of the
    # graph), which measured 2 MB a worker less than reading it twice.
    with _openvino_refusal(ir_path, "read"):
        model = core.read_model(ir_path)

    def dimensions(port: Any) -> tuple[int | None, ...]:
        return tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())

    width = model.input().get_partial_shape()[-1]
    _check_model_shape(
        bundle,
        len(model.inputs),
        len(model.outputs),
        dimensions(model.input()),
        dimensions(model.output()),
        str(model.input().get_element_type().to_dtype()),
    )
    if width.is_dynamic:  # rows as wide as the batch (version 3): one graph for all
        # OpenVINO keeps what it prepared for each input shape it has seen (up to 5,000
        # by default) and memory sized for the largest: a worker that had scored every
        # batch size and width grew by 450 MB (measured). A short cache and calls of at
        # most CALL_TOKENS ids held the same worker to 117 MB above the compiled model.
        config["CPU_RUNTIME_CACHE_CAPACITY"] = 16
        with _openvino_refusal(ir_path, "compile"):
            compiled = core.compile_model(model, "CPU", config)
        graph = compiled.create_infer_request()

        def infer_one(ids: np.ndarray) -> np.ndarray:
            # Shared with OpenVINO, so C-contiguous (explanations pass a slice of columns).
            graph.set_input_tensor(ov.Tensor(np.ascontiguousarray(ids), shared_memory=True))
            graph.infer()
            return graph.get_output_tensor().data.copy()

        def infer_any(ids: np.ndarray) -> np.ndarray:
            if ids.size <= CALL_TOKENS:
                return infer_one(ids)
            return infer_in_calls(ids, infer_one)

        return infer_any, "int8" if int8 else _compiled_precision(compiled)
    with _openvino_refusal(ir_path, "compile"):
        compiled = core.compile_model(model, "CPU", config)
        batches = compiled.create_infer_request()
        model.reshape([1, width])
        single = core.compile_model(model, "CPU", config).create_infer_request()
    single_input = single.get_input_tensor().data  # a view of OpenVINO's own buffer
    single_output = single.get_output_tensor()

    def infer(ids: np.ndarray) -> np.ndarray:
        # Inputs are set directly, not through the wrapper's input dispatch (25 µs
        # against 62 µs a call, measured): copied into the single graph's buffer, or
        # shared with the batch graph. Output buffers are reused by the next call, so
        # copy them before the caller releases the lock.
        if ids.shape[0] == 1:
            single_input[...] = ids
            single.infer()
            return single_output.data.copy()
        batches.set_input_tensor(ov.Tensor(ids, shared_memory=True))
        batches.infer()
        return batches.get_output_tensor().data.copy()

    return infer, "int8" if int8 else _compiled_precision(compiled)


@contextlib.contextmanager
def _openvino_refusal(ir_path: Path, doing: str) -> Iterator[None]:
    """OpenVINO's ``RuntimeError`` (a truncated or garbled .xml or .bin, a missing .bin)
    as ``ModelBundleError`` naming the IR's files and OpenVINO's reason: its message's
    last line (the lines before it name OpenVINO's own source files). Uncaught, it was
    Gunicorn's traceback and the message again as bare lines on stderr."""
    try:
        yield
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[-1] if lines else error.__class__.__name__
        weights = ir_path.with_suffix(".bin").name
        raise ModelBundleError(
            f"{ir_path}: OpenVINO cannot {doing} it with {weights} ({reason})"
        ) from None


def _compiled_precision(compiled: Any) -> str:
    """``f32`` or ``bf16``: what a compiled OpenVINO model computes in."""
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


# The most rows one call of the model gets; a request with more (64 texts of 5,000
# characters are 2,041 rows of version 2's windows) is scored in several calls. OpenVINO
# keeps the memory of the largest call it has made: that one call in one piece grew a
# worker by 240 MB for good, and two workers then outgrew a 512 MB dyno.
CALL_ROWS = 64
# The most ids (rows × width) one call of a transformer gets; a bigger request is scored
# in several calls, its rows sorted by length so that each call is as narrow as it can be.
CALL_TOKENS = 512


def infer_in_calls(ids: np.ndarray, infer: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``infer(ids)``'s rows, computed in calls of at most ``CALL_TOKENS`` ids, each call's
    rows cut to their longest (``PAD_ID`` is 0 and ends every row)."""
    lengths = (ids != 0).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    output: np.ndarray | None = None
    start = 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)
        stop = start + 1
        while stop < len(order):
            wider = max(width, int(lengths[order[stop]]))
            if (stop - start + 1) * wider > CALL_TOKENS:
                break
            width, stop = wider, stop + 1
        rows = order[start:stop]
        result = infer(np.ascontiguousarray(ids[rows, :width]))
        if output is None:
            output = np.empty((len(ids), result.shape[1]), dtype=result.dtype)
        output[rows] = result
        start = stop
    assert output is not None
    return output


def _release_free_memory() -> None:
    """Give the allocator's free pages back to the OS after loading (~16 MB a worker)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to give back
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Classification:
    """What one model said about a batch of texts: rows in input order."""

    name: str
    version: str
    classes: list[str]
    probabilities: list[list[float]]  # one row per text, in ``classes`` order
    labels: list[str]
    scores: list[float]  # the probability of each row's label
    seconds: float  # preprocessing and inference

    @property
    def reference(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


class TurnLock:
    """A lock given in turn: a thread that releases it while others wait hands it to the
    one that has waited longest. ``threading.Lock`` is not fair: a thread that releases it
    and asks again at once (a long job, call after call) gets it back before a waiting
    thread wakes, and the waiting thread could wait for the whole job."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder: the lock is now this thread's

    def __exit__(self, *exc_info: object) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False


class Predictor:
    """One model version, loaded and warmed up in this process: ``Predictor.load(dir)``
    returns a ready object, so nothing that holds one ever asks whether it is loaded."""

    def __init__(
        self,
        bundle: ModelBundle,
        infer: Callable[[np.ndarray], np.ndarray],
        backend: str,
        batching: tuple[int, float] | None = None,
        precision: str = "f32",
    ):
        self.bundle = bundle
        self.backend = backend
        self.precision = precision  # what the model computes in: f32, bf16 or int8
        self._infer = infer
        # One inference at a time per worker: an OpenVINO infer request is not
        # thread-safe, and one call at a time keeps CPU use predictable. Held for one call
        # at a time, and given in turn, so that a review waits for one call of a long job
        # (a shadowed batch, an explanation), not for all of it.
        self._lock = TurnLock()
        # (max_batch_size, timeout in seconds): requests waiting in this worker's threads
        # share calls (app.serving.batching); None, or a size of 1: each its own call.
        self.batcher = None
        if batching and batching[0] > 1:
            self.batcher = DynamicBatcher(infer, *batching)

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        backend: str = "openvino",
        inference_threads: int = 1,
        batching: tuple[int, float] | None = None,
        precision: str | None = None,
    ) -> Predictor:
        """Load, compile and warm up the model in ``model_dir``. Raises ``ModelBundleError``.
        ``precision`` (``f32``, ``bf16``, ``int8``; None or ``model``: the folder's own)
        applies on OpenVINO."""
        started = time.perf_counter()
        model_dir = Path(model_dir)
        _select_backend(backend, inference_threads)
        if backend == "openvino":
            bundle = read_model_folder(model_dir)
            infer, computed_in = _openvino_infer(bundle, inference_threads, precision)
        else:
            bundle = load_model_bundle(model_dir)
            # A compiled function per call; model.predict costs ~33 ms a call.
            infer, computed_in = bundle.model.predict_on_batch, "f32"
        # Warm up: the first calls allocate and (on TensorFlow) trace.
        width = bundle.encoder.width if bundle.encoder.fixed_length else 16
        for batch_size in (1, 8, 64):
            infer(np.ones((batch_size, width), dtype=np.int32))
        known_answers = check_known_answers(bundle, infer)
        predictor = cls(bundle, infer, backend, batching, computed_in)
        _release_free_memory()
        log.info(
            "model loaded",
            extra={
                "model_dir": str(model_dir),
                "model_name": bundle.name,
                "model_version": bundle.version,
                "backend": backend,
                "inference_precision": computed_in,
                "known_answers": known_answers,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return predictor

    @property
    def transformer(self) -> bool:
        """Versions 3 and 4: milliseconds a text, where the n-gram versions take
        microseconds, and much more for a long text or an explanation."""
        return isinstance(self.bundle.encoder, WordPieceEncoder)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), len(classes))``, rows in input order.
        A text too long for one row of the model is scored by windows (the encoder's
        ``window_tokens``), and its probabilities are their mean."""
        rows, owners = self.bundle.encoder.encode_windows(texts)
        probabilities = self.predict_ids(rows)
        if len(owners) == len(texts):  # one row a text
            return probabilities
        totals = np.zeros((len(texts), probabilities.shape[1]), dtype=np.float64)
        np.add.at(totals, owners, probabilities)
        counts = np.bincount(owners, minlength=len(texts))
        return (totals / counts[:, np.newaxis]).astype(np.float32)

    def predict_ids(self, ids: np.ndarray) -> np.ndarray:
        """Class probabilities for rows that are already ids (``int32``, shape
        ``(rows, width)``): explanations score rows with tokens left out. At most
        ``CALL_ROWS`` rows a call (see there)."""
        if self.batcher is not None:
            return np.asarray(self.batcher(ids), dtype=np.float32)
        if self.transformer:
            if ids.size > CALL_TOKENS:
                return infer_in_calls(ids, self._call).astype(np.float32, copy=False)
        elif len(ids) > CALL_ROWS:
            calls = [
                self._call(ids[start : start + CALL_ROWS])
                for start in range(0, len(ids), CALL_ROWS)
            ]
            return np.concatenate(calls).astype(np.float32, copy=False)
        return np.asarray(self._call(ids), dtype=np.float32)

    def _call(self, ids: np.ndarray) -> np.ndarray:
        """One call of the model, with the version's lock held for it alone."""
        with self._lock:
            return self._infer(ids)

    def classify(self, texts: Sequence[str]) -> Classification:
        """The label, its probability and every class's probability for each text."""
        started = time.perf_counter()
        probabilities = self.predict_proba(texts)
        seconds = time.perf_counter() - started
        classes = self.bundle.classes
        rows = probabilities.tolist()  # plain floats: a few rows, no NumPy call per row
        scores = [max(row) for row in rows]
        labels = [classes[row.index(top)] for row, top in zip(rows, scores, strict=True)]
        return Classification(
            self.bundle.name, self.bundle.version, classes, rows, labels, scores, seconds
        )
