"""The local function runner: an honest stand-in for the cloud's S3 event triggers.

In AWS, S3 notifications invoke the functions. Locally, MinIO sends the same standard
S3 event records to this runner's webhook on 127.0.0.1 (a MinIO notification target with
a bearer token), and the runner invokes the same function entry points with bounded
concurrency. Notifications are
at-least-once, so the runner also sweeps the bucket on start and every
``sweep_interval`` seconds for work whose event it missed; the functions are idempotent,
so a duplicate costs a few reads.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cutor_functions import cache_builder as cache_builder_function
from cutor_functions import executor as executor_function

from cutor import builds, keys
from cutor.cache_builder import CacheBuilder
from cutor.errors import CutorError
from cutor.events import make_event, parse_records
from cutor.executor import Executor
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.webhook import WebhookReceiver

logger = logging.getLogger(__name__)



class LocalRunner:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.executor = Executor(settings, store)
        self.builder = CacheBuilder(settings, store)
        self.pool = ThreadPoolExecutor(settings.runner_concurrency, thread_name_prefix="function")
        self.build_slots = threading.BoundedSemaphore(settings.build_concurrency)
        self.stopping = threading.Event()
        self.receiver = WebhookReceiver(settings.webhook_address, self.dispatch)

    @property
    def webhook_url(self) -> str:
        return self.receiver.url

    @property
    def webhook_token(self) -> str:
        return self.receiver.token

    def start_receiver(self) -> None:
        """Accept events; MinIO needs the webhook up before it starts sending to it."""
        threading.Thread(target=self._serve_webhook, daemon=True, name="webhook").start()

    def start(self) -> None:
        self.remove_stale_containers()
        threading.Thread(target=self._sweep_periodically, daemon=True, name="sweep").start()
        logger.info("local runner started as worker %s", self.settings.worker_name())

    def stop(self) -> None:
        self.stopping.set()
        self.receiver.shutdown()
        self.pool.shutdown(wait=True, cancel_futures=False)
        logger.info("local runner stopped")

    def remove_stale_containers(self) -> None:
        """Remove sandbox containers a previous run of this worker left behind."""
        label = f"label=cutor.worker={self.settings.worker_name()}"
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=cutor.sandbox=1", "--filter", label],
            capture_output=True, text=True, check=False,
        )
        stale = listed.stdout.split()
        if stale:
            logger.warning("removing %d stale sandbox containers", len(stale))
            subprocess.run(["docker", "rm", "-f", *stale], capture_output=True, check=False)

    def dispatch(self, event: dict[str, Any]) -> None:
        for record in parse_records(event):
            routed = keys.route(record.key) if record.is_created else None
            if routed is None:
                continue
            single = make_event(record.bucket, record.key, record.event_name)
            if routed[0] is keys.Route.BUILD_REQUESTED:
                self.pool.submit(self._invoke_builder, single)
            else:
                self.pool.submit(self._invoke_executor, single)

    def _invoke_executor(self, event: dict[str, Any]) -> None:
        try:
            executor_function.handle(event, self.executor)
        except Exception:
            logger.exception("executor failed on %s", event["Records"][0]["s3"]["object"]["key"])

    def _invoke_builder(self, event: dict[str, Any]) -> None:
        with self.build_slots:
            try:
                cache_builder_function.handle(event, self.builder)
            except Exception:
                logger.exception("cache builder failed on %s",
                                 event["Records"][0]["s3"]["object"]["key"])

    def _serve_webhook(self) -> None:
        self.receiver.serve_forever(poll_interval=0.5)

    def _sweep_periodically(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sweep()
            except CutorError as error:
                logger.warning("sweep failed: %s", error)
            self.stopping.wait(self.settings.sweep_interval)

    def sweep(self) -> None:
        """Re-dispatch submissions that are not final and builds that have no result."""
        bucket = self.settings.bucket
        count = 0
        for key in self.store.list_keys(keys.PENDING_PREFIX):
            submission_id = key.removeprefix(keys.PENDING_PREFIX)
            self.dispatch(make_event(bucket, keys.submission_request(submission_id)))
            count += 1
        for key in self.store.list_keys(keys.ENVIRONMENTS_PREFIX):
            if key.endswith("/request.json"):
                environment_id = key.split("/")[1]
                if builds.load_result(self.store, environment_id) is None:
                    self.dispatch(make_event(bucket, key))
                    count += 1
        if count:
            logger.info("sweep re-dispatched %d objects", count)
