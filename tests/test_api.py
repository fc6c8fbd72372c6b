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
    ("limit as string", body_with(limits={"run": {"wall_time": "5"}}),
     "limits.run.wall_time", "valid number"),
    ("limit as boolean", body_with(limits={"run": {"processes": True}}),
     "limits.run.processes", "valid integer"),
    ("executable as number", body_with(files=[RUN, {"name": "x", "content": "",
                                                     "executable": 1}]),
     "files.1.executable", "valid boolean"),
    ("argument too long", body_with(args=["y" * 200_000]), "args", "args[0]"),
    ("arguments too large", body_with(args=["z" * 3000] * 400), None, "command line"),
    ("env value too long", body_with(env={"BIG": "b" * 200_000}), "env", "'BIG'"),
    ("too many env variables", body_with(env={f"V{i}": "" for i in range(1001)}), "env",
     "at most 1000"),
    ("files larger than disk", body_with(files=[RUN, {"name": "blob", "content": "x" * 3_000_000}],
                                         limits={"run": {"disk": 2 * 1024 * 1024}}),
     "files", "disk limit"),
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


@pytest.mark.parametrize("body", [
    b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"files": [], "limits": {"run": {"memory": 1' + b"0" * 5000 + b"}}}",
    b'{"files": [{"name": "run.sh", "content": "\xff"}]}',
], ids=["deeply nested", "5001-digit integer", "invalid utf-8"])
def test_hostile_json_is_400(stack: Stack, body: bytes) -> None:
    response = stack.client.post("/submissions", content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_not_a_number_limit_is_400(stack: Stack) -> None:
    body = b'{"files": [{"name": "run.sh", "content": ""}], "limits": {"run": {"cpu_time": NaN}}}'
    response = stack.client.post("/submissions", content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "limits.run.cpu_time"


def test_bad_boolean_query_is_400(stack: Stack) -> None:
    response = stack.client.get(f"/submissions/{'0' * 32}?base64=maybe")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "base64"


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
