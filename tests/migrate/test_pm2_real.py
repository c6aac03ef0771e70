"""PM2 files as PM2 itself reads them, shaped like PM2's own examples: a path with a
directory, JSON5-style .json, the other shapes PM2 accepts, keys it knows that workerd
cannot map."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.migrate.conftest import imported, write
from workerd.migrate import convert

#: PM2's examples/process.json: PM2 evaluates a .json file as JavaScript.
PROCESS_JSON = """
    // PM2 reads this file with eval
    {
      apps : [{
        name      : 'api',
        script    : 'api.js',
        args      : ['--toto=heya coco', '-d', '1'],
        env: {
          NODE_ENV: 'production',
        },
        wait_ready: true,
        listen_timeout: 3000,
        source_map_support: true,
      }],
      /* deployment */
      deploy : {
        production : { user : 'node', host : '212.83.163.1', ref : 'origin/master' }
      }
    }
"""


def test_json5_style_json_is_read_as_pm2_reads_it(tmp_path: Path) -> None:
    source = write(tmp_path / "process.json", PROCESS_JSON)
    write(tmp_path / "api.js", "")
    result = imported(source, "pm2")
    api = result.config.programs["api"]
    assert api.command[-3:] == ("--toto=heya coco", "-d", "1")
    assert api.environment["NODE_ENV"] == "production"
    comments = result.comments_of("programs.api")
    for key in ("wait_ready", "listen_timeout", "source_map_support"):
        assert f"{key} = " in comments and "not translated" in comments, comments
    assert "unknown key" not in result.text
    assert "deploy: not translated" in result.not_imported()
    assert "wait_ready = true: not translated" in comments and "True" not in result.text  # JSON, not Python


@pytest.mark.parametrize("text", [
    '{"name": "w", "exec": "worker.sh"}',
    '[{"name": "w", "script": "worker.sh"}]',
    '{"pm2": [{"name": "w", "script": "worker.sh"}]}',
])
def test_the_other_shapes_pm2_accepts(tmp_path: Path, text: str) -> None:
    source = write(tmp_path / "process.json", text)
    write(tmp_path / "worker.sh", "")
    assert imported(source, "pm2").config.programs["w"].command == ("bash", str(tmp_path / "worker.sh"))


@pytest.mark.parametrize("name, text", [
    ("process.yml", "apps:\n  - name: w\n    script: worker.sh\n"),
    pytest.param("process.config.js", "module.exports = {apps: [{name: 'w', script: 'worker.sh'}]}\n",
                 marks=pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")),
])
def test_a_relative_path_with_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                          text: str) -> None:
    write(tmp_path / "examples" / name, text)
    write(tmp_path / "examples" / "worker.sh", "")
    monkeypatch.chdir(tmp_path)
    draft = convert(Path("examples") / name, "pm2", {})
    (program,) = draft.programs.values()
    assert program.get("command") == ["bash", str(tmp_path / "examples" / "worker.sh")]
    assert program.get("directory") in (None, str(tmp_path / "examples"))
