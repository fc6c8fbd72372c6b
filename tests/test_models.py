"""Submission models: name rules, limits merging, and how results are shown."""

from __future__ import annotations

import base64

import pytest
from cutor.errors import InvalidRequest
from cutor.limits import LimitOverrides, default_limit_table, maximum_limit_table
from cutor.models import PhaseResult, SubmissionRequest, check_file_name
from pydantic import ValidationError


@pytest.mark.parametrize("name", ["run.sh", "src/main.c", "a b/ü.txt", "-rf", ".hidden"])
def test_valid_file_names(name: str) -> None:
    assert check_file_name(name) == name


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "..", ".", "a//b", "a/", "a\\b",
                                  "a\0b", "x" * 256, "a/" * 600])
def test_invalid_file_names(name: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        check_file_name(name)


def test_request_needs_run_script() -> None:
    with pytest.raises(ValidationError, match=r"run\.sh"):
        SubmissionRequest.model_validate({"files": [{"name": "main.py", "content": ""}]})


def test_cutor_nix_text() -> None:
    request = SubmissionRequest.model_validate({"files": [
        {"name": "run.sh", "content": ""}, {"name": "cutor.nix", "content": "[ ]"}]})
    assert request.cutor_nix == "[ ]"


def test_limits_merge_keeps_other_defaults() -> None:
    merged = default_limit_table().merged(
        LimitOverrides.model_validate({"run": {"wall_time": 2}})
    )
    assert merged.run.wall_time == 2
    assert merged.run.memory == default_limit_table().run.memory
    assert merged.compile == default_limit_table().compile


def test_limits_above_maximum_name_the_field() -> None:
    merged = default_limit_table().merged(
        LimitOverrides.model_validate({"compile": {"processes": 100000}})
    )
    with pytest.raises(InvalidRequest) as raised:
        merged.check_within(maximum_limit_table(), "limits")
    assert raised.value.field == "limits.compile.processes"


def test_phase_result_shows_replaced_utf8_or_exact_base64() -> None:
    result = PhaseResult.from_bytes(b"ok \xff", b"")
    assert result.to_json(raw_base64=False)["stdout"] == "ok \ufffd"
    assert base64.b64decode(str(result.to_json(raw_base64=True)["stdout"])) == b"ok \xff"
