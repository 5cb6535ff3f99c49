"""How a Mandarin speaker reads the digits and symbols in a sentence, written out in characters.

The Mandarin voice's G2P (misaki) reads Arabic digits one at a time or not at all,
so a reply's "2楼", "3:30" or "¥12.5" came out as noise. This rewrites them the
way they are said before the text reaches the voice: a year digit by digit
(二零二四年), a time as 点/分, money with its unit, a percentage as 百分之, a phone
number digit by digit with 1 as 幺, a count of things with 两, any other number as a number
(cn2an). The shown transcript keeps the LLM's digits; only the spoken text changes.
"""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_TWO_BEFORE = "个位本张次只件条天年岁份块杯把台辆间双名"
"""Measure words after which 2 is said 两 (两个人, 两天), not 二."""
_CURRENCY_BEFORE = {"¥": "元", "￥": "元", "$": "美元", "€": "欧元", "£": "英镑"}

_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3])[:：]([0-5]\d)(?![\d:])")
_YEAR = re.compile(r"(\d{4})(?=年)")
_PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)\s*[%％]")
_CURRENCY = re.compile(r"([¥￥$€£])\s*(\d+(?:\.\d+)?)")
_LONG_DIGITS = re.compile(r"(?<![\d.])(?:\d{7,}|0\d+)(?![\d.])")
"""Phone, room and account numbers: seven digits or more, or a leading zero; read digit by digit,
1 as 幺 the way such numbers are said (一 alone was heard as 以 and 医)."""
_NUMBER = re.compile(r"(?<![\d.])(-?)(\d+)(?:\.(\d+))?(?![\d.])")


def digit_by_digit(digits: str) -> str:
    return "".join(_DIGITS[int(d)] for d in digits)


def integer_reading(n: int) -> str:
    """0-99,999,999 as said (一万零五百, 十二, 两千), larger ones digit by digit."""
    if n < 0:
        return "负" + integer_reading(-n)
    if n >= 100_000_000:
        return digit_by_digit(str(n))
    if n >= 10_000:
        high, low = divmod(n, 10_000)
        rest = "" if low == 0 else ("零" if low < 1000 else "") + _below_10000(low, leading=False)
        return ("两" if high == 2 else _below_10000(high)) + "万" + rest
    return _below_10000(n)


def _below_10000(n: int, *, leading: bool = True) -> str:
    if n == 0:
        return "零"
    out: list[str] = []
    zero_pending = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, value)
        if d:
            if zero_pending:
                out.append("零")
            out.append(("两" if d == 2 and unit == "千" and not out else _DIGITS[d]) + unit)
            zero_pending = False
        elif out:
            zero_pending = True
    text = "".join(out)
    if leading and text.startswith("一十"):
        text = text[1:]  # 十二, not 一十二
    return text


def number_reading(sign: str, whole: str, fraction: str | None) -> str:
    text = ("负" if sign else "") + integer_reading(int(whole))
    return text + ("点" + digit_by_digit(fraction) if fraction else "")


def _time(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    said_hour = "两" if hour == 2 else integer_reading(hour)
    if minute == 0:
        return f"{said_hour}点"
    if minute == 30:
        return f"{said_hour}点半"
    return f"{said_hour}点{'零' if minute < 10 else ''}{integer_reading(minute)}分"


def _number(match: re.Match[str]) -> str:
    sign, whole, fraction = match.groups()
    after = match.string[match.end():match.end() + 1]
    if whole == "2" and not sign and fraction is None and after and after in _TWO_BEFORE:
        return "两"
    return number_reading(sign, whole, fraction)


def mandarin_reading(text: str) -> str:
    """``text`` with its numbers and their symbols written as a Mandarin speaker says them."""
    if not any(ch.isdigit() for ch in text):
        return text
    text = _TIME.sub(_time, text)
    text = _YEAR.sub(lambda m: digit_by_digit(m.group(1)), text)
    text = _PERCENT.sub(lambda m: "百分之" + _NUMBER.sub(_number, m.group(1)), text)
    text = _CURRENCY.sub(lambda m: _NUMBER.sub(_number, m.group(2)) + _CURRENCY_BEFORE[m.group(1)], text)
    text = _LONG_DIGITS.sub(lambda m: digit_by_digit(m.group()).replace("一", "幺"), text)
    return _NUMBER.sub(_number, text)
