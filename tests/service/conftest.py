"""The real daemon fixture of tests/runtime, for the tests that read a live /metrics."""

from tests.runtime.conftest import daemon, pytest_runtest_makereport  # noqa: F401
