"""The ``tingshuo`` console script: ``serve``, ``models``, ``config``, ``kb``, ``data``, ``voice`` (the server's commands,
``server.cli``) and ``bench``, ``soak`` (clients of a running server, ``benchmarks``).

It lives above both layers so that the server never imports the benchmarks.
"""

from __future__ import annotations

import sys

from server import cli as server_cli


def _bench(argv: list[str]) -> int:
    from benchmarks.harness import main as bench_main

    return bench_main(argv)


def _soak(argv: list[str]) -> int:
    from benchmarks.soak import main as soak_main

    return soak_main(argv)


CLIENT_COMMANDS: dict[str, tuple[str, server_cli.ClientCommand]] = {
    "bench": ("measure a Realtime server's latency (tingshuo bench --help)", _bench),
    "soak": ("N sessions talking for a fixed time (tingshuo soak --help)", _soak),
}


def main(argv: list[str] | None = None) -> int:
    return server_cli.main(sys.argv[1:] if argv is None else argv, client_commands=CLIENT_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
