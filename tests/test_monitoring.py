"""deploy/monitoring/: the Prometheus rules and the Grafana dashboard are built only from
metrics the server exports, promtool accepts the rules and their unit tests pass, and every
alert is unit-tested, documented and on the dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from itertools import product
from pathlib import Path

import promql_parser
import pytest
import requests
import yaml
from programs import require_program
from prometheus_client.parser import text_string_to_metric_families

from app.config import DEFAULT_MODEL_DIR, PROJECT_ROOT
from app.observability.metrics import children, pss_bytes
from deploy.dyno import WebProcess, free_port

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"
DASHBOARD = MONITORING / "dashboard.json"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))

# The server's metrics, as README "Metrics" lists them: the only names the rules and the
# dashboard may select (besides the rules' own records).
EXPORTED = {
    "sentiment_http_request_duration_seconds": "histogram",
    "sentiment_inference_duration_seconds": "histogram",
    "sentiment_batch_size": "histogram",
    "sentiment_prediction_confidence": "histogram",
    "sentiment_model_requests_total": "counter",
    "sentiment_model_info": "gauge",
    "sentiment_model_label": "gauge",
    "sentiment_training_label_share": "gauge",
    "sentiment_shadow_comparisons_total": "counter",
    "sentiment_shadow_inference_duration_seconds": "histogram",
    "sentiment_shadow_dropped_total": "counter",
    "sentiment_worker_starts_total": "counter",
    "sentiment_connections_evened_total": "counter",
    "sentiment_http_worker_answers_total": "counter",
    "sentiment_prediction_records_dropped_total": "counter",
    "sentiment_feedback_total": "counter",
    "sentiment_live_accuracy": "gauge",
    "sentiment_live_accuracy_against_stable": "gauge",
    "sentiment_drift_psi": "gauge",
    "sentiment_bandit_share": "gauge",
    "sentiment_server_memory_bytes": "gauge",
}
# Gauges that appear only once there is something to say: feedback (live accuracy, every
# 30 s), a day's predictions against a reference (drift), ROUTING=bandit. The shadow server
# below has none of these; tests/test_feedback.py checks them.
CONDITIONAL = {
    "sentiment_live_accuracy",
    "sentiment_live_accuracy_against_stable",
    "sentiment_drift_psi",
    "sentiment_bandit_share",
}


def series_names(metric: str, kind: str) -> set[str]:
    """The series a metric exports: a histogram's _bucket, _sum and _count, else itself."""
    if kind == "histogram":
        return {f"{metric}_bucket", f"{metric}_sum", f"{metric}_count"}
    return {metric}


SELECTABLE = set().union(*(series_names(metric, kind) for metric, kind in EXPORTED.items()))


def rules() -> list[dict]:
    """Every rule of rules.yml, in evaluation order."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


RECORDED = [rule["record"] for rule in rules() if "record" in rule]
ALERTS = [rule["alert"] for rule in rules() if "alert" in rule]


def selected_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; a selector without a literal name
    (``{__name__=~"..."}``) fails, as no list could check it."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def as_promql(expr: str) -> str:
    """A Grafana query as Prometheus receives it: Grafana's interval variables become a
    duration, the dashboard's own variables (always inside a label matcher) a regex."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+(:\w+)?\}?", ".*", expr)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels():
        for target in panel["targets"]:
            yield f"{panel['title']} / {target['refId']}", as_promql(target["expr"])
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert found, variable["name"]
            yield f"variable {variable['name']}", as_promql(found.group(1))


# --- Rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule.get("record") or rule["alert"])
def test_rules_use_only_exported_metrics_and_earlier_records(rule):
    """Records are evaluated in order: a rule may use those recorded before it."""
    earlier = set(RECORDED[: RECORDED.index(rule["record"])] if "record" in rule else RECORDED)
    assert selected_names(rule["expr"]) <= SELECTABLE | earlier


def test_every_record_is_used_by_an_alert_or_the_dashboard():
    used = set().union(*(selected_names(rule["expr"]) for rule in rules()))
    used |= set().union(*(selected_names(expr) for _, expr in queries()))
    assert set(RECORDED) - used == set()


def test_every_alert_is_unit_tested_firing_and_quiet():
    firing, quiet = set(), set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert set(ALERTS) - firing == set()
    assert set(ALERTS) - quiet == set()


def test_every_alert_is_documented_and_on_the_dashboard():
    readme = (PROJECT_ROOT / "README.md").read_text()
    titles = " ".join(panel["title"] for panel in panels())
    for alert in ALERTS:
        assert f"`{alert}`" in readme, alert
        assert alert in titles, alert


# --- Dashboard --------------------------------------------------------------------------


def test_dashboard_queries_its_datasource_through_a_variable():
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    chosen = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        assert panel["datasource"] == chosen, panel["title"]
        assert all(target["datasource"] == chosen for target in panel["targets"]), panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == chosen, variable["name"]
    # Nothing tied to one Grafana: no exported data-source inputs to map on import.
    assert "__inputs" not in dashboard()


@pytest.mark.parametrize(("where", "expr"), list(queries()), ids=[where for where, _ in queries()])
def test_dashboard_queries_use_only_exported_metrics_and_records(where, expr):
    assert selected_names(expr) <= SELECTABLE | set(RECORDED)


def test_dashboard_filters_by_job_and_version():
    variables = {variable["name"] for variable in dashboard()["templating"]["list"]}
    assert {"datasource", "job", "version"} <= variables
    for panel in panels():
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], panel["title"]


def test_dashboard_layout_is_a_grid_without_overlaps():
    everything = dashboard()["panels"]
    assert len({panel["id"] for panel in everything}) == len(everything)
    taken: set[tuple[int, int]] = set()
    for panel in everything:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = set(
            product(
                range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
            )
        )
        assert not cells & taken, panel["title"]
        taken |= cells
    assert all(panel["targets"] for panel in panels())


# --- promtool and a real server ---------------------------------------------------------


def prometheus_binary(name: str) -> str:
    return require_program(name, "prometheus")


def promtool(*args: str | Path) -> str:
    """Run promtool in deploy/monitoring/; its output, or a failure that shows it."""
    binary = prometheus_binary("promtool")
    done = subprocess.run(
        [binary, *map(str, args)], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.slow
def test_promtool_accepts_the_rules_and_the_config_and_the_rule_tests_pass():
    assert f"SUCCESS: {len(rules())} rules found" in promtool("check", "rules", RULES.name)
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    output = promtool("test", "rules", *(path.relative_to(MONITORING) for path in RULE_TESTS))
    assert output.count("SUCCESS") == len(RULE_TESTS), output


@pytest.fixture(scope="module")
def shadow_server(tmp_path_factory) -> Iterator[WebProcess]:
    """A real server with the shipped version 1 as stable and a copy numbered 2 as canary,
    in shadow mode, after some traffic (so every labelled series has appeared)."""
    base = tmp_path_factory.mktemp("versions")
    shutil.copytree(DEFAULT_MODEL_DIR, base / "1")
    shutil.copytree(DEFAULT_MODEL_DIR, base / "2")
    metadata = json.loads((base / "2" / "metadata.json").read_text())
    (base / "2" / "metadata.json").write_text(json.dumps({**metadata, "version": "2"}))
    server = WebProcess(
        {
            "MODEL_BASE_DIR": str(base),
            "MODEL_LABELS": "stable=1,canary=2",
            "ROUTING": "shadow",
            "DATABASE_URL": f"sqlite:///{base / 'predictions.sqlite3'}",
        },
        log_path=base / "server.log",
    )
    try:
        server.wait_ready("/ready")
        for index in range(20):
            body = {"reviews": [f"review {index}", "loved it", "awful"]}
            assert requests.post(server.url + "/classify", json=body, timeout=10).ok
        yield server
    finally:
        server.stop()


def exposition(server: WebProcess) -> dict[str, set[str]]:
    """{metric family: sample names} of a scrape, once the shadow's comparisons are in."""
    deadline = time.monotonic() + 10
    while True:
        text = requests.get(server.url + "/metrics", timeout=10).text
        if "sentiment_shadow_comparisons_total" in text or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return {
        f"{family.name}|{family.type}": {sample.name for sample in family.samples}
        for family in text_string_to_metric_families(text)
    }


@pytest.mark.slow
def test_a_running_server_exports_every_metric_the_rules_and_dashboard_use(shadow_server):
    families = exposition(shadow_server)
    exported = set().union(*families.values())
    missing = [
        metric
        for metric, kind in EXPORTED.items() - {(m, EXPORTED[m]) for m in CONDITIONAL}
        if f"{metric.removesuffix('_total') if kind == 'counter' else metric}|{kind}"
        not in families
        or not series_names(metric, kind) <= exported
    ]
    assert missing == []


@pytest.mark.slow
def test_the_memory_gauge_is_the_servers_whole_pss(shadow_server):
    """Whichever worker answers the scrape sums the master and both workers, as read from
    outside (it moves a little between the two readings)."""
    text = requests.get(shadow_server.url + "/metrics", timeout=10).text
    [gauge] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sentiment_server_memory_bytes"
    ]
    pid = shadow_server.process.pid
    processes = [pid, *children(pid)]
    assert len(processes) == 3
    outside = sum(pss_bytes(process) for process in processes)
    assert gauge == pytest.approx(outside, rel=0.05)


@pytest.mark.slow
def test_the_counters_the_alerts_divide_start_at_zero(shadow_server):
    """rate() cannot see the first increment of a series that appears at 1: the error, drop
    and disagreement counters must exist at 0 from start-up, or the first ones go unseen."""
    text = requests.get(shadow_server.url + "/metrics", timeout=10).text

    def seen(sample_name: str, *label_names: str) -> set[tuple[str, ...]]:
        return {
            tuple(sample.labels[name] for name in label_names)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == sample_name
        }

    calls = seen("sentiment_model_requests_total", "version", "outcome")
    assert set(product(["1", "2"], ["ok", "error"])) <= calls
    assert ("2",) in seen("sentiment_shadow_dropped_total", "version")
    comparisons = seen(
        "sentiment_shadow_comparisons_total", "stable_version", "candidate_version", "agreement"
    )
    assert {("1", "2", "agree"), ("1", "2", "disagree")} <= comparisons


@pytest.mark.slow
def test_prometheus_records_every_rule_from_a_running_server(shadow_server, tmp_path):
    """A real Prometheus scrapes the real server every second and evaluates rules.yml: each
    record must produce series, so the rules' label names and joins fit what is exported."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "sentiment",
                        "static_configs": [
                            {"targets": [shadow_server.url.removeprefix("http://")]}
                        ],
                    }
                ],
            }
        )
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = subprocess.Popen(
            [
                prometheus_binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def recorded(name: str) -> list:
        try:
            answer = requests.get(
                f"http://127.0.0.1:{port}/api/v1/query", params={"query": name}, timeout=5
            )
        except requests.ConnectionError:
            return []
        # 503 until Prometheus is ready.
        return answer.json()["data"]["result"] if answer.status_code == 200 else []

    missing = RECORDED
    try:
        deadline = time.monotonic() + 60
        answered: list[str] = []
        while missing and time.monotonic() < deadline:
            # Traffic while Prometheus scrapes: rates need increases inside their window;
            # feedback on the previous rounds' answers (recorded within about a second).
            body = {"reviews": ["loved it", "awful", "it was fine"]}
            headers = {"X-Request-ID": f"prometheus-rules-{len(answered):012d}"}
            url = shadow_server.url
            assert requests.post(url + "/classify", json=body, headers=headers, timeout=10).ok
            answered.append(headers["X-Request-ID"])
            if len(answered) > 3:
                given = {"request_id": answered[-4], "label": "negative"}
                requests.post(url + "/feedback", json=given, timeout=10)
            missing = [name for name in missing if not recorded(name)]
            time.sleep(0.5)
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
    assert missing == []
