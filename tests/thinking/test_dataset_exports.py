"""``export_dataset`` end to end on a store written here, measured with the embedded Qwen2.5
tokenizer: each format's files checked against the rules of the tool that reads them.

LLaMA-Factory's own loader pulls in torch and transformers, so its documented rules are applied
here instead (hiyouga/LLaMA-Factory data/README.md and src/llamafactory/data/converter.py:
``dataset_info.json`` columns and tags, human/observation in odd positions and gpt/function_call
in even ones, an even count ending with gpt, a function_call value of ``{"name", "arguments"}``).
The OpenAI file is checked against the chat fine-tuning format (the fine-tuning guide's tool-call
example and the checks of the cookbook's chat fine-tuning data-prep notebook).
"""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import pytest

from thinking.training_data.data_store import TrainingDataStore
from thinking.training_data.dataset_export import export_dataset
from thinking.training_data.dataset_records import RecordedTurn, StoredConversation, ToolCallRecord
from thinking.training_data.dataset_split import eval_conversations
from thinking.training_data.training_examples import BARGE_IN_CUT, EMPTY_ANSWER, FAILURE_APOLOGY

GGUF = Path(__file__).resolve().parents[2] / "var" / "models" / "qwen2.5-0.5b" / "model.gguf"
CUTOFF = 256
CLOCK_REALTIME = {"type": "function", "name": "get_time", "description": "The current time in a timezone",
                  "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}},
                                 "required": ["timezone"]}}
TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
        "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}


def turn(tag: str, n: int, **fields) -> RecordedTurn:
    values = {"item_id": f"{tag}_item{n}", "user_text": f"[{tag}] question {n}: how is the weather today?",
              "answer_generated": f"[{tag}] answer {n}: sunny, with a light breeze.", "answer_heard": ""}
    return RecordedTurn(**(values | fields))


def pcm_silence(seconds: float, rate: int = 16_000) -> bytes:
    return b"\0\0" * int(seconds * rate)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[list[StoredConversation], Path]:
    root = tmp_path_factory.mktemp("store")
    with TrainingDataStore(root) as data:
        long_turns = [turn("long", i, user_text=f"[long] Tell me about planet {i} of the solar system, please.",
                           answer_generated=f"[long] Planet {i} is far away; its days are long and its nights are "
                                            "cold, and probes have visited it for decades.") for i in range(14)]
        data.add_conversation(StoredConversation(id="long", source="recorded", started_at=1.0, turns=long_turns,
                                                 instructions="You are a patient astronomy teacher."))
        data.add_conversation(StoredConversation(
            id="tools", source="recorded", started_at=2.0, tools=[CLOCK_REALTIME], instructions="Be brief.",
            turns=[turn("tools", 0, user_text="[tools] What time is it in Tokyo?",
                        tool_calls=[ToolCallRecord("get_time", '{"timezone": "Asia/Tokyo"}', "14:05", "call_tokyo")],
                        answer_generated="[tools] It is five past two in the afternoon."),
                   turn("tools", 1, user_text="[tools] Thanks!", answer_generated="[tools] You are welcome.")]))
        data.add_conversation(StoredConversation(
            id="bad", source="recorded", started_at=3.0, instructions="Be brief.",
            turns=[turn("bad", 0), turn("bad", 1, failure="llm timeout", answer_generated="Sorry, I lost that."),
                   turn("bad", 2), turn("bad", 3, interrupted=True, answer_heard="[bad] answer 3: sun"),
                   turn("bad", 4), turn("bad", 5, answer_generated="")]))
        voice = StoredConversation(id="voice", source="recorded", started_at=4.0, user_id="bob",
                                   instructions="Be brief.")
        for i, (seconds, language) in enumerate([(1.5, "en"), (0.75, "zh"), (2.0, "en")]):
            item = f"voice_item{i}"
            audio = data.write_wav("voice", item, "user", pcm_silence(seconds), 16_000)
            data.record_turn(voice, turn("voice", i, item_id=item, language=language, user_audio=audio,
                                         user_text=f"[voice] recognised words {i}"))
        data.record_turn(voice, turn("voice", 3, user_audio="audio/voice/gone.user.wav"))  # the file was purged
        assert data.correct("voice_item1", "[voice] what the person heard")
        for k in range(4):
            data.add_conversation(StoredConversation(id=f"small{k}", source="jsonl", started_at=5.0 + k,
                                                     turns=[turn(f"small{k}", 0), turn(f"small{k}", 1)]))
        return data.conversations(), root


@pytest.fixture(scope="module")
def qwen():
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing: run `tingshuo models install`")
    from models.chat_template_tokens import ChatTemplateTokenizer

    return ChatTemplateTokenizer.from_gguf(GGUF)


def export(store, qwen, fmt: str, out: Path, **options):
    conversations, root = store
    return export_dataset(conversations, fmt=fmt, out_dir=out, counter=qwen, cutoff_len=CUTOFF,
                          store_root=root, **({"eval_fraction": 0.0, "include_bad": False, "seed": 0} | options))


def conversation_tag(text: str) -> str:
    return text.split("]", 1)[0].lstrip("[")


# --- LLaMA-Factory ------------------------------------------------------------------------------


def check_sharegpt(record: dict) -> list[dict]:
    """LLaMA-Factory's rules for one sharegpt record; returns it as chat messages (how its
    converter reads it) for rendering through the chat template."""
    assert set(record) == {"conversations", "system", "tools"}
    assert isinstance(record["system"], str) and isinstance(record["tools"], str)
    messages = record["conversations"]
    assert messages and len(messages) % 2 == 0, "an even count: every prompt has its response"
    odd, even = ("human", "observation"), ("gpt", "function_call")
    chat: list[dict] = [{"role": "system", "content": record["system"]}] if record["system"] else []
    for position, message in enumerate(messages, start=1):
        assert set(message) == {"from", "value"} and isinstance(message["value"], str)
        assert message["from"] in (odd if position % 2 else even), f"{message['from']} at position {position}"
        if message["from"] == "function_call":
            call = json.loads(message["value"])
            assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)
            call_id = f"call_{position}"
            chat.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": call["name"],
                                                                 "arguments": json.dumps(call["arguments"])}}]})
        elif message["from"] == "observation":
            assert messages[position - 2]["from"] == "function_call", "a tool result answers the call before it"
            chat.append({"role": "tool", "tool_call_id": f"call_{position - 1}", "content": message["value"]})
        else:
            chat.append({"role": "user" if message["from"] == "human" else "assistant", "content": message["value"]})
    assert messages[0]["from"] == "human" and messages[-1]["from"] == "gpt" and messages[-1]["value"]
    return chat


def tools_of(record: dict) -> list[dict]:
    if not record["tools"]:
        return []
    tools = json.loads(record["tools"])
    assert all({"name", "description", "parameters"} <= set(tool) for tool in tools)
    return [{"type": "function", "function": tool} for tool in tools]  # as LLaMA-Factory's Qwen formatter wraps them


def load_llama_factory(out: Path) -> dict[str, list[dict]]:
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    datasets = {}
    for name, entry in info.items():
        if not name.startswith("tingshuo_"):
            continue
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
        assert entry["tags"] == TAGS
        datasets[name] = json.loads((out / entry["file_name"]).read_text(encoding="utf-8"))
        assert isinstance(datasets[name], list) and datasets[name]
    return datasets


def test_llama_factory_export_follows_the_sharegpt_rules_and_fits_the_cutoff(store, qwen, tmp_path):
    summary = export(store, qwen, "llama-factory", tmp_path)
    datasets = load_llama_factory(tmp_path)
    assert list(datasets) == ["tingshuo_train"]
    records = datasets["tingshuo_train"]
    assert len(records) == summary.examples
    for record in records:
        chat = check_sharegpt(record)
        assert qwen.count(chat, tools_of(record)) <= CUTOFF
    by_tag: dict[str, list[dict]] = {}
    for record in records:
        by_tag.setdefault(conversation_tag(record["conversations"][0]["value"]), []).append(record)
    assert len(by_tag["long"]) == summary.windows >= 3
    assert all(r["system"] == "You are a patient astronomy teacher." for r in by_tag["long"])
    (tools_record,) = by_tag["tools"]
    assert [m["from"] for m in tools_record["conversations"]] == [
        "human", "function_call", "observation", "gpt", "human", "gpt"]
    assert json.loads(tools_record["conversations"][1]["value"]) == {"name": "get_time",
                                                                     "arguments": {"timezone": "Asia/Tokyo"}}
    assert tools_record["conversations"][2]["value"] == "14:05"
    assert json.loads(tools_record["tools"]) == [{k: v for k, v in CLOCK_REALTIME.items() if k != "type"}]
    # Bad pairs left out by default, the conversation cut at each: three pieces of one pair each.
    assert [[m["value"] for m in r["conversations"] if m["from"] == "human"] for r in by_tag["bad"]] == [
        ["[bad] question 0: how is the weather today?"], ["[bad] question 2: how is the weather today?"],
        ["[bad] question 4: how is the weather today?"]]
    assert summary.dropped == {FAILURE_APOLOGY: 1, BARGE_IN_CUT: 1, EMPTY_ANSWER: 1}
    assert summary.cuts == 2
    # The corrected transcript is the user's words.
    voice_humans = [m["value"] for r in by_tag["voice"] for m in r["conversations"] if m["from"] == "human"]
    assert "[voice] what the person heard" in voice_humans and "[voice] recognised words 1" not in voice_humans


def test_llama_factory_split_holds_out_whole_conversations_and_keeps_other_datasets(store, qwen, tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}))
    summary = export(store, qwen, "llama-factory", tmp_path, eval_fraction=0.3, seed=7)
    datasets = load_llama_factory(tmp_path)
    assert set(datasets) == {"tingshuo_train", "tingshuo_eval"}
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["alpaca_en_demo"] == {"file_name": "alpaca_en_demo.json"}
    tags = {name: {conversation_tag(r["conversations"][0]["value"]) for r in records}
            for name, records in datasets.items()}
    assert tags["tingshuo_train"].isdisjoint(tags["tingshuo_eval"])
    assert len(tags["tingshuo_eval"]) == summary.eval_conversations == round(8 * 0.3)
    assert len(datasets["tingshuo_eval"]) == summary.eval_examples
    # Exported again without a split: the eval set of before is gone, not left to pass for this one's.
    export(store, qwen, "llama-factory", tmp_path)
    assert set(load_llama_factory(tmp_path)) == {"tingshuo_train"}
    assert not (tmp_path / "tingshuo_eval.json").exists()


def test_the_split_is_by_conversation_deterministic_with_its_seed():
    ids = [f"c{i}" for i in range(20)]
    held_out = eval_conversations(ids, 0.25, seed=3)
    assert len(held_out) == 5 and held_out == eval_conversations(reversed(ids), 0.25, seed=3)
    assert held_out != eval_conversations(ids, 0.25, seed=4)
    # A store that grew by one conversation moves at most one in or out of eval.
    assert len(eval_conversations(ids + ["c20"], 0.25, seed=3) ^ held_out) <= 2
    assert eval_conversations(["only"], 0.5) == set() and len(eval_conversations(["a", "b"], 0.01)) == 1
    with pytest.raises(ValueError):
        eval_conversations(ids, 1.0)


# --- OpenAI -------------------------------------------------------------------------------------

MESSAGE_KEYS = {"system": {"role", "content", "name"}, "user": {"role", "content", "name"},
                "assistant": {"role", "content", "name", "tool_calls", "weight"},
                "tool": {"role", "content", "tool_call_id"}}


def check_openai_example(example: dict) -> None:
    """The chat fine-tuning format: the cookbook's data-prep checks, with tool calls."""
    assert isinstance(example, dict) and set(example) <= {"messages", "tools", "parallel_tool_calls"}
    messages = example["messages"]
    assert isinstance(messages, list) and messages
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role = message["role"]
        assert role in MESSAGE_KEYS and set(message) <= MESSAGE_KEYS[role], message
        assert role != "system" or index == 0
        if role == "assistant" and "tool_calls" in message:
            assert not pending
            for call in message["tool_calls"]:
                assert set(call) == {"id", "type", "function"} and call["type"] == "function"
                assert set(call["function"]) == {"name", "arguments"}
                assert isinstance(json.loads(call["function"]["arguments"]), dict)  # JSON text
                pending.add(call["id"])
        elif role == "tool":
            assert message["tool_call_id"] in pending and isinstance(message["content"], str)
            pending.discard(message["tool_call_id"])
        else:
            assert isinstance(message["content"], str) and message["content"].strip()
        if "weight" in message:
            assert message["weight"] in (0, 1)
    assert not pending, "every call has its result"
    assert messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]
    assert messages[-1].get("weight", 1) == 1
    assert any(m["role"] == "user" for m in messages)
    for tool in example.get("tools", []):
        assert tool["type"] == "function" and {"name", "parameters"} <= set(tool["function"])


def test_openai_export_is_valid_fine_tuning_jsonl_within_the_cutoff(store, qwen, tmp_path):
    summary = export(store, qwen, "openai", tmp_path, eval_fraction=0.25, seed=1)
    lines = {part: (tmp_path / f"{part}.jsonl").read_text(encoding="utf-8").splitlines() for part in ("train", "eval")}
    examples = {part: [json.loads(line) for line in part_lines] for part, part_lines in lines.items()}
    assert len(examples["train"]) + len(examples["eval"]) == summary.examples
    assert len(examples["eval"]) == summary.eval_examples > 0
    tags = {}
    for part, part_examples in examples.items():
        for example in part_examples:
            check_openai_example(example)
            assert qwen.count(example["messages"], example.get("tools", [])) <= CUTOFF
        tags[part] = {conversation_tag(next(m for m in e["messages"] if m["role"] == "user")["content"])
                      for e in part_examples}
    assert tags["train"].isdisjoint(tags["eval"])
    everything = examples["train"] + examples["eval"]
    (with_tools,) = [e for e in everything if "tools" in e]
    assert with_tools["tools"] == [{"type": "function", "function": {
        k: v for k, v in CLOCK_REALTIME.items() if k != "type"}}]
    assert with_tools["messages"][2]["tool_calls"][0]["id"] == with_tools["messages"][3]["tool_call_id"] == "call_tokyo"
    # Windows of the long conversation: history repeated from the window before is weighted 0.
    long_windows = [e for e in everything if "[long]" in e["messages"][1]["content"]]
    assert len(long_windows) >= 3
    for window in long_windows[1:]:
        weights = [m.get("weight", 1) for m in window["messages"] if m["role"] == "assistant"]
        assert weights[0] == 0 and weights[-1] == 1 and weights == sorted(weights)


# --- Alpaca -------------------------------------------------------------------------------------


def test_alpaca_export_has_history_and_leaves_tool_turns_out(store, qwen, tmp_path):
    summary = export(store, qwen, "alpaca", tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["tingshuo_train"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output",
                                                 "system": "system", "history": "history"}
    assert "formatting" not in info["tingshuo_train"]  # alpaca is LLaMA-Factory's default
    records = json.loads((tmp_path / "tingshuo_train.json").read_text())
    assert len(records) == summary.examples
    for record in records:
        assert set(record) == {"instruction", "input", "output", "system", "history"}
        assert record["input"] == "" and record["instruction"] and record["output"]
        assert all(len(pair) == 2 and all(isinstance(x, str) for x in pair) for pair in record["history"])
        messages = [{"role": "system", "content": record["system"]}] if record["system"] else []
        for question, answer in record["history"] + [[record["instruction"], record["output"]]]:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        assert qwen.count(messages) <= CUTOFF
    assert not any("Tokyo" in record["instruction"] for record in records)
    assert summary.dropped["tool calls (the format has no place for them)"] == 1
    assert any("Alpaca cannot carry tool calls" in note for note in summary.notes)
    assert any(len(r["history"]) >= 2 for r in records)


# --- ASR ----------------------------------------------------------------------------------------


def kaldi_lines(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [tuple(line.split(" ", 1)) for line in lines]
    assert all(len(p) == 2 and p[0] and not any(c.isspace() for c in p[0]) and p[1] for p in pairs)
    keys = [p[0] for p in pairs]
    assert keys == sorted(keys, key=str.encode) and len(set(keys)) == len(keys), f"{path.name}: sorted, unique"
    return pairs  # type: ignore[return-value]


def test_asr_export_writes_a_kaldi_dir_and_a_manifest_with_the_corrected_transcript(store, tmp_path):
    summary = export_dataset(store[0], fmt="asr", out_dir=tmp_path, store_root=store[1])
    data = tmp_path / "train"
    wav_scp, text, utt2spk = (dict(kaldi_lines(data / name)) for name in ("wav.scp", "text", "utt2spk"))
    spk2utt = dict(kaldi_lines(data / "spk2utt"))
    assert set(wav_scp) == set(text) == set(utt2spk) and len(wav_scp) == 3 == summary.examples
    assert summary.dropped == {"audio file missing": 1}
    assert {spk: sorted(utts.split()) for spk, utts in spk2utt.items()} == {
        "bob": sorted(u for u, s in utt2spk.items() if s == "bob")}
    for utterance, speaker in utt2spk.items():
        assert utterance.startswith(speaker + "-")
        assert Path(wav_scp[utterance]).is_absolute() and Path(wav_scp[utterance]).is_file()
    assert sorted(text.values()) == ["[voice] recognised words 0", "[voice] recognised words 2",
                                      "[voice] what the person heard"]
    manifest = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    assert [set(m) for m in manifest] == [{"audio_filepath", "text", "duration", "language"}] * 3
    by_text = {m["text"]: m for m in manifest}
    corrected = by_text["[voice] what the person heard"]
    assert corrected["duration"] == 0.75 and corrected["language"] == "zh"
    with wave.open(corrected["audio_filepath"]) as wav:
        assert wav.getframerate() == 16_000
    assert math.isclose(sum(summary.lengths), 1.5 + 0.75 + 2.0)
    assert summary.length_unit == "seconds" and "1 of 3 transcripts corrected" in summary.text()


# --- the summary --------------------------------------------------------------------------------


def test_the_summary_counts_and_is_written_with_a_histogram(store, qwen, tmp_path):
    summary = export(store, qwen, "openai", tmp_path)
    conversations = store[0]
    assert summary.conversations == len(conversations) == 8
    assert summary.conversations_exported == 8 and summary.cutoff_len == CUTOFF
    assert summary.windowed == 1 and summary.windows >= 3
    # Distinct turns: 14 long + 2 tools + 3 good bad-conversation ones + 4 voice + 4 x 2 small.
    assert summary.turns == 14 + 2 + 3 + 4 + 8
    assert len(summary.lengths) == summary.examples and max(summary.lengths) <= CUTOFF
    stats = summary.length_stats()
    assert stats["p50"] <= stats["p95"] <= stats["max"] == max(summary.lengths)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["examples"] == summary.examples and saved["dropped"] == dict(summary.dropped)
    assert summary.histogram and summary.histogram.read_bytes().startswith(b"\x89PNG")
    text = summary.text()
    for expected in ("apology after an engine failure: 1", "answer cut by a barge-in: 1", "empty answer: 1",
                     "split into", "p95", str(summary.histogram)):
        assert expected in text


def test_include_bad_keeps_the_flagged_pairs(store, qwen, tmp_path):
    summary = export(store, qwen, "llama-factory", tmp_path, include_bad=True)
    assert not summary.dropped and summary.cuts == 0
    records = load_llama_factory(tmp_path)["tingshuo_train"]
    bad = [r for r in records if conversation_tag(r["conversations"][0]["value"]) == "bad"]
    answers = [m["value"] for r in bad for m in r["conversations"] if m["from"] == "gpt"]
    assert "Sorry, I lost that." in answers and "[bad] answer 3: sun" in answers


def test_missing_counter_or_store_root_and_unknown_formats_are_refused(store, tmp_path):
    with pytest.raises(ValueError, match="tokenizer"):
        export_dataset(store[0], fmt="openai", out_dir=tmp_path)
    with pytest.raises(ValueError, match="store"):
        export_dataset(store[0], fmt="asr", out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown export format"):
        export_dataset(store[0], fmt="csv", out_dir=tmp_path)
