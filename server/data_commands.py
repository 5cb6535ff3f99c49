"""``tingshuo data import|export|purge|correct``: the data stage's store at ``data.dir``.

``import`` reads chat logs people already have, cleans them (keeping the context) and stores them
beside the server's own recordings; ``export`` writes what the fine-tuning tools load;
``purge`` deletes; ``correct`` replaces a recognised transcript with a person's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.config import Config

IMPORT_FORMATS = ("chatgpt", "wechat-csv", "jsonl")
EXPORT_FORMATS = ("llama-factory", "openai", "alpaca", "asr")


def add_data_parser(sub: argparse._SubParsersAction, config_after: argparse.ArgumentParser) -> None:
    data = sub.add_parser("data", help="training data: import chat logs, export fine-tuning sets, purge")
    actions = data.add_subparsers(dest="data_action", required=True)
    imp = actions.add_parser("import", help="read a chat log, clean it and store it", parents=[config_after])
    imp.add_argument("file", type=Path)
    imp.add_argument("--from", dest="source", required=True, choices=IMPORT_FORMATS)
    imp.add_argument("--assistant", choices=["me", "them"], default="me",
                     help="wechat-csv: whose side the assistant learns to imitate (default: me)")
    imp.add_argument("--gap", default="30m", help="split sessions where the talk paused longer (default: 30m)")
    imp.add_argument("--no-redact", action="store_true", help="keep phone numbers, e-mail addresses and ID numbers")
    exp = actions.add_parser("export", help="write a training set the fine-tuning tools load", parents=[config_after])
    exp.add_argument("--format", dest="fmt", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--out", type=Path, required=True)
    exp.add_argument("--model", help="a GGUF file or a Hugging Face model folder (tokenizer.json and chat "
                                     "template); default: the embedded LLM")
    exp.add_argument("--cutoff-len", type=int, default=2048,
                     help="tokens per example at most; longer conversations are windowed (default: 2048)")
    exp.add_argument("--split", type=float, default=0.0, metavar="EVAL_FRACTION",
                     help="share of conversations held out for evaluation (default: 0, no split)")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--include-bad", action="store_true",
                     help="keep pairs flagged bad (empty answer, apology after a failure, cut by a barge-in)")
    exp.add_argument("--source", action="append", choices=["recorded", *IMPORT_FORMATS],
                     help="only conversations from this source; repeatable (default: all)")
    purge = actions.add_parser("purge", help="delete recordings and imports", parents=[config_after])
    what = purge.add_mutually_exclusive_group(required=True)
    what.add_argument("--older-than-days", type=float)
    what.add_argument("--user", help="everything kept of this user id")
    what.add_argument("--all", action="store_true")
    correct = actions.add_parser("correct", help="replace the transcript of a user utterance",
                                 parents=[config_after])
    correct.add_argument("item_id")
    correct.add_argument("text")


def run_data_command(config: Config, args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 nothing matched, 2 unusable input or store."""
    from thinking.conversation_logs.records import ExportFormatError
    from server.training_store import open_training_store
    from thinking.training_data.data_store import DataStoreError

    try:
        with open_training_store(config) as store:
            where = getattr(store, "where", store.root)
            if args.data_action == "import":
                return _import(store, args)
            if args.data_action == "export":
                return _export(store, args, config)
            if args.data_action == "purge":
                report = store.purge(older_than_days=args.older_than_days, user_id=args.user, everything=args.all)
                print(f"deleted {report.conversations} conversations, {report.turns} turns, "
                      f"{report.audio_files} audio files from {where}")
                return 0
            if store.correct(args.item_id, args.text):
                print(f"{args.item_id}: transcript corrected")
                return 0
            print(f"tingshuo: no recorded utterance {args.item_id!r} in {where}", file=sys.stderr)
            return 1
    except (DataStoreError, ExportFormatError, OSError, ValueError) as exc:
        print(f"tingshuo: {exc}", file=sys.stderr)
        return 2


def _import(store, args: argparse.Namespace) -> int:
    from thinking.conversation_logs.chatgpt_export import read_chatgpt_export
    from thinking.conversation_logs.cleaning import CleaningParams, clean, parse_gap
    from thinking.conversation_logs.jsonl_log import read_jsonl
    from thinking.conversation_logs.records import LoggedConversation
    from thinking.conversation_logs.wechat_csv import read_wechat_csv
    from thinking.training_data.log_imports import ImportReport, stored_conversation

    path: Path = args.file
    if args.source == "chatgpt":
        logged = read_chatgpt_export(path)
    elif args.source == "wechat-csv":
        logged = [LoggedConversation(id=path.stem, messages=read_wechat_csv(path, assistant=args.assistant))]
    else:
        logged = [LoggedConversation(id=path.stem, messages=read_jsonl(path))]
    cleaned, cleaning = clean(logged, CleaningParams(gap=parse_gap(args.gap), redact=not args.no_redact))
    report = ImportReport()
    for conversation in cleaned:
        stored = stored_conversation(conversation, args.source, report)
        if stored is not None:
            store.add_conversation(stored)
    print(f"{path}: {cleaning.conversations_in} conversations, {cleaning.messages_in} messages read")
    print(f"  split at gaps over {args.gap}: {cleaning.split_at_gaps}; merged into the message before: "
          f"{cleaning.merged}")
    for reason, n in sorted({**cleaning.dropped, **report.left_out}.items()):
        print(f"  left out, {reason}: {n}")
    for line in cleaning.redaction.lines():
        print(f"  redacted {line}")
    where = getattr(store, "where", store.root)
    print(f"stored {report.conversations} conversations, {report.turns} turns in {where}")
    return 0 if report.conversations else 1


def _export(store, args: argparse.Namespace, config: Config) -> int:
    from models.chat_template_tokens import load_tokenizer
    from thinking.training_data.dataset_export import export_dataset

    conversations = store.conversations(sources=tuple(args.source) if args.source else None)
    counter = None if args.fmt == "asr" else load_tokenizer(args.model, config)
    materialise = getattr(store, "materialise_audio", None)
    if args.fmt == "asr" and callable(materialise):  # PostgreSQL keeps the audio: the export reads files
        fetched = materialise(conversations, store.root)
        print(f"{fetched} audio files copied from {store.where} to {store.root}")
    summary = export_dataset(conversations, fmt=args.fmt, out_dir=args.out, counter=counter,
                             cutoff_len=args.cutoff_len, eval_fraction=args.split, include_bad=args.include_bad,
                             seed=args.seed, store_root=store.root)
    print(summary.text())
    return 0 if summary.examples else 1
