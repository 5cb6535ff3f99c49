"""The ``tingshuo`` console script: ``serve``, ``models``, ``config``, ``bench``, ``soak``, ``kb``."""

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
    serve.add_argument("--asr", choices=["whisper-base", "sherpa"], help="= --set models.asr=...")
    serve.add_argument("--llm", choices=["qwen2.5-0.5b", "smollm2-135m", "openai", "vllm"], help="= --set models.llm=...")
    serve.add_argument("--tts", choices=["embedded", "cosyvoice"], help="= --set models.tts=...")
    models = sub.add_parser("models", help="list, pull, verify and assemble models")
    models.add_argument("action", choices=["list", "pull", "verify", "assemble", "install"],
                        help="install is assemble's old name")
    models.add_argument("name", nargs="?", help="pull: a model key from `tingshuo models list`")
    models.add_argument("--sha256", help="pull: the archive's sha256 where none is pinned")
    models.add_argument("--trust-unverified", action="store_true",
                        help="pull: install without a checksum (the manifest then guards later changes)")
    sub.add_parser("config", help="print the effective configuration as JSON")
    bench = sub.add_parser("bench", help="measure a Realtime server's latency (tingshuo bench --help)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    soak = sub.add_parser("soak", help="N sessions talking for a fixed time (tingshuo soak --help)", add_help=False)
    soak.add_argument("soak_args", nargs=argparse.REMAINDER)
    kb = sub.add_parser("kb", help="the knowledge base answers cite (knowledge.path)")
    kb_sub = kb.add_subparsers(dest="kb_action", required=True)
    kb_sub.add_parser("add", help="add or update documents").add_argument(
        "paths", nargs="+", metavar="PATH", help=".md, .markdown, .txt or .pdf files, or folders of them")
    kb_sub.add_parser("list", help="the documents it holds")
    kb_search = kb_sub.add_parser("search", help="the passages that best answer a question")
    kb_search.add_argument("question")
    kb_search.add_argument("-k", type=int, help="passages at most (default: knowledge.top_k)")
    kb_sub.add_parser("remove", help="forget a document").add_argument("source", help="its path, as `kb list` shows")
    return parser


def _serve(config) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.engines import load_engines

    from server.thinking_services import load_thinking

    engines = load_engines(config)
    thinking = load_thinking(config)
    app = create_app(config, engines, thinking)
    logging.getLogger(__name__).info("listening on ws://%s:%d/v1/realtime", config.server.host, config.server.port)
    web.run_app(app, host=config.server.host, port=config.server.port, print=None,
                shutdown_timeout=config.server.shutdown_grace_s + 5)
    return 0


def _embedded_wanted(config) -> list:
    from models import embedded_store

    wanted = [embedded_store.WHISPER_BASE, embedded_store.PIPER_JOE,
              embedded_store.QWEN_05B if config.models.llm == "qwen2.5-0.5b" else embedded_store.SMOLLM2_135M]
    if config.models.tts_zh == "kokoro":
        from models.kokoro_tts import KOKORO_EMBEDDED

        wanted.append(KOKORO_EMBEDDED)
    return wanted


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.0f} MB"


def _models(config, args) -> int:
    from models import embedded_store
    from models.download_catalogue import downloadable_models, find_model
    from models.kokoro_tts import KOKORO_EMBEDDED
    from models.model_downloads import DownloadError, pull, verify_install
    from models.smart_turn import ensure_smart_turn_model

    model_dir = Path(config.models.model_dir)
    action = "assemble" if args.action == "install" else args.action
    if action == "list":
        print(f"{'model':42s} {'engine':12s} {'languages':14s} {'size':>9s}  {'installed':9s} licence")
        for m in (*embedded_store.EMBEDDED_MODELS.values(), KOKORO_EMBEDDED):
            installed = "yes" if not embedded_store.verify_model(m, model_dir) else "no"
            print(f"{m.key:42s} {'embedded':12s} {'':14s} {'pip':>9s}  {installed:9s} {m.licence}")
        for d in downloadable_models():
            installed = "yes" if d.installed(model_dir) else "no"
            print(f"{d.key:42s} {d.engine:12s} {','.join(d.languages):14s} {_size(d.size_bytes):>9s}  "
                  f"{installed:9s} {d.licence}")
        return 0
    if action == "pull":
        if not args.name:
            print("tingshuo models pull NAME: see `tingshuo models list`", file=sys.stderr)
            return 2
        try:
            model = find_model(args.name)
        except KeyError as exc:
            print(f"tingshuo: {exc.args[0]}", file=sys.stderr)
            return 2
        from tqdm import tqdm

        bar = None

        def progress(done: int, total: int | None) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=model.key, initial=0)
            bar.update(done - bar.n)

        try:
            folder = pull(model, model_dir, sha256=args.sha256, trust_unverified=args.trust_unverified,
                          progress=progress)
        except DownloadError as exc:
            print(f"tingshuo: {exc}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.close()
        print(f"{model.key}: {folder}")
        return 0
    failed = False
    for model in _embedded_wanted(config):
        if action == "assemble":
            print(f"{model.key}: {embedded_store.ensure_model(model, model_dir)}")
        else:
            problems = embedded_store.verify_model(model, model_dir)
            failed |= bool(problems)
            print(f"{model.key}: {'ok' if not problems else '; '.join(problems)}")
    if config.models.turn_model != "none":
        print(f"smart-turn-v3.2: {ensure_smart_turn_model(model_dir)}")
    if action == "verify":
        for d in downloadable_models():
            if (model_dir / d.archive_root).exists():
                problems = verify_install(d, model_dir)
                failed |= bool(problems)
                print(f"{d.key}: {'ok' if not problems else '; '.join(problems)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the harness has its own options and needs no server configuration
        from benchmarks.harness import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["soak"]:
        from benchmarks.soak import main as soak_main

        return soak_main(argv[1:])
    args = _parser().parse_args(argv)
    assignments = list(args.assignments)
    if getattr(args, "host", None):
        assignments.append(f"server.host={args.host}")
    if getattr(args, "port", None):
        assignments.append(f"server.port={args.port}")
    for engine in ("asr", "llm", "tts"):
        if getattr(args, engine, None):
            assignments.append(f"models.{engine}={getattr(args, engine)}")
    try:
        config = load_config(path=args.config, assignments=assignments)
    except (ConfigError, OSError) as exc:
        print(f"tingshuo: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        try:
            return _serve(config)
        except ConfigError as exc:  # a configured model is missing or unusable: say which, and stop
            print(f"tingshuo: cannot start: {exc}", file=sys.stderr)
            return 2
    if args.command == "models":
        return _models(config, args)
    if args.command == "kb":
        from server.kb_commands import run_kb_command

        return run_kb_command(config, args)
    print(json.dumps(dataclasses.asdict(config), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
