"""The ``cutor`` command: run the local stack, submit a folder, wait for the result."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger("cutor")

FINAL = {"FINISHED", "DEPENDENCIES_FAILED", "COMPILE_FAILED", "INTERNAL_ERROR"}


def command_up(arguments: argparse.Namespace) -> int:
    """Start MinIO, the function runner and the API in this process, until SIGTERM."""
    import uvicorn

    from cutor.api import create_app
    from cutor.minio_server import WEBHOOK_ARN, MinioServer, ensure_credentials
    from cutor.runner import LocalRunner
    from cutor.settings import Settings
    from cutor.storage import ObjectStore

    settings = Settings()
    minio = MinioServer(settings.state_dir, settings.minio_address)
    ensure_credentials(minio.credentials_path)
    settings = settings.model_copy(update={"storage_endpoint": minio.endpoint})
    store = ObjectStore(settings)
    runner = LocalRunner(settings, store)
    runner.start_receiver()
    minio.start(webhook=(runner.webhook_url, runner.webhook_token))
    store.ensure_bucket()
    store.send_created_events_to(WEBHOOK_ARN)
    runner.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        # No access log: clients poll, and one line per poll would flood the log.
        uvicorn.run(create_app(settings, store), host=settings.api_host, port=settings.api_port,
                    log_level="info", access_log=False)
    finally:
        runner.stop()
        minio.stop()
    return 0


def command_keys(arguments: argparse.Namespace) -> int:
    """Create, list or revoke API keys in the bucket."""
    from cutor import auth
    from cutor.settings import Settings
    from cutor.storage import ObjectStore

    store = ObjectStore(Settings())
    if arguments.action == "create":
        key, text = auth.create_key(
            store, arguments.name, operator=arguments.operator,
            max_concurrent=arguments.max_concurrent,
            requests_per_minute=arguments.requests_per_minute,
        )
        print(f"created API key {key.id} ({key.name}); it is shown only once:\n{text}")
    elif arguments.action == "list":
        for key in auth.list_keys(store):
            role = "operator" if key.operator else "client"
            print(f"{key.id}  {role:8}  {key.max_concurrent:3} concurrent  "
                  f"{key.requests_per_minute:5}/min  {key.name}")
    else:
        auth.revoke_key(store, arguments.key_id)
        print(f"revoked API key {arguments.key_id}")
    return 0


def read_folder(folder: Path) -> list[dict[str, str]]:
    """Read a folder's files; hidden ones (.git, .env, .stdin) and symlinks are skipped."""
    files = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in name.split("/")):
            continue
        if path.is_symlink():
            logger.warning("skipping symlink %s", name)
            continue
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            files.append({"name": name, "content": data.decode()})
        except UnicodeDecodeError:
            files.append({"name": name, "content": base64.b64encode(data).decode(),
                          "encoding": "base64"})
    return files


def command_submit(arguments: argparse.Namespace) -> int:
    """Submit a folder, poll until the submission is final, print the result."""
    folder = Path(arguments.folder)
    if not (folder / "run.sh").is_file():
        print(f"cutor: {folder} has no run.sh; a submission needs one", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"files": read_folder(folder), "args": arguments.args}
    if arguments.stdin:
        body["inputs"] = Path(arguments.stdin).read_text()
    if arguments.env:
        body["env"] = dict(item.split("=", 1) for item in arguments.env)
    headers = {"Authorization": f"Bearer {arguments.key}"} if arguments.key else {}
    try:
        with httpx.Client(base_url=arguments.url, timeout=30, headers=headers) as client:
            response = client.post("/submissions", json=body)
            if response.status_code != 202:
                print(f"cutor: submission rejected: {response.status_code} {response.text}",
                      file=sys.stderr)
                return 1
            submission_id = response.json()["id"]
            result = poll(client, submission_id, arguments.timeout)
    except httpx.HTTPError as error:
        print(f"cutor: cannot reach the API at {arguments.url}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0 if result.get("status") == "FINISHED" else 1


def poll(client: httpx.Client, submission_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        result: dict[str, Any] = client.get(f"/submissions/{submission_id}").json()
        if result.get("status") in FINAL or time.monotonic() > deadline:
            return result
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cutor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run MinIO, the function runner and the API")
    up.set_defaults(handler=command_up)

    submit = commands.add_parser("submit", help="submit a folder and print the result")
    submit.add_argument("folder", help="folder with run.sh and the other files")
    submit.add_argument("args", nargs="*", help="arguments passed to run.sh")
    submit.add_argument("--url", default="http://127.0.0.1:8000", help="API base URL")
    submit.add_argument("--stdin", help="file whose content is the run phase's stdin")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for compile.sh and run.sh; repeatable")
    submit.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for a final status")
    submit.add_argument("--key", default=os.environ.get("CUTOR_API_KEY"),
                        help="API key (default: $CUTOR_API_KEY); not needed in open mode")
    submit.set_defaults(handler=command_submit)

    keys_parser = commands.add_parser("keys", help="manage API keys (reads CUTOR_* settings)")
    key_actions = keys_parser.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="create a key and print it once")
    create.add_argument("name", help="who or what the key is for")
    create.add_argument("--operator", action="store_true",
                        help="may read every submission and delete environments")
    create.add_argument("--max-concurrent", type=int, default=8,
                        help="unfinished submissions the key may have at once")
    create.add_argument("--requests-per-minute", type=int, default=120,
                        help="requests per minute the key may send")
    key_actions.add_parser("list", help="list keys (never their secrets)")
    revoke = key_actions.add_parser("revoke", help="delete a key")
    revoke.add_argument("key_id", help="the id that 'list' shows")
    keys_parser.set_defaults(handler=command_keys)

    # Options may stand between the folder and run.sh's arguments, which argparse leaves
    # over after the positional list; they belong to run.sh. (parse_intermixed_args
    # would do this, but Python 3.11 rejects it for a parser with subcommands.)
    arguments, extra = parser.parse_known_args(argv)
    if extra and arguments.command != "submit":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        arguments.args = [*arguments.args, *extra]
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    handler = arguments.handler
    result: int = handler(arguments)
    return result


if __name__ == "__main__":
    sys.exit(main())
