"""The control tests use the runtime tests' `daemon` fixture factory."""

from tests.runtime.conftest import daemon, pytest_runtest_makereport  # noqa: F401
