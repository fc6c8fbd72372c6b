"""The cache builder function: takes S3 event records of created build requests."""

from __future__ import annotations

from typing import Any

from cutor import keys
from cutor.cache_builder import CacheBuilder
from cutor.events import routed_records


def handle(event: dict[str, Any], builder: CacheBuilder) -> None:
    for route, environment_id in routed_records(event):
        if route is keys.Route.BUILD_REQUESTED:
            builder.on_build_requested(environment_id)
