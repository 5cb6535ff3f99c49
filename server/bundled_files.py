"""Where the web page and the personas are: beside ``server/`` in a checkout, inside it in a wheel.

A wheel installs ``client_web/`` and ``personas/`` as ``server/client_web`` and
``server/personas`` (pyproject's ``package-dir``), so they never claim generic top-level names
in site-packages; a checkout (and an editable install) keeps them at the repository's top.
"""

from __future__ import annotations

from pathlib import Path

_SERVER = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """``client_web`` or ``personas``: the installed copy if there is one, else the checkout's."""
    installed = _SERVER / name
    return installed if installed.is_dir() else _SERVER.parent / name
