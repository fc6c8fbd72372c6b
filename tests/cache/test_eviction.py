"""Eviction: LRU order under a size budget, and running submissions keep their store paths."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.cache.conftest import (
    StackFactory,
    cutor_nix,
    dependency,
    env_id,
    submission,
    token,
    tool,
    wait_for_status,
)
from tests.conftest import Stack

PACKAGE_BYTES = 100_000
# Two environments of one 100 kB package each fit; three do not.
BUDGET = 250_000


def listed_ids(stack: Stack) -> set[str]:
    response = stack.client.get("/dependencies")
    assert response.status_code == 200, response.text
    return {entry["id"] for entry in response.json()["environments"]}


def wait_for_dependency_status(stack: Stack, environment: str, status: str,
                               timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while dependency(stack, environment)["status"] != status:
        assert time.monotonic() < deadline, f"environment {environment} never became {status}"
        time.sleep(0.2)


def store_path_of(stack: Stack, environment: str, name: str) -> Path:
    paths = dependency(stack, environment)["store_paths"]
    return Path(next(path for path in paths if path.endswith(f"-{name}")))


def test_lru_order_under_budget(make_stack: StackFactory) -> None:
    with make_stack(cache_max_bytes=BUDGET, eviction_interval=3600.0) as stack:
        shared, first, second, third = (f"x-{token()}" for _ in range(4))
        texts = {
            "first": cutor_nix(tool(first, data_bytes=PACKAGE_BYTES), tool(shared)),
            "second": cutor_nix(tool(second, data_bytes=PACKAGE_BYTES), tool(shared)),
            "third": cutor_nix(tool(third, data_bytes=PACKAGE_BYTES)),
        }
        scripts = {"first": f"{first}; {shared}", "second": f"{second}; {shared}",
                   "third": third}
        ids = {label: env_id(stack, text) for label, text in texts.items()}
        for label in ["first", "second", "first", "third"]:
            result = stack.run(submission(texts[label], scripts[label]))
            assert result["status"] == "FINISHED", result
        shared_path = store_path_of(stack, ids["first"], shared)
        first_path = store_path_of(stack, ids["first"], first)
        third_path = store_path_of(stack, ids["third"], third)

        # The third build pushed the cache over budget, and the second environment was
        # the least recently used: the first was used again after it was built.
        assert listed_ids(stack) == {ids["first"], ids["third"]}
        assert dependency(stack, ids["second"])["status"] == "evicted"
        assert list(Path("/nix/store").glob(f"*-{second}")) == []
        assert shared_path.exists()
        assert first_path.exists()
        assert third_path.exists()
        again = stack.run(submission(texts["first"], scripts["first"]))
        assert again["run"]["stdout"] == f"{first} works\n{shared} works\n"
        assert dependency(stack, ids["first"])["build_count"] == 1


def test_running_submission_survives_eviction_and_gc(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A budget of 1 byte makes every scheduled pass try to evict every environment.
    with make_stack(cache_max_bytes=1, eviction_interval=0.5) as stack:
        name = f"x-{token()}"
        text = cutor_nix(tool(name))
        environment = env_id(stack, text)
        body = submission(text, f"sleep 6; {name}", limits={"run": {"wall_time": 30}})
        submission_id = stack.submit(body)
        wait_for_status(stack, submission_id, "DEPENDENCIES_INSTALLED")
        store_path = store_path_of(stack, environment, name)
        own_roots = stack.settings.nix_gcroots_dir / "submissions" / submission_id

        time.sleep(1.5)
        assert [str(link.readlink()) for link in own_roots.iterdir()] == [str(store_path)]
        assert dependency(stack, environment)["status"] == "built"
        assert f"environment {environment} not evicted: in_use" in caplog.text
        # Even without the environment's own roots, the submission's roots keep its paths.
        shutil.rmtree(stack.settings.nix_gcroots_dir / environment)
        subprocess.run(["nix-collect-garbage"], capture_output=True, check=True)
        assert store_path.exists()

        result = stack.wait(submission_id)
        assert result["status"] == "FINISHED", result
        assert result["run"]["stdout"] == f"{name} works\n"
        assert not own_roots.exists()
        wait_for_dependency_status(stack, environment, "evicted")
        assert not store_path.exists()
