"""The cache manager function: takes S3 event records of listing and deletion requests."""

from __future__ import annotations

from typing import Any

from cutor import keys
from cutor.cache_manager import CacheManager
from cutor.events import routed_records


def handle(event: dict[str, Any], manager: CacheManager) -> None:
    for route, request_id in routed_records(event):
        if route is keys.Route.LISTING_REQUESTED:
            manager.on_listing_requested(request_id)
        elif route is keys.Route.DELETION_REQUESTED:
            manager.on_deletion_requested(request_id)
