"""Depth from Amazon SQS: ApproximateNumberOfMessages (+ NotVisible with include_in_flight).

boto3 only blocks, and the daemon has one thread, so the requests are made by a
helper process (`python -m workerd.sources.sqs_probe`, see there) started through
the injected Launcher. It is kept between readings: loading boto3 costs about 0.4 s
of CPU, too much to pay on every interval. Each reading writes one request line and
reads one answer line.

At most one request is in flight. A reading that is cancelled (the autoscaler's
timeout) leaves the helper and its request alone, and the next reading waits for
that same answer, so a slow start or a slow answer never desynchronises the
exchange. A helper that exits, answers garbage, or stays silent for longer than
PATIENCE is killed (its whole process group) and started again on the next reading.
"""

from __future__ import annotations

import asyncio
import json
import sys

from workerd.core.scaling import QueueReading
from workerd.sources.base import SourceError, check_depth
from workerd.sources.child import Child, Launcher

#: Seconds without the answer the helper owes (its start included) before it is
#: taken for stuck; at least this, or three timeouts.
PATIENCE = 30.0


class SqsSource:
    def __init__(self, queue_url: str, region: str, endpoint_url: str | None, include_in_flight: bool,
                 timeout: float, launcher: Launcher) -> None:
        self._argv = [sys.executable, "-m", "workerd.sources.sqs_probe", "--queue-url", queue_url,
                      "--region", region, "--timeout", f"{timeout:g}"]
        if endpoint_url is not None:
            self._argv += ["--endpoint-url", endpoint_url]
        if include_in_flight:
            self._argv.append("--include-in-flight")
        self._launcher = launcher
        self._patience = max(PATIENCE, 3 * timeout)
        self._what = f"sqs {queue_url}"
        self._child: Child | None = None
        self._ready = False
        self._asked = False
        #: When the answer the helper owes was asked for (or the helper started).
        self._since = 0.0

    async def read(self) -> QueueReading:
        loop = asyncio.get_running_loop()
        if self._child is None:
            try:
                self._child = await Child.start(self._launcher, self._argv)
            except SourceError as exc:
                raise SourceError(f"{self._what}: cannot start the helper: {exc}") from None
            self._ready = self._asked = False
            self._since = loop.time()
        child = self._child
        try:
            if loop.time() - self._since > self._patience:
                raise SourceError(f"no answer from the helper in {self._patience:g}s (restarting it)")
            if not self._ready:
                if (await self._answer(child)).get("ready") is not True:
                    raise SourceError("the helper did not start properly")
                self._ready = True
            if not self._asked:
                child.send(b"read\n")
                self._asked, self._since = True, loop.time()
            answer = await self._answer(child)
            self._asked = False
        except SourceError as exc:
            await self.close()
            raise SourceError(f"{self._what}: {exc}") from None
        if "error" in answer:
            raise SourceError(f"{self._what}: {answer['error']}")
        if "depth" not in answer:
            await self.close()
            raise SourceError(f"{self._what}: the helper answered garbage: {answer!r:.80}")
        return QueueReading(check_depth(answer["depth"], self._what))

    async def _answer(self, child: Child) -> dict[str, object]:
        try:
            line = await child.stdout.readline()
        except ValueError:  # longer than the stream's limit
            raise SourceError("the helper answered garbage (an endless line)") from None
        if not line:
            try:
                status = (await asyncio.wait_for(asyncio.shield(child.exited), 1.0)).describe()
            except asyncio.TimeoutError:
                status = "closed its output"
            complaint = child.stderr_tail()
            raise SourceError(f"the helper ended ({status})" + (f": {complaint}" if complaint else ""))
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SourceError(f"the helper answered garbage: {line[:80]!r}")
        return answer

    async def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.close()
