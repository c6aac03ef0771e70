"""The reload decision, one test per labelled edge of core/reload.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from workerd.core.reload import Facts, Step, changed_fields, decide_change, plan


@dataclass(frozen=True)
class Conf:
    command: str = "sleep 1"
    processes: int = 1
    autoscale: tuple[int, int] | None = None
    environment: dict[str, str] = field(default_factory=dict)


RUNNING = Facts(running=2, enabled=True, removing=False)
IDLE = Facts(running=0, enabled=True, removing=False)
STOPPED_BY_USER = Facts(running=0, enabled=False, removing=False)


def test_changed_fields_names_each_field_that_differs():
    assert changed_fields(Conf(), Conf()) == frozenset()
    assert changed_fields(Conf(), Conf(command="x", processes=3)) == {"command", "processes"}


def test_changed_to_rescale_when_only_the_count_changed():
    assert decide_change(frozenset({"processes"}), RUNNING) is Step.RESCALE
    assert decide_change(frozenset({"processes", "autoscale"}), IDLE) is Step.RESCALE


def test_changed_to_rescale_when_only_autostart_changed_even_with_processes_running():
    """autostart says what happens when the program is added; it never stops a running one."""
    assert decide_change(frozenset({"autostart"}), RUNNING) is Step.RESCALE
    assert decide_change(frozenset({"autostart", "processes"}), RUNNING) is Step.RESCALE


def test_changed_to_replace_when_processes_run():
    assert decide_change(frozenset({"command"}), RUNNING) is Step.REPLACE
    assert decide_change(frozenset({"command", "processes"}), RUNNING) is Step.REPLACE


def test_changed_to_restart_when_nothing_runs():
    assert decide_change(frozenset({"command"}), IDLE) is Step.RESTART
    assert decide_change(frozenset({"command"}), STOPPED_BY_USER) is Step.RESTART


def test_a_program_stopped_by_the_user_is_not_replaced_even_with_processes_left():
    stopping = Facts(running=1, enabled=False, removing=False)
    assert decide_change(frozenset({"command"}), stopping) is Step.RESTART


def test_added_to_add_or_take_back():
    old = {"a": Conf()}
    new = {"a": Conf(), "b": Conf(), "c": Conf()}
    facts = {"a": RUNNING, "c": Facts(running=1, enabled=True, removing=True)}
    assert plan(old, new, facts) == [("b", Step.ADD), ("c", Step.TAKE_BACK)]


def test_plan_orders_removals_additions_changes_and_skips_the_unchanged():
    old = {"same": Conf(), "gone": Conf(), "grow": Conf(), "cmd": Conf()}
    new = {"cmd": Conf(command="x"), "same": Conf(), "grow": Conf(processes=3), "new": Conf()}
    facts = {name: RUNNING for name in old}
    assert plan(old, new, facts) == [
        ("gone", Step.REMOVE), ("new", Step.ADD), ("cmd", Step.REPLACE), ("grow", Step.RESCALE),
    ]


def test_the_scaling_fields_are_fields_of_a_program_config():
    from dataclasses import fields

    from workerd.config.model import ProgramConfig
    from workerd.core.reload import SCALING_FIELDS

    assert SCALING_FIELDS <= {f.name for f in fields(ProgramConfig)}
