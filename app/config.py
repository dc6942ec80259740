"""Configuration: the one place that reads the environment (besides gunicorn.conf.py)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_BASE = PROJECT_ROOT / "model" / "sentiment"
DEFAULT_MODEL_DIR = MODEL_BASE / "1"


class Config:
    """Settings with their defaults; every attribute is documented in the README.

    Flask reads ``MAX_CONTENT_LENGTH`` itself (413 before the body is read); the rest
    are the service's own. Tests override attributes through ``create_app(test_config)``.
    """

    # The model's versions: numeric sub-folders of MODEL_BASE_DIR, each holding
    # model.keras, preprocessing.json and metadata.json. MODEL_VERSIONS: "all" or "1,2".
    MODEL_BASE_DIR = os.environ.get("MODEL_BASE_DIR", str(MODEL_BASE))
    MODEL_VERSIONS = os.environ.get("MODEL_VERSIONS", "all")
    # Labels such as "stable=2,canary=1"; empty: MODEL_BASE_DIR/labels.json, else the
    # highest loaded version is stable.
    MODEL_LABELS = os.environ.get("MODEL_LABELS", "")
    # One version folder served alone (overrides the two settings above).
    MODEL_DIR = os.environ.get("MODEL_DIR", "")
    # Who answers requests that name no version: stable, canary or shadow.
    ROUTING = os.environ.get("ROUTING", "stable")
    CANARY_PERCENT = float(os.environ.get("CANARY_PERCENT", "10"))
    SHADOW_PERCENT = float(os.environ.get("SHADOW_PERCENT", "100"))
    # ROUTING=bandit: the least share of requests (percent) each version keeps.
    BANDIT_MIN_PERCENT = float(os.environ.get("BANDIT_MIN_PERCENT", "5"))
    # The prediction store: PostgreSQL when set (Heroku Postgres sets it), else SQLite in
    # the instance folder. Predictions (never texts) are recorded unless RECORD_PREDICTIONS=0.
    DATABASE_URL = os.environ.get("DATABASE_URL", "")
    RECORD_PREDICTIONS = os.environ.get("RECORD_PREDICTIONS", "1") != "0"
    PREDICTION_RETENTION_DAYS = float(os.environ.get("PREDICTION_RETENTION_DAYS", "30"))
    # Keras backend for serving: "openvino" (default, measured fastest and lightest) or
    # "tensorflow". Keras reads it from the environment when it is first imported.
    KERAS_BACKEND = os.environ.get("KERAS_BACKEND", "openvino")
    # CPU threads one inference may use, per worker. 1 keeps workers from fighting over
    # the cores (see gunicorn.conf.py and BENCHMARKS.md).
    INFERENCE_THREADS = int(os.environ.get("INFERENCE_THREADS", "1"))
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
    MAX_BATCH_SIZE = int(os.environ.get("MAX_BATCH_SIZE", "64"))
    MAX_TEXT_CHARS = int(os.environ.get("MAX_TEXT_CHARS", "5000"))
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(1024 * 1024)))
