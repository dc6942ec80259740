"""Every model version proves itself at load (issue 17 item 6): its metadata carries
known answers, written by training, and a folder whose classes are listed in another
order than the model's outputs is refused, naming the folder and the first wrong one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import MODEL_BASE, PROJECT_ROOT
from app.serving.predictor import ModelBundleError, Predictor

VERSIONS = sorted(path for path in MODEL_BASE.iterdir() if path.name.isdigit())


def rewrite_metadata(folder: Path, change) -> None:
    metadata = json.loads((folder / "metadata.json").read_text())
    change(metadata)
    (folder / "metadata.json").write_text(json.dumps(metadata))


@pytest.mark.parametrize("folder", VERSIONS, ids=lambda path: f"v{path.name}")
def test_every_shipped_version_has_known_answers_for_every_class(folder):
    metadata = json.loads((folder / "metadata.json").read_text())
    answers = metadata["known_answers"]
    assert {answer["label"] for answer in answers} == set(metadata["classes"])
    assert 3 <= len(answers) <= 12  # a handful: checked at every load


@pytest.mark.parametrize("folder", VERSIONS, ids=lambda path: f"v{path.name}")
def test_reordered_classes_are_refused_naming_the_folder_and_the_first_wrong_answer(
    folder, tmp_path
):
    copy = shutil.copytree(folder, tmp_path / "model")
    rewrite_metadata(copy, lambda m: m.update(classes=list(reversed(m["classes"]))))
    with pytest.raises(ModelBundleError) as caught:
        Predictor.load(copy)
    message = str(caught.value)
    first = json.loads((folder / "metadata.json").read_text())["known_answers"][0]
    assert message.startswith(f"{copy}: known answer 1 of ")
    assert repr(first["text"]) in message and "\n" not in message


def test_a_wrong_expected_label_is_refused(tmp_path):
    copy = shutil.copytree(VERSIONS[0], tmp_path / "model")

    def lie(metadata):
        metadata["known_answers"][2]["label"] = "positive"  # a neutral text

    rewrite_metadata(copy, lie)
    with pytest.raises(ModelBundleError, match=r"known answer 3 of 6 is wrong"):
        Predictor.load(copy)


@pytest.mark.parametrize(
    "answers", [[], "yes", [{"text": "x", "label": "angry"}], [{"label": "neutral"}]]
)
def test_malformed_known_answers_are_refused(tmp_path, answers):
    copy = shutil.copytree(VERSIONS[0], tmp_path / "model")
    rewrite_metadata(copy, lambda m: m.update(known_answers=answers))
    with pytest.raises(ModelBundleError, match="known_answers must be"):
        Predictor.load(copy)


def test_a_folder_without_known_answers_loads_with_one_warning(tmp_path, caplog):
    copy = shutil.copytree(VERSIONS[0], tmp_path / "model")
    rewrite_metadata(copy, lambda m: m.pop("known_answers"))
    caplog.set_level(logging.WARNING)
    predictor = Predictor.load(copy)
    assert predictor.classify(["lovely crew"]).labels
    warned = [r for r in caplog.records if "no known answers" in r.getMessage()]
    assert len(warned) == 1 and warned[0].model_dir == str(copy)


@pytest.mark.slow
def test_batch_refuses_reordered_classes_with_exit_1(tmp_path):
    copy = shutil.copytree(VERSIONS[0], tmp_path / "model")
    rewrite_metadata(copy, lambda m: m.update(classes=list(reversed(m["classes"]))))
    (tmp_path / "in.csv").write_text("text\ngreat crew\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.batch",
            "in.csv",
            "out.csv",
            "--quiet",
            "--model-dir",
            str(copy),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "known answer 1 of 6 is wrong" in done.stderr
    assert not (tmp_path / "out.csv").exists()
