"""The executor function: takes S3 event records of created submissions and build results."""

from __future__ import annotations

import logging
from typing import Any

from cutor import keys
from cutor.events import parse_records
from cutor.executor import Executor

logger = logging.getLogger(__name__)


def handle(event: dict[str, Any], executor: Executor) -> None:
    for record in parse_records(event):
        routed = keys.route(record.key) if record.is_created else None
        if routed is None:
            continue
        route, identifier = routed
        if route is keys.Route.SUBMISSION_CREATED:
            executor.on_submission_created(identifier)
        elif route is keys.Route.BUILD_FINISHED:
            executor.on_build_finished(identifier)
