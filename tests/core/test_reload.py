"""The reload decision, one test per labelled edge of core/reload.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from workerd.core.reload import Facts, Step, changed_fields, decide_change, plan, reverts_to


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

    assert SCALING_FIELDS.issubset(f.name for f in fields(ProgramConfig))


def test_changed_to_revert_when_the_old_processes_of_that_config_still_run():
    """A→B (B cannot start: A's processes are kept), then back to A: A's processes are
    the program again, never replaced by new ones of the same config."""
    b_failing = Facts(running=0, enabled=True, removing=False, outgoing=((Conf(), 2),))
    assert reverts_to(Conf(), b_failing) == 0
    assert reverts_to(Conf(processes=3), b_failing) == 0  # and then rescaled
    assert plan({"w": Conf(command="broken")}, {"w": Conf()}, {"w": b_failing}) == [("w", Step.REVERT)]


def test_revert_goes_to_the_newest_generation_with_that_config():
    facts = Facts(running=0, enabled=True, removing=False,
                  outgoing=((Conf(command="b"), 1), (Conf(), 0), (Conf(), 1)))
    assert reverts_to(Conf(), facts) == 2  # the one with no process left has nothing to keep
    assert reverts_to(Conf(command="b"), facts) == 0


def test_no_revert_to_a_generation_with_nothing_running_or_a_program_stopped_by_the_user():
    assert reverts_to(Conf(), Facts(running=0, enabled=True, removing=False, outgoing=((Conf(), 0),))) is None
    assert reverts_to(Conf(), Facts(running=0, enabled=False, removing=False, outgoing=((Conf(), 1),))) is None
    assert reverts_to(Conf(), Facts(running=0, enabled=True, removing=False,
                                    outgoing=((Conf(command="other"), 1),))) is None
    assert plan({"w": Conf(command="b")}, {"w": Conf()}, {"w": IDLE}) == [("w", Step.RESTART)]
