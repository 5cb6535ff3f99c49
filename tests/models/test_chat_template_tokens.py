"""A model's chat template and tokenizer without the model: the embedded Qwen2.5 GGUF, and a tiny
Hugging Face tokenizer folder built here (a WordLevel tokenizer trained in the test), so nothing
is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from models.chat_template_tokens import ChatTemplateTokenizer, TokenizerLoadError, load_tokenizer

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "var" / "models"
GGUF = MODEL_DIR / "qwen2.5-0.5b" / "model.gguf"

CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The current time in a timezone",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}}
CONVERSATION = [
    {"role": "system", "content": "You are Xiaoting, a cheerful voice assistant."},
    {"role": "user", "content": "What time is it in Tokyo?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_time", "arguments": "{\"timezone\": \"Asia/Tokyo\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "14:05"},
    {"role": "assistant", "content": "It is five past two in the afternoon in Tokyo."},
]


@pytest.fixture(scope="module")
def qwen() -> ChatTemplateTokenizer:
    if not GGUF.exists():
        pytest.skip(f"{GGUF} missing: run `tingshuo models install`")
    return ChatTemplateTokenizer.from_gguf(GGUF)


def test_the_gguf_renders_chatml_with_the_system_prompt_tools_and_the_call(qwen):
    text = qwen.render(CONVERSATION, [CLOCK])
    assert text.startswith("<|im_start|>system\nYou are Xiaoting, a cheerful voice assistant.\n\n# Tools")
    assert json.dumps(CLOCK) in text  # the tool definition, as the template's tojson writes it
    # Arguments as an object, not the JSON text quoted again.
    assert '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\n14:05\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\nIt is five past two in the afternoon in Tokyo.<|im_end|>\n")
    assert text.count("<|im_start|>") == 5  # system, user, call, tool result, answer: no generation prompt


def test_the_gguf_count_is_the_rendered_text_tokenized_with_special_tokens(qwen):
    text = qwen.render(CONVERSATION, [CLOCK])
    ids = qwen.tokenize(text)
    assert qwen.count(CONVERSATION, [CLOCK]) == len(ids)
    assert ids.count(151644) == 5 and ids.count(151645) == 5  # <|im_start|>, <|im_end|>: one token each
    assert qwen.count(CONVERSATION[:2] + CONVERSATION[-1:]) < len(ids)  # no tools, no call: shorter


def test_the_gguf_template_gives_its_default_system_prompt_when_there_is_none(qwen):
    text = qwen.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_load_tokenizer_picks_the_embedded_gguf_without_a_model(qwen):
    config = SimpleNamespace(models=SimpleNamespace(llm="qwen2.5-0.5b", model_dir=str(MODEL_DIR)))
    tokenizer = load_tokenizer(None, config)
    assert tokenizer.name == "model.gguf"
    assert tokenizer.count(CONVERSATION, [CLOCK]) == qwen.count(CONVERSATION, [CLOCK])
    assert load_tokenizer(str(GGUF), config).count(CONVERSATION) == qwen.count(CONVERSATION)


# --- a Hugging Face folder built here ------------------------------------------------------------

CHATML = (
    "{% for message in messages %}"
    "{% if message.role not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('unknown role ' + message.role) }}{% endif %}"
    "{{ '<|im_start|>' + message.role + '\n' }}"
    "{% if message.tool_calls %}{% for call in message.tool_calls %}"
    "{{ '<tool_call>' + call.function | tojson + '</tool_call>' }}{% endfor %}"
    "{% else %}{{ message.content }}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if tools %}{{ '<tools>' + tools | tojson + '</tools>' }}{% endif %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tiny_tokenizer_dir(path: Path, config: dict) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[UNK]", "<|im_start|>", "<|im_end|>", "<s>", "</s>"]
    trainer = trainers.WordLevelTrainer(special_tokens=specials)
    corpus = ["system user assistant tool hello there how are you today", "I am fine thank you < > { } : \" ,",
              "get_time timezone Asia / Tokyo name arguments function"]
    tokenizer.train_from_iterator(corpus, trainer)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


def test_a_hugging_face_folder_renders_as_apply_chat_template_does(tmp_path):
    folder = _tiny_tokenizer_dir(tmp_path / "tiny", {"chat_template": CHATML, "bos_token": "<s>",
                                                      "eos_token": {"content": "</s>", "special": True}})
    tokenizer = ChatTemplateTokenizer.from_hf_dir(folder)
    messages = [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "I am fine"}]
    text = tokenizer.render(messages)
    assert text == "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\nI am fine<|im_end|>\n"
    # Special tokens are one token each; the words are whitespace-split WordLevel tokens.
    # <|im_start|> user hello there <|im_end|> <|im_start|> assistant I am fine <|im_end|>
    assert tokenizer.count(messages) == len(tokenizer.tokenize(text)) == 11
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_time", "arguments": "{\"timezone\": \"<Asia>\"}"}}]}
    rendered = tokenizer.render([messages[0], call], [CLOCK])
    # tojson as transformers defines it: plain JSON (no HTML escapes), the arguments decoded to an object.
    assert '<tool_call>{"name": "get_time", "arguments": {"timezone": "<Asia>"}}</tool_call>' in rendered
    assert rendered.endswith("</tools>")


def test_raise_exception_in_a_template_is_a_value_error(tmp_path):
    tokenizer = ChatTemplateTokenizer.from_hf_dir(_tiny_tokenizer_dir(tmp_path / "tiny", {"chat_template": CHATML}))
    with pytest.raises(ValueError, match="unknown role narrator"):
        tokenizer.render([{"role": "narrator", "content": "once"}])


def test_chat_template_jinja_wins_and_named_templates_pick_tool_use_with_tools(tmp_path):
    folder = _tiny_tokenizer_dir(tmp_path / "named", {"chat_template": [
        {"name": "default", "template": "plain {{ messages | length }}"},
        {"name": "tool_use", "template": "tools {{ tools | length }}"}]})
    tokenizer = ChatTemplateTokenizer.from_hf_dir(folder)
    assert tokenizer.render([{"role": "user", "content": "hi"}]) == "plain 1"
    assert tokenizer.render([{"role": "user", "content": "hi"}], [CLOCK]) == "tools 1"
    (folder / "chat_template.jinja").write_text("from the jinja file", encoding="utf-8")
    assert ChatTemplateTokenizer.from_hf_dir(folder).render([]) == "from the jinja file"


def test_a_folder_without_tokenizer_or_template_and_a_missing_path_are_refused(tmp_path):
    with pytest.raises(TokenizerLoadError, match="no tokenizer.json"):
        ChatTemplateTokenizer.from_hf_dir(tmp_path)
    with pytest.raises(TokenizerLoadError, match="no chat template"):
        ChatTemplateTokenizer.from_hf_dir(_tiny_tokenizer_dir(tmp_path / "bare", {}))
    config = SimpleNamespace(models=SimpleNamespace(llm="qwen2.5-0.5b", model_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="neither a GGUF file nor a Hugging Face model folder"):
        load_tokenizer(str(tmp_path / "Qwen/Qwen2.5-7B-Instruct"), config)
    folder = _tiny_tokenizer_dir(tmp_path / "hf", {"chat_template": CHATML})
    assert load_tokenizer(str(folder), config).name == "hf"
