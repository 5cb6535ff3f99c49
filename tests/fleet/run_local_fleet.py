"""Starts the fleet the tests use, for measuring by hand: PostgreSQL, Redis, two ``tingshuo serve``
workers (``state.backend = "redis+postgres"``) and the documented nginx site in front, all on free
ports under one folder; prints the addresses and runs until Ctrl-C (or SIGTERM), then stops them.

    .venv/bin/python -m tests.fleet.run_local_fleet --root var/fleet [--set section.field=value ...]

``--set`` settings go to both workers (``assistant.seed=7`` for a benchmark). ``--single`` starts
one worker with the default local state and no services instead, for the comparison run.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from tests.e2e.conftest import start_server
from tests.fleet.services import NginxServer, PostgresServer, RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--single", action="store_true", help="one worker, local state, no services")
    args = parser.parse_args()
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = {}
    for item in args.settings:
        name, _, value = item.partition("=")
        section, _, key = name.partition(".")
        env[f"TINGSHUO_{section.upper()}_{key.upper()}"] = value
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    services, workers = [], {}
    try:
        if args.single:
            (root / "worker").mkdir(exist_ok=True)
            workers["worker"] = start_server(root / "worker" / "server.log", **env)
            print(json.dumps({"worker": workers["worker"][1]}), flush=True)
        else:
            postgres, redis = PostgresServer(root / "postgres"), RedisServer(root / "redis")
            services += [postgres, redis]
            postgres.start()
            redis.start()
            fleet_env = {**env, "TINGSHUO_STATE_BACKEND": "redis+postgres", "TINGSHUO_STATE_REDIS_URL": redis.url,
                         "TINGSHUO_STATE_POSTGRES_URL": postgres.url, "TINGSHUO_SERVER_TRUSTED_PROXIES": "127.0.0.1"}
            for name in ("worker-a", "worker-b"):  # one after the other: two model loads at once crowd 2 cores
                (root / name).mkdir(exist_ok=True)
                workers[name] = start_server(root / name / "server.log", TINGSHUO_STATE_WORKER_ID=name, **fleet_env)
            nginx = NginxServer(root / "nginx", [url.removeprefix("http://") for _, url in workers.values()])
            services.append(nginx)
            nginx.start()
            print(json.dumps({"nginx": nginx.url, "ws": nginx.ws_url, "postgres": postgres.url, "redis": redis.url,
                              **{name: url for name, (_, url) in workers.items()},
                              **{f"{name}_pid": proc.pid for name, (proc, _) in workers.items()}}), flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc, _ in workers.values():
            proc.terminate()
        for proc, _ in workers.values():
            proc.wait(30)
        for service in reversed(services):
            service.stop()


if __name__ == "__main__":
    main()
