from __future__ import annotations

from pathlib import Path

import pytest

from workerd.config.envfile import EnvFileError, read_env_file


def read(tmp_path: Path, text: str | bytes) -> dict[str, str]:
    path = tmp_path / ".env"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_env_file(path)


def test_lines_comments_blanks_and_export(tmp_path: Path) -> None:
    text = "# a comment\n\nA=1\n  export B = two  \nC=\nURL=postgres://u@h/db?x=1\r\n"
    assert read(tmp_path, text) == {
        "A": "1",
        "B": "two",
        "C": "",
        "URL": "postgres://u@h/db?x=1",
    }


def test_quotes(tmp_path: Path) -> None:
    text = (
        "SINGLE='a \"b\" #c $HOME'\n"
        'DOUBLE="line\\none \\"q\\" \\\\ \\t"\n'
        "TRAILING='x'  # comment\n"
        "EMPTY=''\n"
    )
    assert read(tmp_path, text) == {
        "SINGLE": 'a "b" #c $HOME',
        "DOUBLE": 'line\none "q" \\ \\t',
        "TRAILING": "x",
        "EMPTY": "",
    }


def test_unquoted_value_ends_at_space_hash(tmp_path: Path) -> None:
    assert read(tmp_path, "A=b # comment\nB=c#d\n") == {"A": "b", "B": "c#d"}


def test_later_line_wins(tmp_path: Path) -> None:
    assert read(tmp_path, "A=1\nA=2\n") == {"A": "2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nsk_live_SECRET\n", "2: expected KEY=VALUE"),
        ("FOO-BAR=sk_live_SECRET\n", "1: invalid variable name 'FOO-BAR'"),
        ("=sk_live_SECRET\n", "1: invalid variable name ''"),
        ("1A=sk_live_SECRET\n", "1: invalid variable name '1A'"),
        ("A='sk_live_SECRET\n", "1: unterminated quoted value"),
        ('A="sk_live_SECRET"x\n', "1: unexpected text after the closing quote"),
        ("A=sk_live_SECRET\0\n", "1: contains a NUL character"),
    ],
)
def test_bad_line_names_file_and_line_but_not_the_text(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(EnvFileError) as caught:
        read(tmp_path, text)
    assert str(caught.value) == f"{tmp_path / '.env'}:{message}"
    assert "SECRET" not in str(caught.value)


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError) as caught:
        read_env_file(tmp_path / "missing")
    assert str(caught.value) == (
        f"cannot read {tmp_path / 'missing'}: [Errno 2] No such file or directory"
    )


def test_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(EnvFileError) as caught:
        read(tmp_path, b"A=\xff\n")
    assert str(caught.value) == f"cannot read {tmp_path / '.env'}: not UTF-8 (byte 2)"
