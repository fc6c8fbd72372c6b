"""One Nix build per environment, however many submissions need it at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from tests.cache.conftest import (
    broken,
    cutor_nix,
    dependency,
    env_id,
    submission,
    token,
    tool,
)
from tests.conftest import Stack

CONCURRENT = 8


def submit_together(stack: Stack, body: dict[str, object], count: int) -> list[str]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: stack.submit(body), range(count)))


def test_identical_submissions_build_once(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    # The build takes 2 s, so every submission arrives while it runs.
    text = cutor_nix(tool(name, build_seconds=2))

    submitted = submit_together(cache_stack, submission(text, name), CONCURRENT)
    results = [cache_stack.wait(submission_id) for submission_id in submitted]

    for result in results:
        assert result["status"] == "FINISHED", result
        assert result["run"]["stdout"] == f"{name} works\n"
    entry = dependency(cache_stack, env_id(cache_stack, text))
    assert entry["build_count"] == 1
    assert entry["use_count"] == CONCURRENT
    assert entry["queued"] == 0
    assert entry["running"] == 0


def test_identical_broken_submissions_fail_alike(cache_stack: Stack) -> None:
    name = f"x-{token()}"
    text = cutor_nix(broken(name, build_seconds=2))

    submitted = submit_together(cache_stack, submission(text, "true"), CONCURRENT)
    results = [cache_stack.wait(submission_id) for submission_id in submitted]

    first = results[0]["dependencies"]
    assert f"{name} is broken" in first["stderr"]
    for result in results:
        assert result["status"] == "DEPENDENCIES_FAILED", result
        assert result["dependencies"] == first
        assert result["run"] is None
    entry = dependency(cache_stack, env_id(cache_stack, text))
    assert entry["status"] == "failed"
    assert entry["build_count"] == 1
    assert entry["queued"] == 0


def test_failed_build_cached_until_ttl(
    cache_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"x-{token()}"
    # The build takes 1 s, so the concurrent retries below all arrive while it runs.
    text = cutor_nix(broken(name, build_seconds=1))
    environment = env_id(cache_stack, text)
    first = cache_stack.run(submission(text, "true"))
    assert first["status"] == "DEPENDENCIES_FAILED", first

    for _ in range(3):
        again = cache_stack.run(submission(text, "true"))
        assert again["status"] == "DEPENDENCIES_FAILED", again
        assert again["dependencies"] == first["dependencies"]
    assert dependency(cache_stack, environment)["build_count"] == 1

    monkeypatch.setattr(cache_stack.settings, "failed_build_ttl", 1.0)
    time.sleep(1.5)
    retried = submit_together(cache_stack, submission(text, "true"), CONCURRENT)

    for submission_id in retried:
        result = cache_stack.wait(submission_id)
        assert result["status"] == "DEPENDENCIES_FAILED", result
        assert f"{name} is broken" in result["dependencies"]["stderr"]
    assert dependency(cache_stack, environment)["build_count"] == 2


def test_different_environments_build_in_parallel(cache_stack: Stack) -> None:
    assert cache_stack.settings.build_concurrency >= 2
    names = [f"x-{token()}", f"x-{token()}"]
    texts = [cutor_nix(tool(name, build_seconds=3)) for name in names]

    bodies = [submission(text, name) for text, name in zip(texts, names, strict=True)]
    submitted = [cache_stack.submit(body) for body in bodies]
    for submission_id in submitted:
        assert cache_stack.wait(submission_id)["status"] == "FINISHED"

    first, second = (dependency(cache_stack, env_id(cache_stack, text)) for text in texts)
    # Each build takes 3 s, so the two overlap only if they ran at the same time.
    assert _started(first) < _finished(second)
    assert _started(second) < _finished(first)


def _started(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["build_started_at"]))


def _finished(entry: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(entry["built_at"]))
