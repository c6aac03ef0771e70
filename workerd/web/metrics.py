"""Prometheus /metrics, served from the daemon's own loop (web/http.py, no thread).

A Collector turns a status snapshot (runtime/status.py), taken at scrape time, into metric
families, so the metrics can never disagree with `workerctl status`. prometheus_client is imported
only when `[daemon] metrics` is set: a daemon without metrics does not pay for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from workerd.runtime.status import CpuMeter, Snapshot
from workerd.runtime.tally import JOB_BUCKETS
from workerd.web.http import Request, Response, text


class StatusCollector:
    """The metric families of a status snapshot taken at each scrape. CPU% is since the
    previous scrape: this collector keeps its own baseline, apart from workerctl's."""

    def __init__(self, take: Callable[[], Snapshot]) -> None:
        self._take = take
        self._meter = CpuMeter()

    def collect(self) -> Iterator[Metric]:
        snapshot = self._take()
        cpu_by_pid = self._meter.percent(snapshot)
        desired = GaugeMetricFamily("workerd_program_desired", "Processes wanted.", labels=["program"])
        running = GaugeMetricFamily("workerd_program_running", "Processes in state running.", labels=["program"])
        state = GaugeMetricFamily("workerd_process_state", "1 for the state each slot is in.",
                                  labels=["program", "instance", "state"])
        restarts = CounterMetricFamily("workerd_process_restarts", "Automatic restarts of a slot.",
                                       labels=["program", "instance"])
        rss = GaugeMetricFamily("workerd_process_rss_bytes", "RSS of the worker's process tree.",
                                labels=["program", "instance"])
        pss = GaugeMetricFamily("workerd_process_pss_bytes", "PSS of the worker's process tree (shared pages "
                                "counted once: what memory limits judge).", labels=["program", "instance"])
        cpu = GaugeMetricFamily("workerd_process_cpu_percent", "CPU of the worker's tree since the previous scrape.",
                                labels=["program", "instance"])
        depth = GaugeMetricFamily("workerd_autoscale_depth", "Last queue depth read.", labels=["program"])
        age = GaugeMetricFamily("workerd_autoscale_oldest_job_seconds", "Age of the oldest job, where known.",
                                labels=["program"])
        wanted = GaugeMetricFamily("workerd_autoscale_desired", "The autoscaler's count.", labels=["program"])
        dead = GaugeMetricFamily("workerd_autoscale_dead_letters", "Dead letters (not used for scaling).",
                                 labels=["program"])
        failing = GaugeMetricFamily("workerd_autoscale_source_error_seconds",
                                    "How long the source has been failing (0: it answers).", labels=["program"])
        busy = GaugeMetricFamily("workerd_process_busy", "1 while the worker reports a job (BUSY=1).",
                                 labels=["program", "instance"])
        log_dropped = CounterMetricFamily("workerd_log_lines_dropped", "Output lines dropped because the "
                                          "program's log could not be written (a full disk).", labels=["program"])
        for program in snapshot.programs:
            name = program.name
            desired.add_metric([name], program.desired)
            log_dropped.add_metric([name], program.log_lines_dropped)
            running.add_metric([name], program.running)
            for p in program.processes:
                if p.outgoing:
                    continue  # its instance number is taken by the process replacing it
                instance = str(p.instance)
                state.add_metric([name, instance, p.state], 1)
                busy.add_metric([name, instance], int(p.busy))
                restarts.add_metric([name, instance], p.restarts)
                if p.rss is not None:
                    rss.add_metric([name, instance], p.rss)
                if p.pss is not None:
                    pss.add_metric([name, instance], p.pss)
                if p.pid in cpu_by_pid:
                    cpu.add_metric([name, instance], cpu_by_pid[p.pid])
            auto = program.autoscale
            if auto:
                if auto["depth"] is not None:
                    depth.add_metric([name], auto["depth"])
                if auto["age"] is not None:
                    age.add_metric([name], auto["age"])
                wanted.add_metric([name], auto["desired"])
                failing.add_metric([name], auto["error_for"] or 0)
                if auto["dead_letters"] is not None:
                    dead.add_metric([name], auto["dead_letters"])
        yield from (desired, running, state, restarts, rss, pss, cpu, busy, depth, age, wanted, failing, dead,
                    log_dropped)
        sentinel = snapshot.daemon["sentinel"]
        yield GaugeMetricFamily("workerd_sentinel_up", "1 while the sentinel runs (it kills the workers' "
                                "children if the daemon dies).", value=int(sentinel["pid"] is not None))
        yield CounterMetricFamily("workerd_sentinel_restarts", "New sentinels started after one died.",
                                  value=sentinel["restarts"])
        notify = snapshot.daemon["notify"]
        yield CounterMetricFamily("workerd_notify_datagrams", "Datagrams read on the notify socket.",
                                  value=notify["received"])
        dropped = CounterMetricFamily("workerd_notify_dropped", "Notify datagrams dropped, by why.",
                                      labels=["reason"])
        for reason, count in notify["dropped"].items():
            dropped.add_metric([reason], count)
        yield dropped
        limits = CounterMetricFamily("workerd_limit_restarts", "Restarts for a watched limit.",
                                     labels=["program", "limit"])
        for (name, limit), count in snapshot.limit_restarts.items():
            limits.add_metric([name, limit], count)
        decisions = CounterMetricFamily("workerd_autoscale_decisions", "Scaling decisions.",
                                        labels=["program", "direction"])
        for (name, direction), count in snapshot.decisions.items():
            decisions.add_metric([name, direction], count)
        yield limits
        yield decisions
        forced = CounterMetricFamily("workerd_forced_stops", "Workers the daemon stopped itself, by cause: "
                                     "limit, watchdog (a hang), not ready (no READY=1 by start_timeout).",
                                     labels=["program", "cause"])
        for (name, cause), count in snapshot.forced.items():
            forced.add_metric([name, cause], count)
        yield forced
        overdue = CounterMetricFamily("workerd_stop_timeouts", "Stops that ran out of stop_timeout: SIGKILL to "
                                      "what was still running.", labels=["program"])
        for name, count in snapshot.stop_timeouts.items():
            overdue.add_metric([name], count)
        yield overdue
        by_reason = CounterMetricFamily("workerd_restarts", "Restarts of workers, by reason: crash, failed start, "
                                        "exit (status 0 under restart = always), limit, watchdog, not ready, "
                                        "manual (workerctl restart).", labels=["program", "reason"])
        for (name, reason), count in snapshot.restarts.items():
            by_reason.add_metric([name, reason], count)
        yield by_reason
        jobs = HistogramMetricFamily("workerd_job_duration_seconds", "Jobs reported by BUSY=1 ... BUSY=0, by "
                                     "duration (_count: the jobs done).", labels=["program"])
        for name, (counts, total) in snapshot.jobs.items():
            cumulative = list(itertools.accumulate(counts))
            bounds = [f"{b:g}" for b in JOB_BUCKETS] + ["+Inf"]
            jobs.add_metric([name], list(zip(bounds, cumulative, strict=True)), total)
        yield jobs


class MetricsPage:
    """GET /metrics: the registry rendered at scrape time (served by web/http.py)."""

    def __init__(self, collector: StatusCollector) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(collector)
        ProcessCollector(registry=self._registry)  # the daemon's own CPU, memory, open files

    async def __call__(self, request: Request) -> Response:
        if request.method != "GET":
            return text(405, "GET /metrics")
        return Response(200, generate_latest(self._registry), "text/plain; version=0.0.4; charset=utf-8")
