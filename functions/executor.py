"""The executor function: takes S3 event records of created submissions and build results."""

from __future__ import annotations

from typing import Any

from cutor import keys
from cutor.events import routed_records
from cutor.executor import Executor


def handle(event: dict[str, Any], executor: Executor) -> None:
    for route, identifier in routed_records(event):
        if route is keys.Route.SUBMISSION_CREATED:
            executor.on_submission_created(identifier)
        elif route is keys.Route.BUILD_FINISHED:
            executor.on_build_finished(identifier)
