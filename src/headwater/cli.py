"""The `headwater` command: serve, migrate, keys, apps."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from headwater.config import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="headwater", description="Headwater server and admin tools")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="API processes (needs PostgreSQL beyond 1)")

    worker = commands.add_parser("worker", help="run a Celery worker for background jobs (needs HEADWATER_REDIS_URL)")
    worker.add_argument("--include", action="append", default=[], metavar="MODULE",
                        help="also import MODULE in the worker (e.g. one registering job kinds); repeatable")

    commands.add_parser("migrate", help="bring the database schema up to date")

    keys = commands.add_parser("keys", help="manage API keys of the default workspace")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create")
    create.add_argument("name")
    create.add_argument("--scope", action="append", choices=["admin", "chatbot", "knowledge"], dest="scopes")
    create.add_argument("--rate-limit", type=int)
    create.add_argument("--workspace", default=None)
    listing = key_commands.add_parser("list")
    listing.add_argument("--workspace", default=None)
    revoke = key_commands.add_parser("revoke")
    revoke.add_argument("key_id")
    revoke.add_argument("--workspace", default=None)

    apps = commands.add_parser("apps", help="import or export app definitions (JSON or YAML)")
    app_commands = apps.add_subparsers(dest="apps_command", required=True)
    importing = app_commands.add_parser("import")
    importing.add_argument("files", nargs="+", type=Path)
    importing.add_argument("--workspace", default=None)
    exporting = app_commands.add_parser("export")
    exporting.add_argument("app", help="app id or slug")
    exporting.add_argument("--output", "-o", type=Path, help="file (.json, .yaml); default stdout as YAML")
    exporting.add_argument("--workspace", default=None)

    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "worker":
        _worker(args)
    elif args.command == "migrate":
        asyncio.run(_migrate())
    elif args.command == "keys":
        asyncio.run(_keys(args))
    elif args.command == "apps":
        asyncio.run(_apps(args))


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    # The app's own settings (what it prints at first start, in every worker process) see the
    # address given on the command line too.
    os.environ["HEADWATER_HOST"], os.environ["HEADWATER_PORT"] = host, str(port)
    get_settings.cache_clear()
    print(f"Headwater listening on http://{host}:{port}", file=sys.stderr, flush=True)
    uvicorn.run(
        "headwater.server:create_app", factory=True, host=host, port=port, workers=args.workers,
        log_level="warning", access_log=False, proxy_headers=False, server_header=False,
        # Headwater's own handler (headwater.telemetry) formats uvicorn's records too; one line per request
        # comes from api.access, and idle WebSockets are pinged as often as idle SSE streams.
        log_config=None, ws_ping_interval=settings.sse_ping_seconds,
    )


def _worker(args: argparse.Namespace) -> None:
    """A Celery worker in the foreground: one asyncio loop, `background_concurrency` job threads."""
    settings = get_settings()
    if not settings.redis_url:
        print("error: headwater worker needs HEADWATER_REDIS_URL (the Redis the API processes queue jobs on)",
              file=sys.stderr)
        raise SystemExit(2)

    from celery.signals import worker_shutdown

    from headwater.queue.celery_app import QUEUE_NAME
    from headwater.worker import app

    argv = [
        "worker", "--pool", "threads", "--concurrency", str(settings.background_concurrency),
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", QUEUE_NAME,
        # A node name per process: several workers on one host stay distinguishable in `celery inspect`.
        "--hostname", f"headwater-{os.getpid()}@%h",
    ]
    if args.include:
        argv += ["--include", ",".join(args.include)]
    # worker_main returns nothing, whatever Celery's exit code (1 after an unrecoverable error at
    # start-up, e.g. the store unreachable): read it from the worker, so a supervisor sees the failure.
    exit_codes: list[int] = []
    worker_shutdown.connect(lambda sender, **_: exit_codes.append(sender.exitcode or 0), weak=False)
    app.worker_main(argv)
    raise SystemExit(exit_codes[-1] if exit_codes else 0)


async def _with_db(action):
    from headwater.boot import build_runtime

    runtime = await build_runtime(get_settings())
    try:
        async with runtime.sessionmaker() as db:
            return await action(runtime, db)
    finally:
        await runtime.engine.dispose()


async def _migrate() -> None:
    async def done(runtime, db):
        print("database is up to date")

    await _with_db(done)


def _workspace(args) -> str:
    from headwater.services.workspaces import DEFAULT_WORKSPACE_ID

    return args.workspace or DEFAULT_WORKSPACE_ID


async def _keys(args: argparse.Namespace) -> None:
    from headwater.services.keys import KeyService

    async def act(runtime, db):
        service = KeyService(db)
        if args.keys_command == "create":
            row, key = await service.create(_workspace(args), args.name, args.scopes or ["chatbot"], args.rate_limit)
            await db.commit()
            print(f"id: {row.id}\nscopes: {','.join(row.scopes)}\nkey (shown once): {key}")
        elif args.keys_command == "list":
            for row in await service.list(_workspace(args)):
                print(f"{row.id}  {row.prefix}...  {','.join(row.scopes):20}  {row.name}")
        else:
            await service.revoke(_workspace(args), args.key_id)
            await db.commit()
            print("revoked")

    await _run_reporting_errors(act)


async def _apps(args: argparse.Namespace) -> None:
    from headwater.services.apps import AppService
    from headwater.services.portable import export_app, import_app

    async def act(runtime, db):
        if args.apps_command == "import":
            for path in args.files:
                snapshot = await import_app(AppService(db), runtime, db, _workspace(args), _load_file(path))
                print(f"imported {path} as {snapshot.app.slug} ({snapshot.app.id}), version {snapshot.version.version}")
        else:
            document = await export_app(AppService(db), _workspace(args), args.app)
            text = _dump(document, args.output)
            if args.output:
                args.output.write_text(text)
            else:
                sys.stdout.write(text)

    await _run_reporting_errors(act)


async def _run_reporting_errors(action) -> None:
    from headwater.errors import HeadwaterError

    try:
        await _with_db(action)
    except HeadwaterError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        raise SystemExit(1) from None


def _load_file(path: Path) -> dict:
    try:
        text = path.read_text()
        # safe_load: an imported definition is data, never a constructor of Python objects.
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path} does not hold an app definition object")
    return data


def _dump(document: dict, output: Path | None) -> str:
    if output is not None and output.suffix == ".json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    main()
