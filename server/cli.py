"""The ``tingshuo`` console script: ``serve``, ``models``, ``config``, ``bench``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from server.config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingshuo", description="Self-hosted real-time voice assistant")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $TINGSHUO_CONFIG)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one setting; repeatable")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the Realtime WebSocket server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    models = sub.add_parser("models", help="assemble and verify the embedded models")
    models.add_argument("action", choices=["install", "verify", "list"])
    sub.add_parser("config", help="print the effective configuration as JSON")
    bench = sub.add_parser("bench", help="measure a Realtime server's latency (tingshuo bench --help)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return parser


def _serve(config) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.engines import load_engines

    engines = load_engines(config)
    app = create_app(config, engines)
    logging.getLogger(__name__).info("listening on ws://%s:%d/v1/realtime", config.server.host, config.server.port)
    web.run_app(app, host=config.server.host, port=config.server.port, print=None)
    return 0


def _models(config, action: str) -> int:
    from models import embedded_store
    from models.smart_turn import ensure_smart_turn_model

    model_dir = Path(config.models.model_dir)
    wanted = [embedded_store.WHISPER_BASE, embedded_store.PIPER_JOE,
              embedded_store.QWEN_05B if config.models.llm == "qwen2.5-0.5b" else embedded_store.SMOLLM2_135M]
    if config.models.tts_zh == "kokoro":
        from models.kokoro_tts import KOKORO_EMBEDDED

        wanted.append(KOKORO_EMBEDDED)
    if action == "list":
        for m in embedded_store.EMBEDDED_MODELS.values():
            print(f"{m.key:36s} {m.directory:20s} {m.licence}")
        return 0
    failed = False
    for model in wanted:
        if action == "install":
            print(f"{model.key}: {embedded_store.ensure_model(model, model_dir)}")
        else:
            problems = embedded_store.verify_model(model, model_dir)
            failed |= bool(problems)
            print(f"{model.key}: {'ok' if not problems else '; '.join(problems)}")
    if config.models.turn_model != "none":
        print(f"smart-turn-v3.2: {ensure_smart_turn_model(model_dir)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the harness has its own options and needs no server configuration
        from benchmarks.harness import main as bench_main

        return bench_main(argv[1:])
    args = _parser().parse_args(argv)
    assignments = list(args.assignments)
    if getattr(args, "host", None):
        assignments.append(f"server.host={args.host}")
    if getattr(args, "port", None):
        assignments.append(f"server.port={args.port}")
    try:
        config = load_config(path=args.config, assignments=assignments)
    except (ConfigError, OSError) as exc:
        print(f"tingshuo: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return _serve(config)
    if args.command == "models":
        return _models(config, args.action)
    print(json.dumps(dataclasses.asdict(config), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
