"""Does the transcript of the turn so far read like a finished message?

Smart Turn judges the audio alone, and on flat read speech it is often unsure of a plainly
finished sentence (0.02 for "The child almost hurt the small dog." on the shared recordings),
which costs the user the longest silence of the eagerness. Whisper punctuates what it hears:
a terminal mark after the last word is its own judgement that the sentence ended. A trailing
comma, an ellipsis or a last word that needs a continuation ("and", "because", "然后") reads
as unfinished. Only used to shorten the wait when the audio model is unsure, never to end a
turn the silence rule would not end.
"""

from __future__ import annotations

import re

FINISHING_MARKS = ".!?。！？"
UNFINISHED_ENDINGS = ("...", "…", "……")
CONTINUATION_WORDS = frozenset({
    "and", "but", "or", "so", "because", "if", "then", "the", "a", "an", "to", "of", "with", "for", "in", "on",
    "at", "my", "your", "um", "uh", "er", "like", "which", "that", "when", "while", "about",
})
CONTINUATION_ENDINGS_ZH = ("然后", "但是", "所以", "因为", "就是", "那个", "这个", "还有", "而且", "如果", "嗯", "呃", "的话")
MIN_WORDS_EN = 2
MIN_CHARS_ZH = 3
_WORD = re.compile(r"[A-Za-z']+")


def sounds_finished(text: str) -> bool:
    text = text.strip().strip("\"'”’」』）)")
    if not text or text.endswith(UNFINISHED_ENDINGS) or text[-1] not in FINISHING_MARKS:
        return False
    body = text.rstrip(FINISHING_MARKS).strip()
    cjk = [ch for ch in body if "\u4e00" <= ch <= "\u9fff"]
    if cjk:
        return len(cjk) >= MIN_CHARS_ZH and not body.endswith(CONTINUATION_ENDINGS_ZH)
    words = _WORD.findall(body.lower())
    return len(words) >= MIN_WORDS_EN and words[-1] not in CONTINUATION_WORDS
