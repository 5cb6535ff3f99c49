"""The server's commands of the ``tingshuo`` console script: ``serve``, ``models``, ``config``, ``kb``, ``data``, ``voice``.

The console script itself is ``tingshuo.cli``: it adds ``bench`` and ``soak`` (clients of a running
server, in ``benchmarks``, a layer above this one) and hands every other command to :func:`main`.
``--config`` and ``--set`` configure the server: before the command or after it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from server.config import ConfigError, load_config


GLOBAL_OPTIONS = ("--config", "--set")
"""The options that configure the server, each taking one value."""

ClientCommand = Callable[[list[str]], int]
"""A command that is a client of the server (``bench``, ``soak``): its own arguments in, exit status out."""


def _global_option(arg: str) -> str | None:
    """The global option ``arg`` names (argparse also takes a unique prefix such as ``--conf``)."""
    name = arg.split("=", 1)[0]
    if len(name) < 3 or not name.startswith("--"):
        return None
    matches = [option for option in GLOBAL_OPTIONS if option.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def command_index(argv: list[str]) -> int:
    """Where the command is in ``argv``: the first argument after the leading ``--config``/``--set``
    options (``len(argv)`` when there is none)."""
    i = 0
    while i < len(argv) and _global_option(argv[i]):
        i += 1 if "=" in argv[i] else 2
    return min(i, len(argv))


def _config_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    # After the command the values go to their own attributes (a subparser's namespace would
    # otherwise replace the ones given before the command); main() joins the two.
    suffix = "_after" if after_command else ""
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument("--config", dest="config" + suffix, type=Path, default=default,
                        help="TOML config file (default: $TINGSHUO_CONFIG)")
    parser.add_argument("--set", dest="assignments" + suffix, action="append",
                        default=argparse.SUPPRESS if after_command else [], metavar="SECTION.FIELD=VALUE",
                        help="override one setting; repeatable")


def _parser(client_commands: Mapping[str, tuple[str, ClientCommand]] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingshuo", description="Self-hosted real-time voice assistant")
    _config_options(parser, after_command=False)
    config_after = argparse.ArgumentParser(add_help=False)
    _config_options(config_after, after_command=True)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the Realtime WebSocket server", parents=[config_after])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--asr", choices=["whisper-base", "sherpa"], help="= --set models.asr=...")
    serve.add_argument("--llm", choices=["qwen2.5-0.5b", "smollm2-135m", "openai", "vllm"], help="= --set models.llm=...")
    serve.add_argument("--tts", choices=["embedded", "cosyvoice"], help="= --set models.tts=...")
    models = sub.add_parser("models", help="list, pull, verify and assemble models", parents=[config_after])
    models.add_argument("action", choices=["list", "pull", "verify", "assemble", "install"],
                        help="install is assemble's old name")
    models.add_argument("name", nargs="?", help="pull: a model key from `tingshuo models list`")
    models.add_argument("--sha256", help="pull: the archive's sha256 where none is pinned")
    models.add_argument("--trust-unverified", action="store_true",
                        help="pull: install without a checksum (the manifest then guards later changes)")
    sub.add_parser("config", help="print the effective configuration as JSON", parents=[config_after])
    for name, (help_text, _run) in (client_commands or {}).items():
        # Listed for --help only: main() runs a client command before this parser sees it.
        sub.add_parser(name, help=help_text, add_help=False)
    kb = sub.add_parser("kb", help="the knowledge base answers cite (knowledge.path)")
    kb_sub = kb.add_subparsers(dest="kb_action", required=True)
    kb_sub.add_parser("add", help="add or update documents", parents=[config_after]).add_argument(
        "paths", nargs="+", metavar="PATH", help=".md, .markdown, .txt or .pdf files, or folders of them")
    kb_sub.add_parser("list", help="the documents it holds", parents=[config_after])
    kb_search = kb_sub.add_parser("search", help="the passages that best answer a question", parents=[config_after])
    kb_search.add_argument("question")
    kb_search.add_argument("-k", type=int, help="passages at most (default: knowledge.top_k)")
    kb_sub.add_parser("remove", help="forget a document", parents=[config_after]).add_argument(
        "source", help="its path, as `kb list` shows")
    from server.data_commands import add_data_parser

    add_data_parser(sub, config_after)
    voice = sub.add_parser("voice", help="prepare recordings of a speaker for a voice")
    voice_sub = voice.add_subparsers(dest="voice_action", required=True)
    prepare = voice_sub.add_parser("prepare", parents=[config_after],
                                   help="cut recordings into transcribed 2-10 s clips and a speaker prompt")
    prepare.add_argument("recordings", nargs="+", metavar="RECORDING", help="audio files (any rate, mono or stereo)")
    prepare.add_argument("--out", required=True, type=Path, help="folder for wavs/, metadata.csv, NAME.wav/.txt")
    prepare.add_argument("--name", default="speaker", help="the speaker prompt's name (default: speaker)")
    prepare.add_argument("--language", choices=["auto", "en", "zh"], default="auto",
                         help="the recordings' language (default: Whisper detects it per clip)")
    return parser


def _serve(config) -> int:
    from aiohttp import web

    from server.app import create_app
    from server.engines import load_engines

    from server.shared_state.fleet_state import check_state_services
    from server.shared_state.state_errors import SharedStateError
    from server.thinking_services import load_thinking
    from thinking.user_memory import MemoryStoreError

    from server.training_store import open_training_store
    from thinking.training_data.data_store import DataStoreError

    try:  # before minutes of model loading: a missing service is named at once
        check_state_services(config)
        training_store = open_training_store(config)  # PostgreSQL: connected and migrated now
    except (SharedStateError, DataStoreError) as exc:
        raise ConfigError(str(exc)) from None
    engines = load_engines(config)
    try:
        thinking = load_thinking(config)
    except MemoryStoreError as exc:
        raise ConfigError(str(exc)) from None
    app = create_app(config, engines, thinking, training_store=training_store)
    logging.getLogger(__name__).info("listening on ws://%s:%d/v1/realtime", config.server.host, config.server.port)
    web.run_app(app, host=config.server.host, port=config.server.port, print=None,
                shutdown_timeout=config.server.shutdown_grace_s + 5)
    return 0


def _embedded_wanted(config) -> list:
    from models import embedded_store

    wanted = [embedded_store.WHISPER_BASE, embedded_store.PIPER_JOE,
              embedded_store.QWEN_05B if config.models.llm == "qwen2.5-0.5b" else embedded_store.SMOLLM2_135M]
    if config.models.tts_zh == "kokoro":
        from models.kokoro_tts import KOKORO_EMBEDDED, KOKORO_ZH_VOICES

        wanted += [KOKORO_EMBEDDED, KOKORO_ZH_VOICES]
    return wanted


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.0f} MB"


class PullProgress:
    """``models pull``'s progress on stderr, with no dependency: one line, rewritten in place on a
    terminal and printed every few seconds elsewhere (a log), always ending with the last count."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_line_at = float("-inf")
        self._last: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        self._last = (done, total)
        now = time.monotonic()
        if now - self._last_line_at >= (0.5 if self._interactive else 5.0):
            self._last_line_at = now
            self._write(done, total)

    def _write(self, done: int, total: int | None, end: str = "") -> None:
        line = f"{self.label}: {done / 2**20:,.1f} MB"
        if total:
            line += f" of {total / 2**20:,.1f} MB ({100 * done / total:.0f}%)"
        self.stream.write("\r" + line + end if self._interactive else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._last is not None:
            self._write(*self._last, end="\n")


def _models(config, args) -> int:
    from models import embedded_store
    from models.download_catalogue import downloadable_models, find_model
    from models.kokoro_tts import KOKORO_EMBEDDED, KOKORO_ZH_VOICES
    from models.model_downloads import DownloadError, pull, verify_install
    from models.smart_turn import ensure_smart_turn_model

    model_dir = Path(config.models.model_dir)
    action = "assemble" if args.action == "install" else args.action
    if action == "list":
        print(f"{'model':42s} {'engine':12s} {'languages':14s} {'size':>9s}  {'installed':9s} licence")
        for m in (*embedded_store.EMBEDDED_MODELS.values(), KOKORO_EMBEDDED, KOKORO_ZH_VOICES):
            installed = "yes" if not embedded_store.verify_model(m, model_dir) else "no"
            source = "npm" if m is KOKORO_ZH_VOICES else "pip"
            print(f"{m.key:42s} {'embedded':12s} {'':14s} {source:>9s}  {installed:9s} {m.licence}")
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
        progress = PullProgress(model.key)
        try:
            folder = pull(model, model_dir, sha256=args.sha256, trust_unverified=args.trust_unverified,
                          progress=progress)
        except DownloadError as exc:
            print(f"tingshuo: {exc}", file=sys.stderr)
            return 1
        finally:
            progress.close()
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


def main(argv: list[str] | None = None,
         client_commands: Mapping[str, tuple[str, ClientCommand]] | None = None) -> int:
    """Run one command. ``client_commands`` (name: (help, run)) are the commands that talk to a
    running server instead of configuring one; the console script ``tingshuo.cli`` passes ``bench``
    and ``soak``. They take their own options; ``--config``/``--set`` before them are refused."""
    argv = sys.argv[1:] if argv is None else argv
    client_commands = client_commands or {}
    at = command_index(argv)
    if at < len(argv) and argv[at] in client_commands:
        if at:
            print(f"tingshuo: --config and --set configure the server; `{argv[at]}` is a client of a running "
                  f"server and takes its own options (tingshuo {argv[at]} --help)", file=sys.stderr)
            return 2
        return client_commands[argv[at]][1](argv[at + 1:])
    args = _parser(client_commands).parse_args(argv)
    if args.command in client_commands:  # reached only past an option the parser does not know
        print(f"tingshuo: `{args.command}` takes its own options after it (tingshuo {args.command} --help)",
              file=sys.stderr)
        return 2
    assignments = [*args.assignments, *getattr(args, "assignments_after", [])]
    config_path = getattr(args, "config_after", None) or args.config
    if getattr(args, "config_after", None) and args.config:
        print("tingshuo: --config given twice", file=sys.stderr)
        return 2
    if getattr(args, "host", None):
        assignments.append(f"server.host={args.host}")
    if getattr(args, "port", None):
        assignments.append(f"server.port={args.port}")
    for engine in ("asr", "llm", "tts"):
        if getattr(args, engine, None):
            assignments.append(f"models.{engine}={getattr(args, engine)}")
    try:
        config = load_config(path=config_path, assignments=assignments)
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
    if args.command == "data":
        from server.data_commands import run_data_command

        return run_data_command(config, args)
    if args.command == "voice":
        from server.voice_prepare import run_voice_prepare

        return run_voice_prepare(args, config)
    print(json.dumps(dataclasses.asdict(config), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
