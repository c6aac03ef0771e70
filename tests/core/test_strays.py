"""Which worker a process outside every worker's session came from (core/strays.py),
on hand-made process tables: pid 100 is the daemon, its workers lead their sessions."""

from __future__ import annotations

from workerd.core.strays import Found, Proc, Worker, attribute

DAEMON = 100
#: The daemon's own tree: init, the shell that started it, the daemon.
BASE = {1: Proc(0, 1, 1, 0), 50: Proc(1, 50, 50, 5), DAEMON: Proc(50, DAEMON, DAEMON, 10)}


def run(procs: dict[int, Proc], workers: dict[int, Worker], *, made: frozenset[int] = frozenset(),
        known: dict[int, int] | None = None, env: dict[int, tuple[str, int]] | None = None) -> Found:
    table = {**BASE, **procs}
    own = set(workers) | set(made)
    return attribute(table, DAEMON, workers, own.__contains__, known or {}, (env or {}).get)


def worker(pid: int, start: int = 20, program: str = "w",
           instance: int = 0) -> tuple[dict[int, Proc], dict[int, Worker]]:
    return {pid: Proc(DAEMON, pid, pid, start)}, {pid: Worker(program, instance, start)}


def test_a_workers_own_session_holds_no_strays() -> None:
    procs, workers = worker(200)
    procs[201] = Proc(200, 200, 200, 21)  # a child in the worker's group
    procs[202] = Proc(201, 202, 200, 22)  # a grandchild in a group of its own, same session
    assert run(procs, workers) == Found()


def test_a_child_that_called_setsid_is_its_workers_stray() -> None:
    procs, workers = worker(200)
    procs[201] = Proc(200, 201, 201, 21)
    procs[202] = Proc(201, 201, 201, 22)  # the stray's own child, in its session
    assert run(procs, workers) == Found(strays={201: 200})


def test_a_grandchilds_stray_is_found_through_its_parent() -> None:
    procs, workers = worker(200)
    procs[201] = Proc(200, 200, 200, 21)
    procs[202] = Proc(201, 202, 202, 22)
    assert run(procs, workers) == Found(strays={202: 200})


def test_the_parent_may_already_be_an_orphan_in_the_workers_session() -> None:
    """The worker died a moment ago: its child is the daemon's now, still in its session."""
    procs, workers = worker(200)
    del procs[200]  # reaped or a zombie: not in the table
    procs[201] = Proc(DAEMON, 200, 200, 21)
    procs[202] = Proc(201, 202, 202, 22)
    assert run(procs, workers) == Found(strays={202: 200})


def test_an_orphan_in_a_known_stray_session_keeps_its_worker() -> None:
    procs, workers = worker(200)
    procs[301] = Proc(DAEMON, 300, 300, 30)  # the session's leader is gone
    assert run(procs, workers, known={300: 200}) == Found(strays={300: 200})


def test_an_orphan_is_claimed_by_the_slot_its_environment_names() -> None:
    procs, workers = worker(200, start=20, program="w", instance=0)
    other_procs, other = worker(210, start=25, program="w", instance=1)
    procs.update(other_procs)
    workers.update(other)
    procs[301] = Proc(DAEMON, 300, 300, 30)
    assert run(procs, workers, env={301: ("w", 1)}) == Found(strays={300: 210})


def test_an_orphan_older_than_its_slots_worker_is_abandoned() -> None:
    """Left by an earlier worker of the slot, which crashed and was replaced."""
    procs, workers = worker(200, start=40)
    procs[301] = Proc(DAEMON, 301, 301, 30)
    assert run(procs, workers, env={301: ("w", 0)}) == Found(abandoned={301})


def test_an_orphan_that_names_no_slot_is_abandoned() -> None:
    procs, workers = worker(200)
    procs[301] = Proc(DAEMON, 301, 301, 30)
    procs[302] = Proc(301, 301, 301, 31)
    assert run(procs, workers) == Found(abandoned={301})


def test_an_orphan_of_a_slot_with_no_worker_is_abandoned() -> None:
    procs = {301: Proc(DAEMON, 301, 301, 30)}
    assert run(procs, {}, env={301: ("w", 0)}) == Found(abandoned={301})


def test_a_member_without_the_environment_does_not_condemn_a_claimed_session() -> None:
    procs, workers = worker(200)
    procs[301] = Proc(DAEMON, 300, 300, 30)  # carries the slot's environment
    procs[302] = Proc(DAEMON, 300, 300, 31)  # cleared it
    assert run(procs, workers, env={301: ("w", 0)}) == Found(strays={300: 200})


def test_the_daemons_own_children_and_their_trees_are_not_strays() -> None:
    """A source's helper (and what it started) and the sentinel are the daemon's to handle."""
    procs = {
        400: Proc(DAEMON, 400, 400, 40),  # a helper
        401: Proc(400, 401, 401, 41),  # its setsid'ed child
        500: Proc(DAEMON, 500, 500, 50),  # the sentinel
    }
    assert run(procs, {}, made={400, 500}) == Found()


def test_processes_outside_the_daemons_tree_are_never_touched() -> None:
    procs, workers = worker(200)
    procs[600] = Proc(1, 600, 600, 60)
    procs[601] = Proc(600, 601, 601, 61)
    procs[700] = Proc(50, 700, 700, 70)  # a sibling of the daemon
    assert run(procs, workers, env={601: ("w", 0), 700: ("w", 0)}) == Found()


def test_a_chain_thousands_deep_is_attributed() -> None:
    """Walked by a loop, not recursion: a fork chain must not hit the recursion limit."""
    procs, workers = worker(200)
    for pid in range(1000, 6000):
        procs[pid] = Proc(pid - 1 if pid > 1000 else 200, 1000, 1000, 30)
    assert run(procs, workers) == Found(strays={1000: 200})


def test_only_orphans_environments_are_read() -> None:
    procs, workers = worker(200)
    procs[201] = Proc(200, 201, 201, 21)
    procs[301] = Proc(DAEMON, 301, 301, 30)
    procs[302] = Proc(301, 302, 302, 31)
    procs[600] = Proc(1, 600, 600, 60)
    read: list[int] = []

    def slot_of(pid: int) -> tuple[str, int] | None:
        read.append(pid)
        return ("w", 0)

    found = attribute({**BASE, **procs}, DAEMON, workers, set(workers).__contains__, {}, slot_of)
    assert found == Found(strays={201: 200, 301: 200, 302: 200})
    assert read == [301]


def test_an_orphan_started_in_the_same_tick_as_the_new_worker_is_the_old_ones():
    """Start times tick every 10 ms: a stray made just before its worker died and the
    replacement started may share the replacement's tick; the lower pid came first."""
    from workerd.core.strays import Proc, Worker, attribute

    daemon, new_worker, orphan = 1, 501, 500
    procs = {new_worker: Proc(daemon, new_worker, new_worker, 7000), orphan: Proc(daemon, orphan, orphan, 7000)}
    found = attribute(procs, daemon, {new_worker: Worker("w", 0, 7000)}, lambda pid: pid == new_worker, {},
                      lambda pid: ("w", 0))
    assert found.abandoned == {orphan} and found.strays == {}
