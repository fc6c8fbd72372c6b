"""The cache manager function: takes S3 event records of created listing and deletion requests."""

from __future__ import annotations

from typing import Any

from cutor import keys
from cutor.cache_manager import CacheManager
from cutor.events import parse_records


def handle(event: dict[str, Any], manager: CacheManager) -> None:
    for record in parse_records(event):
        routed = keys.route(record.key) if record.is_created else None
        if routed is None:
            continue
        route, request_id = routed
        if route is keys.Route.LISTING_REQUESTED:
            manager.on_listing_requested(request_id)
        elif route is keys.Route.DELETION_REQUESTED:
            manager.on_deletion_requested(request_id)
