"""WER (English) and CER (Mandarin) with the text normalisation the references need."""

from __future__ import annotations

import re

_NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
                 "7": "seven", "8": "eight", "9": "nine"}


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def normalize_en(text: str) -> list[str]:
    text = text.lower().replace("mr.", "mister").replace("-", " ")
    text = re.sub(r"\d", lambda m: f" {_NUMBER_WORDS[m.group()]} ", text)
    words = re.sub(r"[^a-z' ]+", " ", text).split()
    return ["zero" if w == "oh" else w for w in words]


def normalize_zh(text: str) -> list[str]:
    return [ch for ch in text if "\u4e00" <= ch <= "\u9fff"]


def error_rate(refs: list[str], hyps: list[str], language: str) -> float:
    """Word error rate, or character error rate for Mandarin, over all pairs together."""
    norm = normalize_zh if language == "zh" else normalize_en
    errors = sum(edit_distance(norm(r), norm(h)) for r, h in zip(refs, hyps))
    return errors / max(1, sum(len(norm(r)) for r in refs))
