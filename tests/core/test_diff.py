"""What a reload changes, by value, in the new file's order."""

from __future__ import annotations

from workerd.core.diff import Diff, diff


def test_added_removed_changed_unchanged() -> None:
    old = {"email": 1, "sms": 2, "push": 3}
    new = {"email": 1, "push": 4, "video": 5}
    assert diff(old, new) == Diff(added=("video",), removed=("sms",), changed=("push",), unchanged=("email",))


def test_order_follows_the_new_file_and_removed_the_old_one() -> None:
    old = {"a": 1, "b": 1, "c": 1, "x": 0, "y": 0}
    new = {"n2": 0, "c": 2, "n1": 0, "b": 1, "a": 2}
    d = diff(old, new)
    assert d.added == ("n2", "n1")
    assert d.changed == ("c", "a")
    assert d.unchanged == ("b",)
    assert d.removed == ("x", "y")


def test_values_are_compared_by_equality_not_identity() -> None:
    assert diff({"a": [1, 2]}, {"a": [1, 2]}).unchanged == ("a",)
    assert diff({"a": {"k": 1}}, {"a": {"k": 2}}).changed == ("a",)


def test_empty_when_only_unchanged() -> None:
    d = diff({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert d.empty
    assert d.unchanged == ("b", "a")
    assert diff({}, {}).empty


def test_not_empty_when_anything_is_added_removed_or_changed() -> None:
    assert not diff({}, {"a": 1}).empty
    assert not diff({"a": 1}, {}).empty
    assert not diff({"a": 1}, {"a": 2}).empty
