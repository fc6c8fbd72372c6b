"""The cache builder function: takes S3 event records of created build requests."""

from __future__ import annotations

import logging
from typing import Any

from cutor import keys
from cutor.cache_builder import CacheBuilder
from cutor.events import parse_records

logger = logging.getLogger(__name__)


def handle(event: dict[str, Any], builder: CacheBuilder) -> None:
    for record in parse_records(event):
        routed = keys.route(record.key) if record.is_created else None
        if routed is not None and routed[0] is keys.Route.BUILD_REQUESTED:
            builder.on_build_requested(routed[1])
