"""The OpenAPI document: valid, complete (every route), and true (every documented example
gets the documented status and a body of the documented schema from the real app)."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from app.web.openapi import openapi_path

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
    return {p["name"]: p["example"] for p in parameters}


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


def test_every_operation_documents_its_errors(document):
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert "200" in responses, f"{method} {path}"
        error_schema = "TFError" if path.startswith("/v1/") else "Error"
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{error_schema}"}, (path, status)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), f"{method} {path}"


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
    reviews = schemas["ClassifyRequest"]["properties"]["reviews"]
    assert reviews["maxItems"] == 2 and reviews["items"]["maxLength"] == 10
    assert schemas["ClassifyRequest"]["properties"]["review"]["maxLength"] == 10
    assert schemas["TFPredictRequest"]["properties"]["instances"]["maxItems"] == 2
    assert "x-texts" not in str(schemas)


def test_document_is_built_once_per_app(app):
    client = app.test_client()
    client.get("/openapi.json")
    first = app.extensions["openapi_spec"]
    client.get("/openapi.json")
    assert app.extensions["openapi_spec"] is first


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
