"""{program} and {instance} in commands and environment values."""

from __future__ import annotations

import pytest

from workerd.core.placeholders import expand, expand_argv, expand_environment, has_placeholders


@pytest.mark.parametrize(("text", "expected"), [
    ("celery -A app worker -n w{instance:2}@%h", "celery -A app worker -n w07@%h"),
    ("{program}-{instance}", "email-7"),
    ("--port 80{instance:02}", "--port 8007"),
    ("{instance:3}", "007"),
    ("{instance:1}", "7"),
    ("--port {instance+8000}", "--port 8007"),
    ("w{instance+1:2}", "w08"),
])
def test_placeholders_are_filled_in(text: str, expected: str) -> None:
    assert expand(text, "email", 7) == expected


def test_a_number_wider_than_the_padding_is_kept_whole() -> None:
    assert expand("{instance:2}", "w", 123) == "123"


@pytest.mark.parametrize("text", [
    "${program} ${instance}",        # the shell's
    '{"queue": "email"}',            # JSON
    "{instance:0} {instance:x} {program:2} {Instance} { instance } {instance-1} {instance+}",  # not placeholders
    "awk '{print $1}'",
])
def test_anything_else_in_braces_is_left_alone(text: str) -> None:
    assert expand(text, "email", 7) == text
    assert not has_placeholders(text)


def test_argv_and_environment_are_expanded_item_by_item() -> None:
    assert expand_argv(("rq", "worker", "--name", "{program}.{instance}"), "rq", 2) == ("rq", "worker", "--name",
                                                                                       "rq.2")
    assert expand_environment({"PORT": "90{instance:2}", "X": "plain"}, "web", 3) == {"PORT": "9003", "X": "plain"}
