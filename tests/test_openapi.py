"""The OpenAPI document: valid, complete (every route), and true (every documented example
gets the documented status and a body of the documented schema from the real app)."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import unicodedata

import jsonschema_rs
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from app.serving.texts import BLANK_MESSAGE, NOT_BLANK_PATTERN, review_text_problem
from app.web.openapi import openapi_path, significant
from app.web.schemas import EXAMPLE_REVIEW

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document(app) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


@pytest.fixture(scope="module")
def contract(document):
    return schemathesis.openapi.from_dict(document)


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def parameter_examples(path_item: dict, operation: dict) -> dict:
    """The documented example of each path parameter (of the path or the operation)."""
    parameters = path_item.get("parameters", []) + operation.get("parameters", [])
    return {p["name"]: p["example"] for p in parameters if p["in"] == "path"}


def url_for(path: str, parameters: dict) -> str:
    return re.sub(r"{(\w+)}", lambda m: str(parameters[m.group(1)]), path)


def test_document_is_valid_openapi_3(document):
    errors = [str(error) for error in OPENAPI_30_VALIDATOR.iter_errors(document)]
    assert errors == []
    assert document["openapi"].startswith("3.")


def test_every_route_is_documented(app, document):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[-1] == "static":  # the page's and /docs' static files
            continue
        path = openapi_path(rule.rule)
        assert path in document["paths"], f"{rule.rule} is not in the document"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], f"{method} {rule.rule}"


def test_every_loaded_version_is_a_valid_path_parameter(app, client, document):
    """Every version the server answers for is in the document's enum, and only those (the
    fuzz test found version 1 answered while the document allowed the stable one only)."""
    loaded = sorted(int(v) for v in app.extensions["models"].registry.versions)
    assert len(loaded) >= 2
    path = "/v1/models/{name}/versions/{version}"
    [parameter] = [p for p in document["paths"][path]["parameters"] if p["name"] == "version"]
    assert parameter["schema"]["enum"] == loaded
    for version in loaded:
        assert client.get(f"/v1/models/sentiment/versions/{version}").status_code == 200
    assert client.get(f"/v1/models/sentiment/versions/{max(loaded) + 1}").status_code == 404


def test_every_operation_documents_its_errors(document):
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert "200" in responses, f"{method} {path}"
        error_schema = "Error"
        if path.startswith("/v1/"):
            error_schema = "TFError"
        elif path == "/v2" or path.startswith("/v2/"):
            error_schema = "V2Error"
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{error_schema}"}, (path, status)
        assert any(status.startswith("4") for status in responses), f"{method} {path}"
        if "requestBody" in operation:
            # Every route refuses a Content-Encoding other than gzip or deflate with 415;
            # /v1/ and /v2/ read any Content-Type as JSON (as TF Serving and Triton do).
            expected = {"400", "413", "415"}
            if path.startswith(("/v1/", "/v2/")):
                expected.add("404")
            assert expected <= set(responses), f"{method} {path}"


def test_every_operation_is_lint_clean(document):
    """What linters ask (redocly's recommended rules run in CI): an operationId, declared
    tags, servers, licence and contact."""
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    declared = {tag["name"] for tag in document["tags"]}
    for path, method, operation in operations(document):
        assert operation["tags"] and set(operation["tags"]) <= declared, f"{method} {path}"
    assert document["servers"] and document["info"]["license"]["name"]
    assert document["info"]["contact"]


def request_examples(document: dict) -> list:
    """Every documented request example, with the status documented for it: the response
    whose examples carry the same name."""
    cases = []
    for path, method, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {})
        for name, example in content.get("application/json", {}).get("examples", {}).items():
            statuses = [
                status
                for status, response in operation["responses"].items()
                if name
                in response.get("content", {}).get("application/json", {}).get("examples", {})
            ]
            assert len(statuses) == 1, f"{method} {path} example {name!r}: {statuses}"
            cases.append(pytest.param(path, method, example["value"], int(statuses[0]), id=name))
    return cases


def test_request_examples_are_documented(document):
    names = {param.id for param in request_examples(document)}
    assert {"single", "batch", "row", "column"} <= names


def test_every_request_example_gets_its_documented_response(app, document, contract):
    client = app.test_client()
    for param in request_examples(document):
        path, method, body, status = param.values
        operation = document["paths"][path][method]
        parameters = parameter_examples(document["paths"][path], operation)
        response = client.open(url_for(path, parameters), method=method.upper(), json=body)
        assert response.status_code == status, (param.id, path, response.get_json())
        case = contract[path][method.upper()].Case(path_parameters=parameters, body=body)
        case.validate_response(response, checks=CHECKS)


def test_every_answer_that_names_its_version_in_a_header_is_documented_so(app, document):
    """X-Model-Version (the only place TF Serving's predict answer names its version)."""
    client = app.test_client()
    named = set()
    for param in request_examples(document):
        path, method, body, _ = param.values
        operation = document["paths"][path][method]
        parameters = parameter_examples(document["paths"][path], operation)
        response = client.open(url_for(path, parameters), method=method.upper(), json=body)
        if "X-Model-Version" in response.headers:
            documented = operation["responses"][str(response.status_code)]
            assert "X-Model-Version" in documented.get("headers", {}), (param.id, path)
            named.add(operation["operationId"].removesuffix("Version").removesuffix("Label"))
    assert {"classify", "explain", "tfPredict", "v2Infer"} <= named, named


def rounded(value):
    """``value`` with every float to the examples' significant digits."""
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def test_every_example_answer_is_what_the_server_answers(app, document):
    """The example answers (labels, probabilities, explanations) are the stable version's
    own, not figures written by hand: each request example gets its response example,
    floats rounded as documented, the request id aside."""
    client = app.test_client()
    compared = []
    for param in request_examples(document):
        path, method, body, status = param.values
        operation = document["paths"][path][method]
        parameters = parameter_examples(document["paths"][path], operation)
        response = client.open(url_for(path, parameters), method=method.upper(), json=body)
        documented = operation["responses"][str(status)]["content"]["application/json"]
        expected = documented["examples"][param.id]["value"]
        answer = response.get_json()
        if "id" in expected and "id" not in body:  # the request id, made per request
            assert answer.pop("id") == response.headers["X-Request-ID"]
            expected = {key: value for key, value in expected.items() if key != "id"}
        assert rounded(answer) == expected, (param.id, path)
        compared.append(param.id)
    assert {"single", "batch", "explain", "row", "column", "texts", "labels_only"} <= set(compared)


def test_every_get_answers_as_documented(app, document, contract):
    client = app.test_client()
    for path, method, operation in operations(document):
        if method != "get":
            continue
        parameters = parameter_examples(document["paths"][path], operation)
        response = client.get(url_for(path, parameters))
        assert response.status_code == 200, path
        case = contract[path]["GET"].Case(path_parameters=parameters)
        case.validate_response(response, checks=CHECKS)


def test_document_states_the_app_limits(make_app):
    document = make_app(MAX_BATCH_SIZE=2, MAX_TEXT_CHARS=10).test_client().get("/openapi.json")
    schemas = document.get_json()["components"]["schemas"]
    reviews = schemas["ClassifyBatchRequest"]["properties"]["reviews"]
    assert reviews["maxItems"] == 2 and reviews["items"]["maxLength"] == 10
    review = schemas["ClassifyOneRequest"]["properties"]["review"]
    assert review["maxLength"] == 10 and review["pattern"] == NOT_BLANK_PATTERN
    for shape in schemas["TFPredictRowRequest"]["properties"]["instances"]["oneOf"]:
        assert (shape["minItems"], shape["maxItems"]) == (1, 2)
    [bare, _named] = schemas["TFPredictColumnRequest"]["properties"]["inputs"]["oneOf"]
    assert bare["maxItems"] == 2 and "minItems" not in bare  # an empty column is fine
    assert bare["items"]["oneOf"][0] == {"type": "string", "maxLength": 10}
    assert schemas["TFNamedInputs"]["properties"]["review"]["maxItems"] == 2
    # A list of feedback had no maxItems: schemathesis sent 66 items, valid by the document,
    # and got the 400 the app gives past MAX_BATCH_SIZE.
    body = document.get_json()["paths"]["/feedback"]["post"]["requestBody"]
    [_one, several] = body["content"]["application/json"]["schema"]["oneOf"]
    assert (several["minItems"], several["maxItems"]) == (1, 2)


def some_code_points() -> list[str]:
    """Every character up to U+30FF (all of Unicode's whitespace is below), then a sample,
    and every invisible one past it in the first plane."""
    points = [*range(0x3100), *range(0x3100, sys.maxunicode + 1, 97), *INVISIBLE]
    return [chr(p) for p in points if not 0xD800 <= p <= 0xDFFF]


# Format characters that show nothing (Unicode's Cf, but the Arabic and Syriac signs that
# carry a glyph, and the tags of other planes' rare uses), and the first plane's other
# default-ignorable characters: variation selectors, the combining grapheme joiner,
# Mongolian and Hangul fillers (a text of U+FE0F was scored; an outside probe).
INVISIBLE = {0xAD, 0x61C, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F)}
INVISIBLE |= {*range(0x2060, 0x2065), *range(0x2066, 0x2070), 0xFEFF}
INVISIBLE |= {0x34F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x3164}
INVISIBLE |= {*range(0xFE00, 0xFE10), 0xFFA0, *range(0xFFF0, 0xFFFC)}


def shows_something(text: str) -> bool:
    return any(
        not (c.isspace() or unicodedata.category(c) == "Cc" or ord(c) in INVISIBLE) for c in text
    )


def test_the_documented_text_rule_is_the_one_the_server_enforces():
    """The ``pattern`` means, in JSON Schema's regex dialect (ECMA-262, here the Rust
    validator schemathesis uses) and in Python's (marshmallow's ``Regexp``), what the
    server checks: some character that is not whitespace (``str.strip()``), a control or
    a zero-width or format character (a text of those was scored as the empty text)."""
    ecma = jsonschema_rs.Draft4Validator({"type": "string", "pattern": NOT_BLANK_PATTERN})
    python = re.compile(NOT_BLANK_PATTERN)
    wrong = []
    for char in some_code_points():
        for text in (char, f" \u3000{char}\x1f\u200b"):
            expected = shows_something(text)
            blank = review_text_problem(text, 10) == BLANK_MESSAGE
            if {bool(python.match(text)), ecma.is_valid(text), not blank} != {expected}:
                wrong.append(hex(ord(char)))
    assert wrong == []
    assert review_text_problem("\x1c\u3000 ", 10) == BLANK_MESSAGE
    assert review_text_problem("\u200b\u2060\ufeff\x00", 10) == BLANK_MESSAGE


def example_nodes(node, where: str = ""):
    """Every (schema, example value, location) in the document: media type and parameter
    examples against their schema, and schema-level ``example`` values."""
    if isinstance(node, dict):
        if "schema" in node and ("examples" in node or "example" in node):
            for name, value in node.get("examples", {}).items():
                yield node["schema"], value["value"], f"{where}/examples/{name}"
            if "example" in node:
                yield node["schema"], node["example"], f"{where}/example"
        if "example" in node and ("type" in node or "oneOf" in node or "$ref" in node):
            yield node, node["example"], f"{where}/example"
        for key, value in node.items():
            yield from example_nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from example_nodes(value, f"{where}/{index}")


def json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable: true`` is OpenAPI's, not Draft
    4's, where ``null`` is a type of its own."""
    if isinstance(node, dict):
        node = {key: json_schema(value) for key, value in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [json_schema(value) for value in node]
    return node


def test_every_example_is_valid_against_its_schema(document):
    components = {"components": json_schema(document["components"])}
    checked, invalid = 0, []
    for schema, value, where in example_nodes(document):
        validator = jsonschema_rs.Draft4Validator({**json_schema(schema), **components})
        checked += 1
        if not validator.is_valid(value):
            invalid.append(f"{where}: {next(validator.iter_errors(value))}")
    assert invalid == []
    assert checked >= 30


@pytest.mark.parametrize(
    "path, body, status, example_name",
    [
        ("/classify", {"review": "   "}, 400, "blank"),
        (
            "/v1/models/{name}:predict",
            {"instances": [EXAMPLE_REVIEW], "inputs": [EXAMPLE_REVIEW]},
            400,
            "both",
        ),
        (
            "/v2/models/{name}/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Good."]}]},
            400,
            "unknown_input",
        ),
    ],
)
def test_documented_error_examples_are_what_the_server_answers(
    client, document, app, path, body, status, example_name
):
    """Error examples cannot come from a valid request example: each is paired here with
    the request its summary names, and must be the server's exact answer."""
    name = app.extensions["models"].registry.stable.bundle.name
    response = client.post(path.format(name=name), json=body)
    assert response.status_code == status
    documented = document["paths"][path]["post"]["responses"][str(status)]
    examples = documented["content"]["application/json"]["examples"]
    assert response.get_json() == examples[example_name]["value"]


def test_a_documented_malformed_url_is_what_the_server_answers(client, document, app):
    name = app.extensions["models"].registry.stable.bundle.name
    path = "/v1/models/{name}/versions/{version}"
    examples = document["paths"][path]["get"]["responses"]["400"]["content"]["application/json"][
        "examples"
    ]
    response = client.get(f"/v1/models/{name}/versions/99999999999999999999")
    assert response.status_code == 400
    assert response.get_json() == examples["malformed"]["value"]


def test_document_is_built_once_per_app(app):
    client = app.test_client()
    client.get("/openapi.json")
    first = app.extensions["openapi_spec"]
    client.get("/openapi.json")
    assert app.extensions["openapi_spec"] is first


def test_the_documents_server_is_the_apps_root_behind_a_path_prefix(client):
    """Behind a proxy that serves the app under /sentiment (SCRIPT_NAME), a server URL
    of "/" sent "Try it out" to the host's root, a 404 (an outside probe, in Chromium)."""
    direct = client.get("/openapi.json")
    prefixed = client.get("/openapi.json", base_url="http://localhost/sentiment/")
    assert [server["url"] for server in direct.get_json()["servers"]] == ["/"]
    assert [server["url"] for server in prefixed.get_json()["servers"]] == ["/sentiment"]
    assert direct.get_json()["paths"] == prefixed.get_json()["paths"]


def test_every_response_declares_the_request_id_and_a_401_its_challenge(make_app):
    """Both headers were sent and not declared (an outside probe)."""
    document = make_app(API_KEYS="k" * 32).test_client().get("/openapi.json").get_json()
    challenged = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert headers["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
            if status == "401":
                assert "WWW-Authenticate" in headers, f"{method} {path}"
                challenged += 1
    assert challenged > 10
    response = make_app(API_KEYS="k" * 32).test_client().post("/classify", json={})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"]


def test_the_document_revalidates_to_304(client):
    """It was no-store, without an ETag, where the README says a reload revalidates."""
    first = client.get("/openapi.json")
    assert first.headers["Cache-Control"] == "no-cache" and first.headers["ETag"]
    again = client.get("/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_docs_page_is_swagger_ui_from_the_package_on_this_document(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'data-spec-url="/openapi.json"' in page
    assert "<script>" not in page  # no inline script: only files
    # Every script and style is one of ours or one the package ships, served here.
    assets = re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', page)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    assert "/docs/assets/swagger-ui.css" in assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        served.close()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    version = re.search(r'name="swagger-ui-version" content="([\d.]+)"', page).group(1)
    assert version == importlib.metadata.version("flask-swagger-ui")  # it ships its namesake


def test_the_retry_after_of_a_pending_feedback_is_documented(document):
    """POST /feedback's 503 ``prediction_pending`` carries ``Retry-After: 1``; the document
    named only ``X-Request-ID`` there (an outside probe)."""
    from app.web.feedback import PredictionPending

    assert ("Retry-After", "1") in PredictionPending.headers
    documented = document["paths"]["/feedback"]["post"]["responses"]["503"]["headers"]
    assert documented["Retry-After"]["schema"] == {"type": "integer"}
