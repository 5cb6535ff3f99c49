"""Personal data out of chat logs before they become training data: e-mail addresses, phone
numbers and ID numbers, in Chinese and English formats. The report counts what was replaced,
with masked samples (never the data itself)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    # Resident identity card (GB 11643): 6-digit area, birth date, 3-digit order, checksum.
    ("id_number", re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")),
    ("id_number", re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")),  # US social security number
    ("phone", re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")),  # mainland mobile
    ("phone", re.compile(r"(?<!\d)0\d{2,3}[ -]\d{3,4}[ -]?\d{4}(?!\d)")),  # mainland landline with its area code
    ("phone", re.compile(r"(?<![\w+])(?:\+1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)")),  # North America
    ("phone", re.compile(r"(?<![\w+])\+\d{1,3}(?:[ -]?\d{2,4}){2,4}(?!\d)")),  # other international
)
PLACEHOLDERS = {"email": "[EMAIL]", "id_number": "[ID]", "phone": "[PHONE]"}


def _valid_cn_id(number: str) -> bool:
    if len(number) != 18:
        return True  # the US form: no checksum to test
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def _mask(text: str) -> str:
    keep = max(1, len(text) // 4)
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


@dataclass
class RedactionReport:
    replaced: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    """A few masked examples per kind ("138*****678"), so a person can check what was matched."""

    def note(self, kind: str, found: str) -> None:
        self.replaced[kind] += 1
        samples = self.samples.setdefault(kind, [])
        if len(samples) < 3:
            samples.append(_mask(found))

    def lines(self) -> list[str]:
        """One line per kind: how many were replaced, with a few masked samples."""
        return [f"{kind}: {n} ({', '.join(self.samples.get(kind, []))})" for kind, n in sorted(self.replaced.items())]


def redact(text: str, report: RedactionReport) -> str:
    for kind, pattern in _PATTERNS:
        def replace(match: re.Match[str], kind: str = kind) -> str:
            found = match.group(0)
            if kind == "id_number" and not _valid_cn_id(found):
                return found  # 18 digits whose checksum fails: an order number, not an ID
            report.note(kind, found)
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)
    return text
