"""Where reject events go: JSON lines (a file or stdout), a Python callback, an HTTP webhook, MQTT.

Every sink gets every event in the order verdicts were given. The file and stdout are written on
the run's thread (one short line each, flushed at once, so nothing seen is lost when the run is
killed: at most the line being written is cut). The webhook and MQTT send on threads of their own
(the loop over frames never waits on a network); a receiver that fails is counted and said once,
and events keep going to the other sinks.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from conveyor_qc.errors import ConveyorQCError

__all__ = ["CallbackSink", "JsonLinesSink", "MqttSink", "RejectTargets", "SinkError", "WebhookSink", "open_sinks"]

#: Seconds a webhook request or an MQTT connection may take before it counts as failed.
NETWORK_TIMEOUT = 2.0
#: Events waiting for a network sink; beyond this, the oldest waiting ones are counted as failed
#: for that sink (they are still in the other sinks, and in rejects.jsonl).
QUEUE_EVENTS = 1000
#: Seconds the end of a run waits for the network sinks to send what they hold.
DRAIN_SECONDS = 5.0


class SinkError(ConveyorQCError, ValueError):
    """A sink could not be opened (bad URL, broker not answering, file not writable)."""


def _line(event: dict) -> bytes:
    return (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()


class JsonLinesSink:
    """One JSON object a line, appended and flushed (``-``: stdout)."""

    name = "jsonl"

    def __init__(self, target: str | Path, stream: IO[str] | None = None):
        self.target = str(target)
        self.sent = self.failed = 0
        self._stream = stream
        self._fd: int | None = None
        if stream is None and self.target == "-":
            self._stream = sys.stdout
        elif stream is None:
            try:
                self._fd = os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            except OSError as exc:
                raise SinkError(f"cannot write reject events to {self.target}: {exc.strerror}") from None

    def send(self, event: dict) -> None:
        data = _line(event)
        if self._fd is not None:
            os.write(self._fd, data)  # one write of a whole line: O_APPEND keeps lines whole
        else:
            assert self._stream is not None
            self._stream.write(data.decode())
            self._stream.flush()
        self.sent += 1

    def drain(self) -> None:
        pass  # written as sent

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def status(self) -> dict:
        return {"target": self.target, "sent": self.sent}


class CallbackSink:
    """A Python callable, called on the run's thread with each event's dict: return quickly."""

    name = "callback"

    def __init__(self, fn: Callable[[dict], Any]):
        self.fn = fn
        self.sent = 0

    def send(self, event: dict) -> None:
        self.fn(event)
        self.sent += 1

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    def status(self) -> dict:
        return {"sent": self.sent}


class _ThreadedSink:
    """A sink that sends from a thread of its own, through a bounded queue."""

    name = "network"

    def __init__(self, warn: Callable[[str], None]):
        self.sent = self.failed = 0
        self._warn = warn
        self._warned = False
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=QUEUE_EVENTS)
        self._pending = 0  # events given and not yet sent or failed
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"reject-{self.name}", daemon=True)
        self._thread.start()

    def send(self, event: dict) -> None:
        try:
            with self._idle:
                self._pending += 1
            self._queue.put_nowait(event)
        except queue.Full:
            self._done()
            self._failure("its queue is full (the receiver is too slow)")

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait (at most ``timeout`` seconds) until every event given so far is sent or failed."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(DRAIN_SECONDS)
        if self._thread.is_alive():  # still stuck on a receiver: what it holds is counted as failed
            self.failed += self._queue.qsize()

    def status(self) -> dict:
        return {"sent": self.sent, "failed": self.failed}

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._deliver(event)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001  any failure of a receiver is counted, never fatal
                self._failure(str(exc) or type(exc).__name__)
            finally:
                self._done()

    def _failure(self, why: str) -> None:
        self.failed += 1
        if not self._warned:  # once: a receiver that is down would otherwise fill the log
            self._warned = True
            self._warn(f"reject events not delivered to {self.describe()}: {why} (counted in summary.json)")

    def describe(self) -> str:
        raise NotImplementedError

    def _deliver(self, event: dict) -> None:
        raise NotImplementedError


class WebhookSink(_ThreadedSink):
    """An HTTP POST of each event's JSON to a URL (2xx: delivered)."""

    name = "webhook"

    def __init__(self, url: str, warn: Callable[[str], None]):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SinkError(f"--reject-webhook needs an http:// or https:// URL, got {url!r}")
        self.url = url
        super().__init__(warn)

    def describe(self) -> str:
        return f"webhook {self.url}"

    def _deliver(self, event: dict) -> None:
        request = urllib.request.Request(
            self.url, data=_line(event), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT) as reply:
            reply.read()

    def status(self) -> dict:
        return {"url": self.url, **super().status()}


class MqttSink(_ThreadedSink):
    """Each event published as JSON to an MQTT topic, QoS 1 (paho-mqtt), from
    ``mqtt://HOST[:PORT]/TOPIC``. The broker must answer when the run starts; a broker lost later
    is reconnected by paho, which holds what is published meanwhile."""

    name = "mqtt"

    def __init__(self, url: str, warn: Callable[[str], None], client_id: str = ""):
        parts = urlsplit(url)
        topic = parts.path.lstrip("/")
        if parts.scheme != "mqtt" or not parts.hostname or not topic:
            raise SinkError(f"--reject-mqtt needs mqtt://HOST[:PORT]/TOPIC, got {url!r}")
        try:
            import paho.mqtt.client as mqtt
        except ImportError:  # a dependency: only a broken install lacks it
            raise SinkError("--reject-mqtt needs paho-mqtt: pip install paho-mqtt") from None
        self.url, self.topic = url, topic
        self.host, self.port = parts.hostname, parts.port or 1883
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise SinkError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        client.loop_start()
        if not connected.wait(NETWORK_TIMEOUT):
            client.loop_stop()
            raise SinkError(f"the MQTT broker at {self.host}:{self.port} did not accept the connection")
        self._client = client
        super().__init__(warn)

    def describe(self) -> str:
        return f"MQTT {self.host}:{self.port} topic {self.topic}"

    def _deliver(self, event: dict) -> None:
        info = self._client.publish(self.topic, _line(event).rstrip(b"\n"), qos=1)
        info.wait_for_publish(NETWORK_TIMEOUT)
        if not info.is_published():
            raise OSError(f"not acknowledged by the broker within {NETWORK_TIMEOUT:g} s")

    def close(self) -> None:
        super().close()
        self._client.disconnect()
        self._client.loop_stop()

    def status(self) -> dict:
        return {"broker": f"{self.host}:{self.port}", "topic": self.topic, **super().status()}


@dataclass(frozen=True)
class RejectTargets:
    """Where reject events go besides rejects.jsonl in the run folder (``run --reject-events``,
    ``--reject-webhook``, ``--reject-mqtt``)."""

    #: A JSON-lines file, or "-" for stdout.
    events: str | None = None
    #: An http:// or https:// URL each event is POSTed to.
    webhook: str | None = None
    #: mqtt://HOST[:PORT]/TOPIC each event is published to.
    mqtt: str | None = None


def open_sinks(targets: RejectTargets, callback: Callable[[dict], Any] | None, warn: Callable[[str], None]) -> list:
    """The sinks ``targets`` and ``callback`` ask for, opened (a broker that does not answer fails
    here, before the run writes anything). A sink that cannot open closes the ones opened before
    it and raises :class:`SinkError`."""
    sinks: list = []
    try:
        if targets.mqtt:
            sinks.append(MqttSink(targets.mqtt, warn))
        if targets.webhook:
            sinks.append(WebhookSink(targets.webhook, warn))
        if targets.events:
            sinks.append(JsonLinesSink(targets.events))
        if callback is not None:
            sinks.append(CallbackSink(callback))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
