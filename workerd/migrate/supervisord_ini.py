"""supervisord's config as supervisord reads it: its INI dialect, `[include]` files, and
its `%(name)s` expansions, with the file and line of every section and key kept for
error messages.

The dialect: `;` and `#` start comments (inline ones after whitespace), keys are
lower-cased, a later file's section of the same name adds to the earlier one, and
`[include] files` is a space-separated list of globs relative to the including file.
"""

from __future__ import annotations

import configparser
import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workerd.migrate.source import MigrationError, read_text, where

#: `%(name)FORMAT`, `%%`; a lone `%` is neither and is an error, as in supervisord.
_EXPANSION = re.compile(r"%(?:\((?P<name>[^)]*)\)(?P<flags>[-#0 +]*)(?P<width>\d*)(?:\.\d+)?"
                        r"(?P<conv>[diouxXeEfFgGcrsa])|(?P<percent>%))")
_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<option>[^=:\s][^=:]*?)\s*[=:]")


@dataclass
class IniSection:
    name: str
    path: Path
    line: int
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def at(self, key: str | None = None) -> str:
        """`FILE:LINE` of the key (or of the section's header)."""
        return where(self.path, self.lines.get(key, self.line) if key else self.line)


def read(path: Path, environ: Mapping[str, str]) -> tuple[list[IniSection], list[tuple[str, str]]]:
    """The file's sections, then those of the files its `[include]` names, in order; and
    each `[include]` glob that matches no file here, with where it is written. Every
    unset `%(ENV_X)s` of them all is one error (`check_variables`)."""
    sections = _parse(path)
    include = next((s for s in sections if s.name == "include"), None)
    if include is None:
        check_variables(sections, environ)
        return sections, []
    if "files" not in include.values:
        raise MigrationError(f"{include.at()}: [include] has no files")
    merged = {s.name: s for s in sections if s.name != "include"}
    added = []
    unmatched = []
    for pattern in _patterns(include, path, environ):
        files = sorted(glob.glob(str(path.parent / pattern)))
        if not files:
            unmatched.append((include.at("files"), pattern))
        for file in files:
            for section in _parse(Path(file)):
                if section.name in merged:  # supervisord's parser adds to a known section
                    merged[section.name].values.update(section.values)
                    merged[section.name].lines.update(section.lines)
                else:
                    merged[section.name] = section
                    added.append(section)
    check_variables(sections + added, environ)
    return list(merged.values()), unmatched


def _patterns(include: IniSection, path: Path, environ: Mapping[str, str]) -> list[str]:
    """The globs of `[include] files`, expanded as supervisord does (from its process
    environment: it reads them before [supervisord] environment), but for those that name
    a variable this box does not set: check_variables says these with the rest."""
    names = {"here": str(path.parent.resolve()), **env_names(environ)}
    return [pattern for word in include.values["files"].split()
            if all(name in environ for name in _ENV_REFERENCE.findall(word))
            for pattern in expand(word, names, include.at("files")).split()]


def env_names(environ: Mapping[str, str]) -> dict[str, str]:
    return {f"ENV_{name}": value for name, value in environ.items()}


_ENV_REFERENCE = re.compile(r"%\(ENV_(\w+)\)")
_ENVIRONMENT_KEY = re.compile(r"(?:^|,)\s*(\w+)\s*=")


def check_variables(sections: list[IniSection], environ: Mapping[str, str]) -> None:
    """Every `%(ENV_X)s` of the file that this box does not set, in one error: one per
    run took Baserow's file 8 runs. A program's own `environment` counts for it."""
    main = next((s for s in sections if s.name == "supervisord"), None)
    shared = set(_ENVIRONMENT_KEY.findall(main.values.get("environment", ""))) if main else set()
    unset: dict[str, str] = {}
    for section in sections:
        own = set() if section is main or section.name == "include" else \
            shared | set(_ENVIRONMENT_KEY.findall(section.values.get("environment", "")))
        for key, value in section.values.items():
            for name in _ENV_REFERENCE.findall(value):
                if name not in environ and name not in own:
                    unset.setdefault(name, section.at(key))
    if not unset:
        return
    (first, at), *others = unset.items()
    nor = "".join(f", nor ${name} ({where})" if i == 0 else f", ${name} ({where})"
                  for i, (name, where) in enumerate(others))
    raise MigrationError(f"{at}: %(ENV_{first})s: ${first} is not set here{nor} (supervisord reads "
                         f"{'them' if others else 'it'} from its own environment when it starts)")


def expand(text: str, names: Mapping[str, object], at: str, instance: str | None = None) -> str:
    """TEXT with supervisord's expansions done from NAMES. `%(process_num)...` becomes
    INSTANCE (a workers.toml placeholder) when given, else it must be in NAMES."""
    out = []
    position = 0
    for match in _EXPANSION.finditer(text):
        out.append(_literal(text[position:match.start()], text, at))
        position = match.end()
        if match.group("percent"):
            out.append("%")
            continue
        name = match.group("name")
        if name == "process_num" and instance is not None:
            out.append(instance_placeholder(match, instance, at))
            continue
        if name not in names:
            if name.startswith("ENV_"):
                raise MigrationError(f"{at}: %({name})s: ${name[4:]} is not set here (supervisord reads it "
                                     "from its own environment when it starts)")
            raise MigrationError(f"{at}: %({name}): no such expansion (supervisord knows "
                                 f"{', '.join(sorted(n for n in names if not n.startswith('ENV_')))} and ENV_*)")
        try:
            out.append(("%" + match.group(0)[len(name) + 3:]) % (names[name],))
        except (TypeError, ValueError):
            raise MigrationError(f"{at}: {match.group(0)}: badly formatted for {names[name]!r}") from None
    out.append(_literal(text[position:], text, at))
    return "".join(out)


def whole_number(section: IniSection, key: str, value: str | None, low: int, base: int = 10) -> int:
    try:
        number = int(value or "", base)
    except ValueError:
        number = low - 1
    if number < low:
        raise MigrationError(f"{section.at(key)}: {key} = {value!r}: expected a whole number >= {low}")
    return number


def instance_placeholder(match: re.Match[str], start: str, at: str) -> str:
    """`%(process_num)02d` as `{instance:2}`; START is supervisord's numprocs_start."""
    flags, width, conv = match.group("flags"), match.group("width"), match.group("conv")
    if conv not in "dius" or flags not in ("", "0") or (width and not flags and int(width) > 1):
        raise MigrationError(f"{at}: {match.group(0)}: only %(process_num)d, %(process_num)s and "
                             "%(process_num)0Nd have a workers.toml equivalent")
    offset = f"+{start}" if start != "0" else ""
    pad = f":{width}" if flags == "0" and width and int(width) > 1 else ""
    return "{instance" + offset + pad + "}"


def _literal(part: str, text: str, at: str) -> str:
    if "%" in part:
        raise MigrationError(f"{at}: {text!r}: a lone '%' (supervisord wants %% for a literal one)")
    return part


def _parse(path: Path) -> list[IniSection]:
    text = read_text(path)
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False,
                                          interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as e:
        raise MigrationError(f"{where(path, e.lineno)}: a setting before any [section]") from None
    except configparser.ParsingError as e:
        line = e.errors[0][0]
        raise MigrationError(f"{where(path, line)}: cannot parse {text.splitlines()[line - 1].strip()!r}") from None
    headers, keys = _line_numbers(text)
    return [IniSection(name, path, headers.get(name, 1), dict(parser.items(name)),
                       {k: keys[(name, k)] for k in parser.options(name) if (name, k) in keys})
            for name in parser.sections()]


def _line_numbers(text: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Where each section header and key is, found the way configparser finds them."""
    headers: dict[str, int] = {}
    keys: dict[tuple[str, str], int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line[0] in " \t;#":
            continue
        header = _SECTION.match(line.strip())
        if header:
            section = header.group("header")
            headers.setdefault(section, number)
            continue
        option = _OPTION.match(line)
        if option and section is not None:
            keys[(section, option.group("option").strip().lower())] = number
    return headers, keys
