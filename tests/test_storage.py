"""The storage adapter against a real MinIO: conditional writes and missing objects."""

from __future__ import annotations

import secrets

import pytest
from cutor.errors import PreconditionFailed, StorageError
from cutor.minio_server import MinioServer
from cutor.storage import ObjectStore

from tests.conftest import make_settings


@pytest.fixture
def store(minio: MinioServer) -> ObjectStore:
    settings = make_settings(minio.state_dir, minio.endpoint)
    created = ObjectStore(settings)
    created.ensure_bucket()
    return created


def test_round_trip(store: ObjectStore) -> None:
    etag = store.put("a/b.json", {"x": [1, "é"]})
    stored = store.get("a/b.json")
    assert stored is not None
    assert stored.body == {"x": [1, "é"]}
    assert stored.etag == etag


def test_missing_object_is_none(store: ObjectStore) -> None:
    assert store.get("nothing/here.json") is None


def test_create_only_rejects_existing(store: ObjectStore) -> None:
    store.put("once.json", {"n": 1}, create_only=True)
    with pytest.raises(PreconditionFailed):
        store.put("once.json", {"n": 2}, create_only=True)
    stored = store.get("once.json")
    assert stored is not None
    assert stored.body == {"n": 1}


def test_if_match_rejects_stale_etag(store: ObjectStore) -> None:
    first = store.put("state.json", {"v": 1})
    second = store.put("state.json", {"v": 2}, if_match=first)
    with pytest.raises(PreconditionFailed):
        store.put("state.json", {"v": 3}, if_match=first)
    store.put("state.json", {"v": 4}, if_match=second)
    stored = store.get("state.json")
    assert stored is not None
    assert stored.body == {"v": 4}


def test_list_and_delete(store: ObjectStore) -> None:
    for index in range(3):
        store.put(f"list/{index}", {})
    store.put("other/x", {})
    assert sorted(store.list_keys("list/")) == ["list/0", "list/1", "list/2"]
    store.delete("list/1")
    store.delete("list/never-existed")
    assert sorted(store.list_keys("list/")) == ["list/0", "list/2"]


def test_unreachable_storage_raises_storage_error(minio: MinioServer) -> None:
    bucket = f"x{secrets.token_hex(3)}"
    settings = make_settings(minio.state_dir, "http://127.0.0.1:9", bucket=bucket)
    unreachable = ObjectStore(settings)
    unreachable.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageError):
        unreachable.get("x")
