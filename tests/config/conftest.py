"""Config files written into a temporary directory that is also the working directory,
so messages show `workers.toml`, as users see them when they pass a relative path.

Every source's client library counts as installed, so the config tests pass on a
clone without the optional extras; a test that wants one missing says so with
`installed_clients`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from workerd.config import source_rules
from workerd.config.load import ConfigError, load
from workerd.config.model import Config

WriteConfig = Callable[[str], Path]
InstalledClients = Callable[..., None]


@pytest.fixture(autouse=True)
def installed_clients(monkeypatch: pytest.MonkeyPatch) -> InstalledClients:
    """`installed_clients("psycopg")`: only these client libraries are installed;
    until called, all of them are."""

    def only(*modules: str) -> None:
        monkeypatch.setattr(source_rules, "client_installed", lambda module: module in modules)

    monkeypatch.setattr(source_rules, "client_installed", lambda module: True)
    return only


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write(workdir: Path) -> WriteConfig:
    def write(text: str) -> Path:
        path = workdir / "workers.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def loads(write: WriteConfig) -> Callable[[str], Config]:
    def loads(text: str) -> Config:
        write(text)
        return load("workers.toml")

    return loads


@pytest.fixture
def error(write: WriteConfig) -> Callable[[str], str]:
    """The one-line message load() fails with."""

    def error(text: str) -> str:
        write(text)
        with pytest.raises(ConfigError) as caught:
            load("workers.toml")
        message = str(caught.value)
        assert "\n" not in message
        return message

    return error
