"""GoEmotions (Demszky et al., ACL 2020; Apache-2.0) mapped to three sentiment classes.

The files live outside the repository, at ``../shared/data/goemotions/`` from the project
root (never copied in: see that folder's README). A row is kept when all its labels fall
in one of the authors' groups positive / negative / neutral; rows with an "ambiguous"
emotion (confusion, curiosity, realization, surprise) or with labels from two groups are
left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

from model.corpus import Example, file_sha256

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "goemotions"
FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
LICENCE = "Apache-2.0"
CITATION = (
    "Demszky et al., GoEmotions: A Dataset of Fine-Grained Emotions, ACL 2020 "
    "(google-research, goemotions/data/, Apache-2.0)"
)
# The authors' grouping of their 27 emotions (see the data folder's README).
GROUPS = {
    "positive": "admiration amusement approval caring desire excitement gratitude joy love "
    "optimism pride relief",
    "negative": "anger annoyance disappointment disapproval disgust embarrassment fear grief "
    "nervousness remorse sadness",
    "ambiguous": "confusion curiosity realization surprise",
    "neutral": "neutral",
}


def check_dir(directory: Path) -> Path:
    """``directory`` if it holds the GoEmotions files, else a FileNotFoundError that says
    where they were looked for and how to point training at them."""
    missing = [name for name in (*FILES.values(), "labels.txt") if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"GoEmotions not found in {directory} (missing {', '.join(missing)}): it is read "
            "from ../shared/data/goemotions/ beside the project; pass --goemotions DIR "
            "(through make: GOEMOTIONS=DIR)"
        )
    return directory


def load_goemotions(directory: Path = DEFAULT_DIR) -> dict[str, list[Example]]:
    """``{"train", "validation", "test"}`` rows with a three-class label, in file order."""
    directory = check_dir(directory)
    names = (directory / "labels.txt").read_text(encoding="utf-8").split()
    group_of = {
        emotion: group for group, emotions in GROUPS.items() for emotion in emotions.split()
    }
    splits: dict[str, list[Example]] = {}
    for split, name in FILES.items():
        rows = []
        with (directory / name).open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)  # header
            for text, labels, _id in reader:
                groups = {group_of[names[int(label)]] for label in labels.split(",")}
                if len(groups) == 1 and "ambiguous" not in groups:
                    rows.append(Example(text=text.strip(), label=groups.pop()))
        splits[split] = rows
    return splits


def checksums(directory: Path = DEFAULT_DIR) -> dict[str, str]:
    return {name: file_sha256(directory / name) for name in FILES.values()}
