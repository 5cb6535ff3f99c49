"""tests/conftest.py's policy, in a pytest of its own: with TINGSHUO_REQUIRE_MODELS=1 a skip fails."""

from __future__ import annotations

import pytest

from tests.conftest import REQUIRE_ENV

pytest_plugins = ["pytester"]

SUITE = """
import pytest

def test_runs():
    pass

def test_needs_a_model():
    pytest.skip("no model.onnx in var/models")

@pytest.mark.skipif(True, reason="package drifted")
def test_marked_skipif():
    pass

@pytest.fixture
def model():
    pytest.skip("fixture found no weights")

def test_with_fixture(model):
    pass

@pytest.mark.may_skip("no such provider on this platform")
def test_allowed_to_skip():
    pytest.skip("CUDA build installed")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("no_such_package_for_tingshuo")

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest("from tests.conftest import pytest_configure, pytest_make_collect_report, "
                          "pytest_runtest_makereport\n")
    pytester.makepyfile(test_suite=SUITE, test_module_skip=MODULE_SKIP)
    return pytester


def test_without_the_variable_skips_stay_skips(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    result = suite.runpytest("-ra")
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)


def test_with_the_variable_every_unmarked_skip_fails(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    result = suite.runpytest("-ra")
    # A skip while setting up (a skipif mark, a fixture) fails the setup, which pytest reports as an error.
    result.assert_outcomes(passed=1, failed=2, errors=2, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random([
        f"*{REQUIRE_ENV}=1*no model.onnx in var/models*",
        "*package drifted*",
        "*fixture found no weights*",
        "*could not import 'no_such_package_for_tingshuo'*",
        "SKIPPED*CUDA build installed*",
    ])
    failed = {line.split()[1] for line in result.stdout.lines if line.startswith(("FAILED ", "ERROR "))}
    assert failed == {"test_suite.py::test_needs_a_model", "test_suite.py::test_marked_skipif",
                      "test_suite.py::test_with_fixture", "test_module_skip.py::skipped_at_import"}


def test_the_variable_set_to_zero_is_off(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "0")
    suite.runpytest().assert_outcomes(passed=1, skipped=5, xfailed=1)
