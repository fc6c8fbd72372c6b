"""The local function runner: an honest stand-in for the cloud's S3 event triggers.

In AWS, S3 notifications invoke the functions. Locally, MinIO sends the same standard
S3 event records to this runner's webhook on 127.0.0.1 (a MinIO notification target with
a bearer token), and the runner invokes the same function entry points with bounded
concurrency. Notifications are
at-least-once, so the runner also sweeps the bucket on start and every
``sweep_interval`` seconds for work whose event it missed; the functions are idempotent,
so a duplicate costs a few reads. Every ``eviction_interval`` seconds it also runs an
eviction pass, which keeps the environment cache within ``cache_max_bytes``.

Each kind of function has a thread pool of its own. The executor's has
``runner_concurrency`` threads. The cache builder's has ``build_concurrency``, so at most
that many Nix builds run at once and builds waiting for a slot hold no executor thread.
The cache manager's serves listings and deletions while builds and submissions run.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cutor_functions import cache_builder as cache_builder_function
from cutor_functions import cache_manager as cache_manager_function
from cutor_functions import executor as executor_function

from cutor import builds, keys
from cutor.cache_builder import CacheBuilder
from cutor.cache_manager import CacheManager
from cutor.errors import CutorError
from cutor.events import make_event, parse_records
from cutor.eviction import Evictor
from cutor.executor import Executor
from cutor.settings import Settings
from cutor.storage import ObjectStore
from cutor.webhook import WebhookReceiver

logger = logging.getLogger(__name__)

CACHE_MANAGER_THREADS = 2
BUILDER_ROUTES = {keys.Route.BUILD_REQUESTED}
CACHE_MANAGER_ROUTES = {keys.Route.LISTING_REQUESTED, keys.Route.DELETION_REQUESTED}


class LocalRunner:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.executor = Executor(settings, store, spawn=self._spawn)
        self.builder = CacheBuilder(settings, store)
        self.cache_manager = CacheManager(settings, store)
        self.evictor = Evictor(settings, store)
        self.pool = ThreadPoolExecutor(settings.runner_concurrency, thread_name_prefix="function")
        self.build_pool = ThreadPoolExecutor(settings.build_concurrency, thread_name_prefix="build")
        self.cache_pool = ThreadPoolExecutor(CACHE_MANAGER_THREADS, thread_name_prefix="cache")
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
        threading.Thread(target=self._evict_periodically, daemon=True, name="eviction").start()
        logger.info("local runner started as worker %s", self.settings.worker_name())

    def stop(self) -> None:
        self.stopping.set()
        self.receiver.shutdown()
        for pool in (self.pool, self.build_pool, self.cache_pool):
            pool.shutdown(wait=True, cancel_futures=False)
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
            if routed[0] in BUILDER_ROUTES:
                self.build_pool.submit(self._invoke_builder, single)
            elif routed[0] in CACHE_MANAGER_ROUTES:
                self.cache_pool.submit(self._invoke_cache_manager, single)
            else:
                self.pool.submit(self._invoke_executor, single)

    def _spawn(self, task: Callable[[], None]) -> None:
        self.pool.submit(self._run_task, task)

    def _run_task(self, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception:
            # The executor's tasks log their own errors with the submission id.
            logger.exception("an executor task failed")

    def _invoke_executor(self, event: dict[str, Any]) -> None:
        try:
            executor_function.handle(event, self.executor)
        except Exception:
            logger.exception("executor failed on %s", event["Records"][0]["s3"]["object"]["key"])

    def _invoke_builder(self, event: dict[str, Any]) -> None:
        try:
            cache_builder_function.handle(event, self.builder)
        except Exception:
            logger.exception("cache builder failed on %s",
                             event["Records"][0]["s3"]["object"]["key"])

    def _invoke_cache_manager(self, event: dict[str, Any]) -> None:
        try:
            cache_manager_function.handle(event, self.cache_manager)
        except Exception:
            logger.exception("cache manager failed on %s",
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

    def _evict_periodically(self) -> None:
        while not self.stopping.wait(self.settings.eviction_interval):
            try:
                self.evictor.evict_to_budget("scheduled pass")
            except CutorError as error:
                logger.error("scheduled eviction pass failed: %s", error)

    def sweep(self) -> None:
        """Re-dispatch submissions that are not final and build requests still unanswered."""
        bucket = self.settings.bucket
        count = 0
        for key in self.store.list_keys(keys.PENDING_PREFIX):
            submission_id = key.removeprefix(keys.PENDING_PREFIX)
            self.dispatch(make_event(bucket, keys.submission_request(submission_id)))
            count += 1
        for key in self.store.list_keys(keys.ENVIRONMENTS_PREFIX):
            if key.endswith("/request.json"):
                environment_id = key.split("/")[1]
                if self._build_missing(environment_id):
                    self.dispatch(make_event(bucket, key))
                    count += 1
        if count:
            logger.info("sweep re-dispatched %d objects", count)

    def _build_missing(self, environment_id: str) -> bool:
        """Return True when the build request has no result of its generation yet."""
        request = builds.load_request(self.store, environment_id)
        result = builds.load_result(self.store, environment_id)
        return request is not None and (result is None or result.generation < request.generation)
