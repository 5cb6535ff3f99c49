"""Suite-wide policy: under ``scripts/test.sh`` nothing may skip quietly.

Many tests skip when an embedded model or optional package is missing, which is right on a
developer's partial install but wrong in CI: a drifted install would then pass with the tests that
matter most not run. ``scripts/test.sh`` sets ``TINGSHUO_REQUIRE_MODELS=1``, and with it every skip
(``pytest.skip``, ``importorskip``, ``skipif``, at collection, in a fixture or in a test) is reported
as a failure naming the skip's reason (an error when it happens while a test is set up: a ``skipif``
mark, a fixture). Expected failures (``xfail``) are not skips and are left alone.

A test that may legitimately skip everywhere, because what it checks does not exist on some
platforms, says so with ``@pytest.mark.may_skip("why")``. Keep that list short and justified:

- tests/models/test_sherpa_asr.py::test_cuda_without_the_cuda_build_fails_instead_of_falling_back
  checks the error of a CPU-only sherpa-onnx asked for CUDA; with a CUDA build installed (a GPU
  machine) there is no such error to check.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ENV = "TINGSHUO_REQUIRE_MODELS"
ALLOW_MARKER = "may_skip"


def skips_are_failures() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_MARKER}(reason): this test may skip even under {REQUIRE_ENV}=1 (scripts/test.sh); "
        "only for checks that cannot apply on some platforms, never for a missing model or package")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        path, line, message = longrepr
        return f"{message} ({path}:{line + 1 if isinstance(line, int) else line})"
    return str(longrepr)


def _failure_text(reason: str) -> str:
    return (f"skipped, but {REQUIRE_ENV}=1 (scripts/test.sh) requires every test to run: {reason}\n"
            f"Install what is missing (bash scripts/setup.sh), or, only for a check that cannot apply on "
            f"this platform, mark the test @pytest.mark.{ALLOW_MARKER}(reason).")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if (report.skipped and not hasattr(report, "wasxfail") and skips_are_failures()
            and item.get_closest_marker(ALLOW_MARKER) is None):
        report.outcome = "failed"
        report.longrepr = _failure_text(_skip_reason(report))
    return report


class RequiredButSkipped(pytest.Item):
    """Stands for a whole module that skipped while being imported (a module-level ``importorskip``),
    so the run reports one failure for it and goes on, rather than stopping at a collection error."""

    def __init__(self, *, reason: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.fail(_failure_text(self.reason), pytrace=False)

    def reportinfo(self):
        return self.path, None, self.name


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if report.skipped and skips_are_failures() and isinstance(collector, pytest.Module):
        stand_in = RequiredButSkipped.from_parent(collector, name="skipped_at_import",
                                                  reason=_skip_reason(report))
        return pytest.CollectReport(report.nodeid, "passed", None, [stand_in])
    return report
