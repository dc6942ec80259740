"""The predictor with the real model, and how it fails on a damaged artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.config import DEFAULT_MODEL_DIR, MODEL_BASE, PROJECT_ROOT
from app.serving import openvino_export
from app.serving import predictor as predictor_module
from app.serving.predictor import (
    CALL_ROWS,
    CHECKSUMS_FILE,
    INT8_IR_FILE,
    IR_FILE,
    METADATA_FILE,
    MODEL_FILE,
    PREPROCESSING_FILE,
    ModelBundleError,
    Predictor,
    load_model_bundle,
    read_model_folder,
)

# Copies to damage leave the checksums out: each reader's own message is what is tested.
WITHOUT_CHECKSUMS = shutil.ignore_patterns(CHECKSUMS_FILE)


@pytest.fixture(scope="module")
def predictor(app):
    return app.extensions["models"].registry.stable


def test_probabilities_shape_and_sum(predictor):
    texts = ["great", "terrible service", "the flight is at 5pm", "😡", "!!!"]
    probabilities = predictor.predict_proba(texts)
    assert probabilities.shape == (len(texts), len(predictor.bundle.classes))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_rows_do_not_depend_on_the_batch(predictor):
    # Single texts and batches take different compiled graphs on OpenVINO.
    texts = ["I love it", "I hate it", "It is a plane", "", "so good " * 100]
    together = predictor.predict_proba(texts)
    one_by_one = np.vstack([predictor.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


# Four glowing sentences (74 tokens: more than one row of version 2 holds), then six
# about everything that went wrong: the verdict is past the first row.
LONG_REVIEW = (
    "We loved the first two days at this hotel: the staff were friendly and the view was "
    "wonderful. The pool was clean and warm, the bar made great cocktails, and the gardens "
    "were beautiful. Our room was spacious and bright, with a comfortable bed and a lovely "
    "balcony. Breakfast was excellent, with fresh bread, fruit and really good coffee. "
    "Then everything went wrong. The air conditioning broke on the third night and nobody "
    "came to fix it. The shower drained so slowly that the bathroom flooded every morning. "
    "Housekeeping ignored our room three days in a row, and the towels were dirty. When we "
    "complained, the manager was rude and offered nothing. The noise from the street kept "
    "us awake until four. We left two days early, angry and exhausted, and we will never "
    "stay here again."
)


def test_a_review_longer_than_a_row_is_read_to_its_end(predictor):
    """The first row alone reads only the glowing start; the windows read the whole
    review, and the answer is their mean."""
    encoder = predictor.bundle.encoder
    assert encoder.window_tokens  # the default version scores long texts by windows
    classes = predictor.bundle.classes
    first_row = predictor.predict_ids(encoder.encode_batch([LONG_REVIEW]))[0]
    assert classes[int(first_row.argmax())] == "positive"
    windows = encoder.windows(LONG_REVIEW)
    assert len(windows) > 2
    by_window = predictor.predict_proba(windows)
    [answer] = predictor.predict_proba([LONG_REVIEW])
    np.testing.assert_allclose(answer, by_window.mean(axis=0), atol=1e-6)
    assert classes[int(answer.argmax())] == "negative"
    # Among other texts, in any order, it gets the same answer; short texts are unchanged.
    texts = ["great flight", LONG_REVIEW, "lost my bag"]
    batch = predictor.predict_proba(texts)
    np.testing.assert_allclose(batch[1], answer, atol=1e-6)
    np.testing.assert_allclose(
        batch[[0, 2]], predictor.predict_ids(encoder.encode_batch(texts[::2])), atol=1e-6
    )


def test_the_largest_request_is_scored_in_calls_of_at_most_call_rows(predictor, monkeypatch):
    """64 texts of 5,000 characters are 2,000-odd rows of windows. OpenVINO keeps the memory
    of its largest call, so one call of them all grew a worker by 240 MB for good; in calls
    of CALL_ROWS rows the answers are the same as one call's."""
    repeated = (LONG_REVIEW + " ") * 7
    texts = [repeated[i * 7 : i * 7 + 5000] for i in range(64)]
    rows, _ = predictor.bundle.encoder.encode_windows(texts)
    assert len(rows) > 10 * CALL_ROWS
    whole = predictor._infer(rows)
    calls = []
    infer = predictor._infer
    monkeypatch.setattr(predictor, "_infer", lambda ids: calls.append(len(ids)) or infer(ids))
    np.testing.assert_allclose(predictor.predict_ids(rows), whole, atol=1e-6)
    assert max(calls) == CALL_ROWS and sum(calls) == len(rows)


def test_a_review_waits_for_one_call_of_a_long_job_not_all_of_it(predictor, monkeypatch):
    """A long job on a version (a shadowed batch, an explanation) holds its lock one call
    at a time and hands it over in turn: a review asked for during the job's first call
    is the very next call, not the job's last (a review pinned to a shadowed version 3
    waited 5-22 s behind the shadow's batch)."""
    rows = np.ones((20 * CALL_ROWS, predictor.bundle.encoder.width), dtype=np.int32)
    calls: list[str] = []
    first_call = threading.Event()
    infer = predictor._infer

    def spied(ids):
        calls.append("review" if len(ids) == 1 else "job")
        if len(calls) == 1:
            first_call.set()
            time.sleep(0.2)  # the review asks for the lock while the job holds it
        return infer(ids)

    monkeypatch.setattr(predictor, "_infer", spied)
    job = threading.Thread(target=predictor.predict_ids, args=(rows,))
    job.start()
    assert first_call.wait(10)
    predictor.predict_ids(rows[:1])
    job.join()
    assert calls.index("review") == 1
    assert calls.count("job") == 20


def test_text_that_cleans_to_nothing_still_gets_a_prediction(predictor):
    probabilities = predictor.predict_proba(["\x00\x01", "@someone http://x.example"])
    assert np.isfinite(probabilities).all()


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ModelBundleError, match="KERAS_BACKEND"):
        Predictor.load(DEFAULT_MODEL_DIR, backend="jax")


@pytest.fixture
def artifact(app, tmp_path):
    """A writable copy of the served model folder, to damage, without its checksums:
    the readers' own messages, for a folder that has none (built by hand)."""
    return shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "1", ignore=WITHOUT_CHECKSUMS)


def _edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


DAMAGES = [
    (lambda d: (d / MODEL_FILE).unlink(), MODEL_FILE, "not found"),
    (lambda d: (d / METADATA_FILE).unlink(), METADATA_FILE, "not found"),
    (lambda d: (d / PREPROCESSING_FILE).unlink(), PREPROCESSING_FILE, "not found"),
    (
        lambda d: (d / MODEL_FILE).write_bytes((d / MODEL_FILE).read_bytes()[:1000]),
        MODEL_FILE,
        "cannot be loaded",
    ),
    (lambda d: (d / MODEL_FILE).write_bytes(b"garbage" * 100), MODEL_FILE, "cannot be loaded"),
    (lambda d: (d / METADATA_FILE).write_text("{truncated"), METADATA_FILE, "JSON"),
    (
        lambda d: _edit_json(d / METADATA_FILE, lambda m: m["classes"].append("sarcastic")),
        METADATA_FILE,
        "classes",
    ),
    (
        lambda d: _edit_json(d / METADATA_FILE, lambda m: m.pop("version")),
        METADATA_FILE,
        "version",
    ),
    # Values of the wrong type were tracebacks at start-up, or a version no URL reaches.
    *(
        (lambda d, change=change: _edit_json(d / METADATA_FILE, change), METADATA_FILE, problem)
        for change, problem in [
            (lambda m: m.update(version="1.0"), "'version' must be a whole number"),
            (lambda m: m.update(version="05"), "without leading zeros"),
            (lambda m: m.update(classes=3), "'classes' must list two or more"),
            (lambda m: m.update(classes=["negative", "negative", "positive"]), "different"),
            (lambda m: m.update(name=""), "'name' must be a non-empty string"),
            (lambda m: m.update(training_label_mix=[0.3, 0.4, 0.3]), "'training_label_mix'"),
            (lambda m: m.update(training_label_mix={"negative": "a third"}), "between 0 and 1"),
            (
                lambda m: m.update(training_label_mix={"Positive": 0.5, "negative": 0.5}),
                "names 'Positive', not among the classes ['negative', 'neutral', 'positive']",
            ),
            (lambda m: m.update(reference=[]), "'reference' must be an object"),
            # A null got past the server's .get(key, {}): a traceback, or a 500 later.
            (lambda m: m.update(training_label_mix=None), "'training_label_mix' must map"),
            (lambda m: m.update(reference={"label_mix": None}), "'reference.label_mix'"),
            (
                lambda m: m.update(reference={"confidence_histogram": None}),
                "'reference.confidence_histogram'",
            ),
            (
                lambda m: m.update(reference={"confidence_histogram": {"buckets": [0.5]}}),
                "one more than the buckets",
            ),
        ]
    ),
    (
        lambda d: _edit_json(
            d / PREPROCESSING_FILE, lambda c: c.update(sequence_length=c["sequence_length"] + 1)
        ),
        PREPROCESSING_FILE,
        "sequence_length",
    ),
    (
        lambda d: _edit_json(d / PREPROCESSING_FILE, lambda c: c.pop("vocabulary")),
        PREPROCESSING_FILE,
        "encoder",
    ),
    # Found by an outside probe: start-up hung with no line (a huge n-gram size, a named
    # pipe), or a traceback (a lexicon that is no object, JSON nested 200,000 deep).
    *(
        (
            lambda d, change=change: _edit_json(d / PREPROCESSING_FILE, change),
            PREPROCESSING_FILE,
            problem,
        )
        for change, problem in [
            (lambda c: c.update(ngram_size=10**9), "ngram_size 1000000000 is not 1 to 64"),
            (lambda c: c.update(sequence_length=10**9), "sequence_length 1000000000 is not 1"),
            (lambda c: c.update(lexicon=[]), "'list' object has no attribute 'items'"),
            # Infinity, which JSON in Python reads: a traceback (an outside probe).
            (lambda c: c.update(sequence_length=float("inf")), "OverflowError"),
        ]
    ),
    (
        lambda d: (d / METADATA_FILE).unlink() or os.mkfifo(d / METADATA_FILE),
        METADATA_FILE,
        "not a regular file",
    ),
    (
        lambda d: (d / METADATA_FILE).write_text("[" * 200_000 + "]" * 200_000),
        METADATA_FILE,
        "nested too deep",
    ),
    (
        lambda d: (d / METADATA_FILE).unlink() or os.symlink("metadata.json", d / METADATA_FILE),
        METADATA_FILE,
        "Too many levels of symbolic links",
    ),
    # The model's own files, found by an outside probe: a loop at an IR's model.bin
    # aborted OpenVINO's C++ in each worker, replaced forever; a pipe hung start-up; a
    # folder at model.xml was "model.keras: file not found".
    (
        lambda d: (d / MODEL_FILE).unlink() or os.mkfifo(d / MODEL_FILE),
        MODEL_FILE,
        "not a regular file",
    ),
    (lambda d: os.symlink("model.bin", d / "model.bin"), "model.bin", "Too many levels"),
    (lambda d: (d / "model.xml").mkdir(), "model.xml", "not a regular file"),
    (lambda d: os.mkfifo(d / "tokenizer.json"), "tokenizer.json", "not a regular file"),
]


# Keras loads the model only where training and the export child do: importing it costs
# test-fast a second, so the tests of load_model_bundle run in make test.
@pytest.mark.slow
@pytest.mark.parametrize("damage, file_name, problem", DAMAGES)
def test_damaged_artifact_names_the_file_and_problem(artifact, damage, file_name, problem):
    damage(artifact)
    with pytest.raises(ModelBundleError) as raised:
        load_model_bundle(artifact)
    message = str(raised.value)
    assert str(artifact / file_name) in message
    assert problem in message


@pytest.mark.parametrize(
    "damage, file_name, problem",
    # A Keras file that cannot be loaded is found by the export child: a process, slow.
    [
        pytest.param(*d, marks=pytest.mark.slow) if d[2] == "cannot be loaded" else d
        for d in DAMAGES
    ],
)
def test_openvino_load_names_the_file_and_problem_too(artifact, damage, file_name, problem):
    """The server's way in, with the same messages as load_model_bundle's: without Keras
    in this process, on the cached OpenVINO export (the ``app`` fixture exported this model
    file already), or, for a damaged model file (other bytes), through the export child."""
    damage(artifact)
    with pytest.raises(ModelBundleError) as raised:
        Predictor.load(artifact)
    message = str(raised.value)
    assert str(artifact / file_name) in message
    assert problem in message


def _ask_precision(precision):
    return lambda m: m.setdefault("serving", {}).update(inference_precision=precision)


@pytest.mark.parametrize(
    "change, file_name, problem",
    [
        pytest.param(_ask_precision("int4"), METADATA_FILE, "must be one of", id="int4"),
        pytest.param(_ask_precision("int8"), INT8_IR_FILE, "not found", id="int8-no-ir"),
        pytest.param(
            lambda m: m.update(serving="bf16"),
            METADATA_FILE,
            "serving must be an object",
            id="serving-a-string",
        ),
    ],
)
# The operator's INFERENCE_PRECISION does not hide it: the folder would fail on the first
# deploy without that override (and "serving": "bf16" was an AttributeError traceback).
@pytest.mark.parametrize("chosen", [None, "f32", "bf16", "int8"])
def test_a_precision_the_folder_cannot_give_is_named(artifact, change, file_name, problem, chosen):
    _edit_json(artifact / METADATA_FILE, change)
    with pytest.raises(ModelBundleError) as raised:
        Predictor.load(artifact, precision=chosen)
    message = str(raised.value)
    assert str(artifact / file_name) in message
    assert problem in message


def test_int8_asked_of_a_folder_without_an_int8_ir_gives_the_folders_own(artifact, caplog):
    """INFERENCE_PRECISION applies to every loaded version; only versions 3 and 4 ship an
    int8 IR, so the others keep their own precision (and their load line says which ran)."""
    with caplog.at_level("INFO", logger="app.serving.predictor"):
        Predictor.load(artifact, precision="int8")
    [loaded] = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert loaded.inference_precision == "f32"


def ir_folder(tmp_path: Path, version: str = "4") -> Path:
    """A writable copy of a version that ships its own OpenVINO IR (and an int8 one),
    without its Keras file: the server compiles the IR and never reads that."""
    folder = tmp_path / version
    folder.mkdir()
    for path in (MODEL_BASE / version).iterdir():
        if path.is_file() and path.name not in (MODEL_FILE, CHECKSUMS_FILE):
            shutil.copy(path, folder / path.name)
    return folder


# The file damaged, how, the IR named (the int8 one, served for int8), OpenVINO's reason.
IR_DAMAGES = [
    ("model.bin", "cut in half", IR_FILE, "Incorrect weights"),
    ("model.xml", "cut in half", IR_FILE, "at offset"),
    ("model-int8.bin", "cut in half", INT8_IR_FILE, "Incorrect weights"),
    ("model.bin", "deleted", IR_FILE, "bin file cannot be found"),
    ("model.bin", "garbled", IR_FILE, "out of the tensor rank range"),
]


@pytest.mark.parametrize(
    ("version", "damaged", "precision"),
    [("2", MODEL_FILE, None), ("4", "model.bin", None), ("4", "model-int8.bin", "int8")],
)
def test_a_file_damaged_in_place_is_refused_by_its_checksum(tmp_path, version, damaged, precision):
    """64 KiB overwritten at 30% of version 4's model.bin, its length kept (a bad copy),
    loaded and passed its known answers, then answered some reviews 200 with null scores
    (NaN; an outside probe). Each shipped folder's SHA256SUMS (``sha256sum`` format,
    written by make model) now refuses it at load, naming the file."""
    folder = shutil.copytree(MODEL_BASE / version, tmp_path / version)
    assert (folder / CHECKSUMS_FILE).is_file()
    path = folder / damaged
    with path.open("r+b") as file:
        file.seek(int(path.stat().st_size * 0.3))
        file.write(np.random.default_rng(7).bytes(64 * 1024))
    with pytest.raises(ModelBundleError) as raised:
        Predictor.load(folder, precision=precision)
    assert str(raised.value).startswith(f"{path}: damaged: its SHA-256 is ")
    assert "SHA256SUMS says" in str(raised.value) and "\n" not in str(raised.value)
    (folder / CHECKSUMS_FILE).write_text("not a checksum line\n")
    with pytest.raises(ModelBundleError, match="line 1 is not '<sha256>  <file>'"):
        Predictor.load(folder, precision=precision)


@pytest.mark.parametrize("damaged, how, ir_file, reason", IR_DAMAGES)
def test_a_damaged_openvino_ir_is_named_with_openvinos_reason(
    tmp_path, damaged, how, ir_file, reason
):
    """OpenVINO's RuntimeError (its source file names, then the reason) was uncaught: a
    worker's traceback and bare lines on stderr instead of the one CRITICAL line."""
    folder = ir_folder(tmp_path)
    path = folder / damaged
    if how == "deleted":
        path.unlink()
    elif how == "garbled":  # as long as it was, other bytes
        path.write_bytes(
            (bytes(range(256)) * (path.stat().st_size // 256 + 1))[: path.stat().st_size]
        )
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelBundleError) as raised:
        Predictor.load(folder, precision="int8" if ir_file == INT8_IR_FILE else None)
    message = str(raised.value)
    assert message.startswith(f"{folder / ir_file}: OpenVINO cannot read it with "), message
    assert reason in message and "\n" not in message and ".cpp" not in message


TOKENIZER_DAMAGES = {
    "deleted": (lambda path: path.unlink(), "file not found"),
    "cut short": (
        lambda path: path.write_bytes(path.read_bytes()[:1000]),
        "not a tokenizers JSON file (EOF while parsing",
    ),
    "not UTF-8": (lambda path: path.write_bytes(b"\xff\xfe{}"), "'utf-8' codec can't decode"),
    "a folder": (lambda path: path.unlink() or path.mkdir(), "not a regular file"),
}


@pytest.mark.parametrize("case", TOKENIZER_DAMAGES)
def test_a_damaged_tokenizer_file_is_named_not_preprocessing_json(tmp_path, case):
    """Versions 3 and 4 read their WordPiece vocabulary from tokenizer.json; its faults
    were blamed on preprocessing.json ("not an encoder config (FileNotFoundError(...))")."""
    damage, problem = TOKENIZER_DAMAGES[case]
    folder = ir_folder(tmp_path, "3")
    damage(folder / "tokenizer.json")
    with pytest.raises(ModelBundleError) as raised:
        Predictor.load(folder)
    message = str(raised.value)
    assert message.startswith(f"{folder / 'tokenizer.json'}: {problem}"), message
    assert PREPROCESSING_FILE not in message


@pytest.mark.slow
def test_the_kernel_cache_is_smaller_when_both_transformers_share_a_process(monkeypatch):
    """oneDNN keeps a process's kernels in one cache: with versions 3 and 4 in each
    worker, 32 of them (two workers then fit a 512 MB dyno in int8), else 128; an
    operator's own value stays."""
    folders = [MODEL_BASE / version for version in ("1", "2", "3", "4")]
    assert [predictor_module.is_transformer(folder) for folder in folders] == [0, 0, 1, 1]
    for transformers, capacity in ((0, "128"), (1, "128"), (2, "32")):
        monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
        predictor_module.size_kernel_cache(transformers)
        assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == capacity
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    predictor_module.size_kernel_cache(2)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_char_segment_wider_than_the_model_takes_is_named(tmp_path):
    """Version 2's rows hold two segments: a ``char_length`` the model was not built for
    stops the load with both lengths named."""
    folder = shutil.copytree(MODEL_BASE / "2", tmp_path / "2", ignore=WITHOUT_CHECKSUMS)
    _edit_json(folder / PREPROCESSING_FILE, lambda c: c.update(char_length=c["char_length"] + 8))
    with pytest.raises(ModelBundleError) as raised:
        load_model_bundle(folder)
    assert str(raised.value) == (
        f"{folder / PREPROCESSING_FILE}: sequence_length 64 + char_length 264 ids a row "
        "but the model takes 320"
    )


@pytest.mark.slow
@pytest.mark.parametrize("mistake", ["no-pooling", "float-input"])
def test_a_model_of_another_rank_or_input_type_is_refused_at_load(artifact, mistake):
    """Embedding then Dense without pooling outputs (batch, ids, classes), and
    ``keras.Input`` is float32 unless told: both passed the checks, then were a traceback
    at start-up or a 500 to every request (a version without known answers)."""
    import keras

    width = read_model_folder(artifact).encoder.width
    _edit_json(artifact / METADATA_FILE, lambda m: m.pop("known_answers"))
    if mistake == "no-pooling":
        ids = keras.Input(shape=(width,), dtype="int32")
        hidden = keras.layers.Embedding(100, 4)(ids)
        expected = f"the model outputs shape (None, {width}, 3); expected (batch, 3)"
    else:
        ids = keras.Input(shape=(width,))
        hidden = ids
        expected = "the model's input is float32; expected int32 token ids"
    keras.Model(ids, keras.layers.Dense(3, activation="softmax")(hidden)).save(
        artifact / MODEL_FILE
    )

    for load in (load_model_bundle, Predictor.load):
        with pytest.raises(ModelBundleError) as raised:
            load(artifact)
        assert str(raised.value).startswith(f"{artifact / MODEL_FILE}: {expected}")


def serving_child(prebuilt: Path, tmp: Path, code: str) -> str:
    """What ``code`` prints in a fresh process as a worker starts: ``predictor`` imported,
    the build's exports looked for in ``prebuilt``, ``tmp`` as its temporary folder."""
    script = (
        "import sys; from pathlib import Path; from app.serving import predictor; "
        f"predictor.PREBUILT_DIR = Path({str(prebuilt)!r}); {code}"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    return child.stdout


@pytest.mark.slow
def test_openvino_serving_never_imports_keras(tmp_path):
    # Keras and what it imports cost a worker ~100 MB (make heroku-check): on OpenVINO a
    # child process exports the model, here to an empty temporary folder, so it must.
    printed = serving_child(
        tmp_path / "no-build",
        tmp_path,
        f"p = predictor.Predictor.load({str(DEFAULT_MODEL_DIR)!r}); "
        "print(p.classify(['great flight']).labels[0], sorted("
        "m for m in ('keras', 'scipy', 'h5py', 'tensorflow') if m in sys.modules))",
    )
    assert printed.split(maxsplit=1) == ["positive", "[]\n"]
    assert list(tmp_path.glob("sentiment-openvino-*/model.xml"))


@pytest.mark.slow
def test_the_builds_exports_spare_a_fresh_dyno_the_export(tmp_path, monkeypatch):
    """bin/post_compile's step: every version without its own IR exported into
    PREBUILT_DIR; then a worker on an empty temporary folder (a fresh dyno) compiles
    those and the folders' own IR, exporting nothing."""
    prebuilt, fresh_tmp = tmp_path / "prebuilt", tmp_path / "tmp"
    fresh_tmp.mkdir()
    monkeypatch.setattr(predictor_module, "PREBUILT_DIR", prebuilt)
    exported = openvino_export.prebuild(DEFAULT_MODEL_DIR.parent)
    base = DEFAULT_MODEL_DIR.parent
    versions = sorted(d.name for d in base.iterdir() if d.name.isdigit())
    keras_only = [v for v in versions if not (base / v / predictor_module.IR_FILE).is_file()]
    assert len(exported) == len(keras_only) >= 2
    assert len(versions) > len(keras_only)  # version 3 ships its IR
    assert all(path.is_file() and path.parent.parent == prebuilt for path in exported)
    printed = serving_child(
        prebuilt,
        fresh_tmp,
        f"base = Path({str(DEFAULT_MODEL_DIR.parent)!r}); "
        f"print([predictor.Predictor.load(base / v).classify(['great flight']).labels[0] "
        f"for v in {versions!r}], 'keras' in sys.modules)",
    )
    assert printed.strip() == f"{['positive'] * len(versions)} False"
    assert list(fresh_tmp.iterdir()) == []  # nothing exported at boot


@pytest.mark.slow
def test_bundle_reads_metadata(artifact):
    bundle = load_model_bundle(artifact)
    assert bundle.classes == ["negative", "neutral", "positive"]
    assert bundle.name == "sentiment"
    assert bundle.encoder.width == bundle.model.inputs[0].shape[-1]
