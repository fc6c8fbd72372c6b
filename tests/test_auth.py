"""API keys: authentication, ownership, per-key concurrency and rate limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from cutor import auth, keys
from cutor.api import create_app

from tests.conftest import Stack

BODY = {"files": [{"name": "run.sh", "content": "echo ok"}]}
SLOW_BODY = {"files": [{"name": "run.sh", "content": "sleep 3; echo slow"}]}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("auth-state"), "runc", auth_mode="keys")
    yield running
    running.stop()


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def test_missing_key_is_401(keyed: Stack) -> None:
    response = keyed.client.post("/submissions", json=BODY)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["field"] == "Authorization"


@pytest.mark.parametrize("text", ["nonsense", "cutor_0123456789abcdef_wrong", "cutor_x_y"])
def test_bad_key_is_401(keyed: Stack, text: str) -> None:
    response = keyed.client.get(f"/submissions/{'0' * 32}", headers=bearer(text))
    assert response.status_code == 401


def test_secret_is_stored_hashed(keyed: Stack) -> None:
    key, text = auth.create_key(keyed.store, "hash-check")
    stored = keyed.store.get(keys.api_key(key.id))
    assert stored is not None
    secret = text.rsplit("_", 1)[1]
    assert secret not in json.dumps(stored.body)


def test_submission_readable_by_owner_only(keyed: Stack) -> None:
    _, alice = auth.create_key(keyed.store, "alice")
    _, bob = auth.create_key(keyed.store, "bob")
    _, operator = auth.create_key(keyed.store, "ops", operator=True)
    response = keyed.client.post("/submissions", json=BODY, headers=bearer(alice))
    assert response.status_code == 202
    path = f"/submissions/{response.json()['id']}"
    assert keyed.client.get(path, headers=bearer(alice)).status_code == 200
    assert keyed.client.get(path, headers=bearer(bob)).status_code == 404
    assert keyed.client.get(path, headers=bearer(operator)).status_code == 200


def test_revoked_key_is_401(keyed: Stack) -> None:
    key, text = auth.create_key(keyed.store, "revoked")
    auth.revoke_key(keyed.store, key.id)
    assert keyed.client.post("/submissions", json=BODY, headers=bearer(text)).status_code == 401


def test_concurrency_limit_is_429(keyed: Stack) -> None:
    _, text = auth.create_key(keyed.store, "one-at-a-time", max_concurrent=1)
    first = keyed.client.post("/submissions", json=SLOW_BODY, headers=bearer(text))
    assert first.status_code == 202
    second = keyed.client.post("/submissions", json=BODY, headers=bearer(text))
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    first_id = first.json()["id"]
    result = keyed.client.get(f"/submissions/{first_id}", headers=bearer(text)).json()
    while result["status"] != "FINISHED":
        time.sleep(0.25)
        result = keyed.client.get(f"/submissions/{first_id}", headers=bearer(text)).json()
    third = keyed.client.post("/submissions", json=BODY, headers=bearer(text))
    assert third.status_code == 202


def test_rate_limit_is_429(keyed: Stack) -> None:
    _, text = auth.create_key(keyed.store, "slow-client", requests_per_minute=3)
    statuses = [
        keyed.client.get(f"/submissions/{'0' * 32}", headers=bearer(text)).status_code
        for _ in range(4)
    ]
    assert statuses == [404, 404, 404, 429]
    limited = keyed.client.get(f"/submissions/{'0' * 32}", headers=bearer(text))
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_open_mode_only_on_loopback(keyed: Stack) -> None:
    settings = keyed.settings.model_copy(update={"auth_mode": "open", "api_host": "0.0.0.0"})
    with pytest.raises(RuntimeError, match="loopback"):
        create_app(settings, keyed.store)
