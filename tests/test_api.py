"""The API's input checks: every bad request gets a 4xx that names the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Stack

RUN = {"name": "run.sh", "content": "true"}


def body_with(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"files": [RUN]}
    body.update(changes)
    return body


BAD_REQUESTS = [
    ("missing run.sh", {"files": [{"name": "main.c", "content": ""}]}, "files", "run.sh"),
    ("no files", {"files": []}, "files", "at least 1"),
    ("unknown field", body_with(stdin="x"), "stdin", "Extra inputs"),
    ("absolute name", body_with(files=[RUN, {"name": "/etc/passwd", "content": ""}]),
     "files.1.name", "absolute"),
    ("dot-dot name", body_with(files=[RUN, {"name": "a/../../x", "content": ""}]),
     "files.1.name", "'..'"),
    ("backslash name", body_with(files=[RUN, {"name": "a\\b", "content": ""}]),
     "files.1.name", "backslash"),
    ("nul name", body_with(files=[RUN, {"name": "a\u0000b", "content": ""}]),
     "files.1.name", "NUL"),
    ("duplicate name", body_with(files=[RUN, RUN]), "files", "more than once"),
    ("file and folder", body_with(files=[RUN, {"name": "a", "content": ""},
                                         {"name": "a/b", "content": ""}]), "files", "folder"),
    ("bad base64", body_with(files=[RUN, {"name": "x", "content": "!!", "encoding": "base64"}]),
     "files.1", "base64"),
    ("bad encoding", body_with(files=[RUN, {"name": "x", "content": "", "encoding": "latin1"}]),
     "files.1.encoding", "latin1"),
    ("args not strings", body_with(args=[1]), "args.0", "string"),
    ("bad env name", body_with(env={"1X": "y"}), "env", "1X"),
    ("limit above maximum", body_with(limits={"run": {"wall_time": 100000}}),
     "limits.run.wall_time", "maximum"),
    ("negative limit", body_with(limits={"run": {"memory": -1}}), "limits.run.memory", ""),
    ("unknown phase", body_with(limits={"link": {}}), "limits.link", "Extra inputs"),
]


@pytest.mark.parametrize(("name", "body", "field", "text"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_names_field(
    stack: Stack, name: str, body: dict[str, Any], field: str | None, text: str
) -> None:
    response = stack.client.post("/submissions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert text in error["message"]


def test_invalid_json(stack: Stack) -> None:
    response = stack.client.post("/submissions", content=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_json_not_an_object(stack: Stack) -> None:
    response = stack.client.post("/submissions", json=[1, 2])
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_oversized_body(stack: Stack) -> None:
    big = "x" * (stack.settings.max_request_bytes + 1)
    response = stack.client.post("/submissions", json=body_with(inputs=big))
    assert response.status_code == 413
    assert "exceeds" in response.json()["error"]["message"]


def test_unknown_id(stack: Stack) -> None:
    for submission_id in ("0" * 32, "not-an-id", "../../etc"):
        response = stack.client.get(f"/submissions/{submission_id}")
        assert response.status_code == 404


def test_accepted_response(stack: Stack) -> None:
    response = stack.client.post("/submissions", json=body_with())
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "PENDING"
    assert response.headers["Location"] == f"/submissions/{body['id']}"
    stack.wait(body["id"])


def test_healthz(stack: Stack) -> None:
    response = stack.client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"storage": "ok", "docker": "ok", "nix": "ok"}
