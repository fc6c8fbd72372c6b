"""The API function: the Starlette app, built from the environment's settings."""

from __future__ import annotations

from cutor.api import create_app
from cutor.settings import Settings
from cutor.storage import ObjectStore
from starlette.applications import Starlette


def make_app() -> Starlette:
    """Build the app; uvicorn calls this with ``--factory cutor_functions.api:make_app``."""
    settings = Settings()
    return create_app(settings, ObjectStore(settings))
