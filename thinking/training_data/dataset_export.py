"""``tingshuo data export``: stored conversations to the files a fine-tuning tool loads.

Chat formats (``llama-factory``, ``openai``, ``alpaca``): conversations become examples
(training_examples.py: bad pairs left out, the conversation cut there), each example is measured
with the target model's chat template and tokenizer and windowed to ``cutoff_len``
(token_windows.py), whole conversations are held out for eval (dataset_split.py), and the
format's writer puts them down. ``asr``: the users' recorded utterances with their final
transcripts (asr_export.py). Either way a summary comes back and is written beside the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from thinking.training_data.alpaca_export import write_alpaca
from thinking.training_data.asr_export import asr_utterances, write_asr
from thinking.training_data.dataset_records import StoredConversation
from thinking.training_data.dataset_split import eval_conversations, split_by_conversation
from thinking.training_data.export_summary import ExportSummary
from thinking.training_data.llama_factory_export import write_llama_factory
from thinking.training_data.openai_export import write_openai
from thinking.training_data.token_windows import TokenCounter, fit_to_cutoff
from thinking.training_data.training_examples import TOOL_CALLS_UNSUPPORTED, ChatExample, chat_examples

ChatWriter = Callable[[Path, dict[str, list[ChatExample]]], list[Path]]
CHAT_WRITERS: dict[str, ChatWriter] = {"llama-factory": write_llama_factory, "openai": write_openai,
                                       "alpaca": write_alpaca}
FORMATS = (*CHAT_WRITERS, "asr")
OPENAI_MINIMUM_EXAMPLES = 10


def export_dataset(conversations: Sequence[StoredConversation], *, fmt: str, out_dir: Path | str,
                   counter: TokenCounter | None = None, cutoff_len: int = 2048, eval_fraction: float = 0.0,
                   include_bad: bool = False, seed: int = 0, store_root: Path | str | None = None) -> ExportSummary:
    """Write the export into ``out_dir`` (created if needed) and return what it did.

    ``counter`` (the target model's template and tokenizer) is required by the chat formats;
    ``store_root`` (where the store's relative audio paths start) by ``asr``. ``eval_fraction``
    above 0 holds out that share of the conversations (at least one, never all).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"--split must be in [0, 1): the share of conversations held out, not {eval_fraction}")
    if fmt == "asr" and store_root is None:
        raise ValueError("the asr export needs the store's directory (its audio paths are relative to it)")
    if fmt != "asr" and counter is None:
        raise ValueError(f"the {fmt} export needs the target model's tokenizer to measure examples")
    if fmt != "asr" and cutoff_len <= 0:
        raise ValueError(f"--cutoff-len must be a positive number of tokens, not {cutoff_len}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "asr":
        summary = _export_asr(conversations, out, Path(store_root), eval_fraction, seed)
    else:
        summary = _export_chat(conversations, fmt, out, counter, cutoff_len, eval_fraction, include_bad, seed)
    summary.write()
    return summary


def _export_chat(conversations: Sequence[StoredConversation], fmt: str, out: Path, counter: TokenCounter,
                 cutoff_len: int, eval_fraction: float, include_bad: bool, seed: int) -> ExportSummary:
    summary = ExportSummary(fmt=fmt, out_dir=out, cutoff_len=cutoff_len, conversations=len(conversations))
    examples: list[ChatExample] = []
    for conversation in conversations:
        built = chat_examples(conversation, include_bad=include_bad, tool_calls=fmt != "alpaca")
        summary.dropped.update(built.left_out)
        summary.cuts += built.cuts
        for example in built.examples:
            fitted = fit_to_cutoff(example, counter, cutoff_len)
            summary.dropped.update(fitted.dropped)
            if fitted.windowed:
                summary.windowed += 1
                summary.windows += len(fitted.examples)
            examples += fitted.examples
    train, held_out = _split(summary, examples, eval_fraction, seed)
    parts = {"train": train, **({"eval": held_out} if held_out else {})}
    summary.files += CHAT_WRITERS[fmt](out, parts)
    summary.examples = len(examples)
    summary.eval_examples = len(held_out)
    summary.turns = len({(e.conversation_id, turn.item_id) for e in examples for turn in e.turns})
    summary.lengths = [e.tokens for e in train + held_out]
    if fmt == "openai" and 0 < len(train) < OPENAI_MINIMUM_EXAMPLES:
        summary.notes.append(f"OpenAI fine-tuning takes at least {OPENAI_MINIMUM_EXAMPLES} training examples; "
                             f"this set has {len(train)}")
    if fmt == "alpaca" and summary.dropped.get(TOOL_CALLS_UNSUPPORTED):
        summary.notes.append("Alpaca cannot carry tool calls: use --format llama-factory or openai to keep them")
    return summary


def _export_asr(conversations: Sequence[StoredConversation], out: Path, store_root: Path, eval_fraction: float,
                seed: int) -> ExportSummary:
    summary = ExportSummary(fmt="asr", out_dir=out, length_unit="seconds", conversations=len(conversations))
    found = asr_utterances(conversations, store_root)
    summary.dropped.update(found.dropped)
    train, held_out = _split(summary, found.utterances, eval_fraction, seed)
    summary.files += write_asr(out, {"train": train, **({"eval": held_out} if held_out else {})})
    summary.examples = summary.turns = len(found.utterances)
    summary.eval_examples = len(held_out)
    summary.lengths = [u.duration_s for u in train + held_out]
    corrected = sum(u.corrected for u in found.utterances)
    if found.utterances:
        summary.notes.append(f"{corrected} of {len(found.utterances)} transcripts corrected by a person; "
                             "the rest are the recogniser's own")
    elif not found.dropped:
        summary.notes.append("no turn has its audio kept: the server keeps it with data.record = \"audio\"")
    return summary


def _split(summary: ExportSummary, items: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    ids = {item.conversation_id for item in items}
    held_out_ids = eval_conversations(ids, eval_fraction, seed)
    summary.conversations_exported = len(ids)
    summary.eval_conversations = len(held_out_ids)
    if eval_fraction > 0 and not held_out_ids:
        summary.notes.append(f"--split {eval_fraction}: {len(ids)} conversation(s) exported, too few to hold "
                             "one out; no eval set written")
    return split_by_conversation(items, held_out_ids)
