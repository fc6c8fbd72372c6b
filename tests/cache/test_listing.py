"""GET and DELETE /dependencies: listings checked against the Nix store, 404, 409, 504."""

from __future__ import annotations

import json
import secrets
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from cutor.api import create_app, require_operator
from cutor.auth import ApiKey
from cutor.errors import Forbidden
from cutor.models import utc_now
from cutor.storage import ObjectStore
from starlette.testclient import TestClient

from tests.cache.conftest import (
    cutor_nix,
    dependency,
    env_id,
    submission,
    token,
    tool,
    wait_for_status,
)
from tests.conftest import Stack


def nar_sizes(store_paths: list[str]) -> int:
    """Return the NAR bytes of the closure of ``store_paths``, as Nix reports them."""
    output = subprocess.run(
        ["nix", "path-info", "--json", "--recursive", *store_paths],
        capture_output=True, check=True, text=True,
    ).stdout
    return sum(entry["narSize"] for entry in json.loads(output))


def test_listing_after_builds(cache_stack: Stack) -> None:
    first, second, other = f"x-{token()}", f"x-{token()}", f"x-{token()}"
    both = cutor_nix(tool(first, data_bytes=2000), tool(second))
    alone = cutor_nix(tool(other))
    started = utc_now()
    for _ in range(2):
        result = cache_stack.run(submission(both, f"{first}; {second}"))
        assert result["status"] == "FINISHED", result
        assert result["run"]["stdout"] == f"{first} works\n{second} works\n"
    assert cache_stack.run(submission(alone, other))["status"] == "FINISHED"

    listed = cache_stack.client.get("/dependencies")

    assert listed.status_code == 200, listed.text
    by_id = {entry["id"]: entry for entry in listed.json()["environments"]}
    entry = by_id[env_id(cache_stack, both)]
    assert entry["status"] == "built"
    assert sorted(entry["packages"]) == sorted([first, second])
    assert [Path(path).name[33:] for path in entry["store_paths"]] == entry["packages"]
    assert entry["closure_size"] == nar_sizes(entry["store_paths"])
    assert entry["closure_size"] > 2000
    assert entry["verified"] is True
    assert entry["problem"] is None
    assert started < datetime.fromisoformat(entry["built_at"])
    assert datetime.fromisoformat(entry["built_at"]) < datetime.fromisoformat(
        entry["last_used_at"])
    assert entry["use_count"] == 2
    assert entry["build_count"] == 1
    assert entry["running"] == 0
    assert entry["queued"] == 0
    assert by_id[env_id(cache_stack, alone)]["packages"] == [other]


def test_get_one_environment(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    text = cutor_nix(tool(name))
    assert cache_stack.run(submission(text, name))["status"] == "FINISHED"

    entry = dependency(cache_stack, env_id(cache_stack, text))

    assert entry["id"] == env_id(cache_stack, text)
    assert entry["packages"] == [name]
    assert entry["use_count"] == 1
    assert entry["verified"] is True


def test_listing_flags_missing_roots(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    text = cutor_nix(tool(name))
    assert cache_stack.run(submission(text, name))["status"] == "FINISHED"
    environment = env_id(cache_stack, text)
    roots = cache_stack.settings.nix_gcroots_dir / environment
    for link in roots.iterdir():
        link.unlink()

    entry = dependency(cache_stack, environment)

    assert entry["verified"] is False
    assert "no GC root" in entry["problem"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("environment", ["0" * 64, "not-an-id", "A" * 64])
def test_unknown_environment_is_404(cache_stack: Stack, method: str, environment: str) -> None:
    response = cache_stack.client.request(method, f"/dependencies/{environment}")

    assert response.status_code == 404, response.text
    assert response.json()["error"]["field"] == "id"


def test_delete_in_use_is_409(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    text = cutor_nix(tool(name))
    environment = env_id(cache_stack, text)
    body = submission(text, f"sleep 3; {name}", limits={"run": {"wall_time": 20}})
    submission_id = cache_stack.submit(body)
    wait_for_status(cache_stack, submission_id, "DEPENDENCIES_INSTALLED")

    rejected = cache_stack.client.delete(f"/dependencies/{environment}")

    assert rejected.status_code == 409, rejected.text
    assert "in use by 1 running" in rejected.json()["error"]["message"]
    assert dependency(cache_stack, environment)["running"] == 1
    assert cache_stack.wait(submission_id)["status"] == "FINISHED"


def test_delete_removes_environment(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    text = cutor_nix(tool(name))
    environment = env_id(cache_stack, text)
    assert cache_stack.run(submission(text, name))["status"] == "FINISHED"
    store_paths = dependency(cache_stack, environment)["store_paths"]

    deleted = cache_stack.client.delete(f"/dependencies/{environment}")

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["outcome"] == "deleted"
    assert deleted.json()["freed_bytes"] > 0
    assert not Path(store_paths[0]).exists()
    assert dependency(cache_stack, environment)["status"] == "evicted"
    listed = cache_stack.client.get("/dependencies").json()["environments"]
    assert environment not in {entry["id"] for entry in listed}
    again = cache_stack.client.delete(f"/dependencies/{environment}")
    assert again.status_code == 404, again.text
    rebuilt = cache_stack.run(submission(text, name))
    assert rebuilt["status"] == "FINISHED", rebuilt
    assert rebuilt["run"]["stdout"] == f"{name} works\n"
    assert dependency(cache_stack, environment)["build_count"] == 2


def test_listing_without_worker_is_504(cache_stack: Stack) -> None:
    # A bucket that sends no events, so no cache manager ever receives the request.
    settings = cache_stack.settings.model_copy(update={
        "bucket": f"test-silent-{secrets.token_hex(4)}", "cache_request_timeout": 1.0,
    })
    store = ObjectStore(settings)
    store.ensure_bucket()
    client = TestClient(create_app(settings, store))

    response = client.get("/dependencies")

    assert response.status_code == 504, response.text
    assert "no cache manager responded" in response.json()["error"]["message"]
    assert list(store.list_keys("listings/")) == []


def test_require_operator() -> None:
    client = ApiKey(id="k1", name="client", secret_sha256="0" * 64, created_at=utc_now())
    operator = client.model_copy(update={"operator": True})

    require_operator(None)
    require_operator(operator)
    with pytest.raises(Forbidden):
        require_operator(client)
