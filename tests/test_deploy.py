"""The files Heroku reads agree with each other and with the code."""

from __future__ import annotations

import gc
import json
import re

from app.config import PROJECT_ROOT, SETTINGS, Config
from deploy import heroku_check

ROOT = PROJECT_ROOT


def read(name: str) -> str:
    return (ROOT / name).read_text()


def test_runtime_txt_and_python_version_agree():
    runtime = read("runtime.txt").strip()
    assert re.fullmatch(r"python-3\.11(\.\d+)?", runtime)
    assert runtime.removeprefix("python-").startswith(read(".python-version").strip())


def test_procfile_runs_gunicorn_with_the_config_file_and_no_preload():
    """Through app.server, which checks the settings and then runs Gunicorn itself."""
    lines = [line for line in read("Procfile").splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("web: python -m app.server ")
    assert "--config gunicorn.conf.py" in lines[0]
    assert "--preload" not in lines[0]
    assert '"app:create_app()"' in lines[0]


def test_app_json_documents_every_variable_the_code_reads():
    """Every setting of app.config.SETTINGS is in app.json, and gunicorn.conf.py reads
    no variable itself: only settings as app.config checked and parsed them."""
    settings = {setting.name for setting in SETTINGS}
    conf = read("gunicorn.conf.py")
    assert not re.search(r"os\.environ\.get|os\.getenv", conf)
    conf_reads = set(re.findall(r"settings\[[\"'](\w+)[\"']\]", conf))
    assert "INLINE_MAX_BYTES" in conf_reads and conf_reads <= settings
    documented = set(json.loads(read("app.json"))["env"])
    # PORT is Heroku's own; PROMETHEUS_MULTIPROC_DIR is set per server by gunicorn.conf.py.
    assert settings - documented == {"PORT", "PROMETHEUS_MULTIPROC_DIR"}
    assert documented <= settings


def test_app_json_defaults_match_the_code():
    env = json.loads(read("app.json"))["env"]
    for name in ("MAX_BATCH_SIZE", "MAX_TEXT_CHARS", "MAX_CONTENT_LENGTH", "INFERENCE_THREADS"):
        assert int(env[name]["value"]) == getattr(Config, name)
    assert env["KERAS_BACKEND"]["value"] == "openvino"
    app_json = json.loads(read("app.json"))
    assert app_json["formation"]["web"] == {"quantity": 1, "size": "basic"}
    assert app_json["buildpacks"] == [{"url": "heroku/python"}]


def test_readme_documents_every_variable():
    readme = read("README.md")
    for name in json.loads(read("app.json"))["env"]:
        assert f"`{name}`" in readme or name in readme, name


def test_serving_requirements_are_pinned_and_lean():
    lines = [
        line.split("#")[0].strip()
        for line in read("requirements.txt").splitlines()
        if line.split("#")[0].strip()
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line) for line in lines), lines
    names = {line.split("==")[0].lower() for line in lines}
    for unwanted in ("tensorflow", "tensorflow-cpu", "pytest", "scikit-learn", "locust"):
        assert unwanted not in names
    assert {"flask", "gunicorn", "keras", "openvino"} <= names


def test_workers_freeze_what_they_loaded(monkeypatch, tmp_path):
    """gunicorn.conf.py's post_worker_init keeps full collections off the loaded model."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else the file sets it
    namespace: dict = {}
    exec(compile(read("gunicorn.conf.py"), "gunicorn.conf.py", "exec"), namespace)
    try:
        namespace["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_heroku_ci_script_would_find_the_tests():
    """Heroku CI applies .slugignore before its test steps (heroku/heroku-ci#39): a test
    script in app.json is only worth having if the files it needs stay in the slug. The
    one app.json had could not open requirements-dev.txt there."""
    scripts = json.loads(read("app.json")).get("environments", {}).get("test", {})
    kept = {path.relative_to(ROOT).as_posix() for path in heroku_check.slug_files()}
    assert not scripts or {"requirements-dev.txt", "tests/conftest.py"} <= kept, scripts
