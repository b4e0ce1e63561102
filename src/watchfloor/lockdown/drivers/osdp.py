"""OSDP door driver: Watchfloor is the OSDP control panel (CP), each door an output of a PD.

Addressing. A door address `osdp://controller-N/K` names output K (1-based) of controller N of
the door's facility. A controller exposes its doors through OSDP peripheral devices (PDs) of
`doors_outputs_per_pd` outputs each: door K is output (K-1) mod P of the PD at OSDP address
(K-1) div P. Each PD is its own OSDP bus, carried over one TCP connection ("OSDP over TCP").

Transport. OSDP is a serial protocol; libosdp lets the application supply the channel, so every
PD's frames travel over a TCP connection to the controller gateway named by `doors_fleet_url`
(or a per-controller entry of `doors_osdp_endpoints`). The connection opens with one JSON line
naming the bus, `{"osdp_tunnel": 1, "facility": ..., "controller": ..., "pd": <address>}`,
answered by `{"ok": true}` (or `{"ok": false, "error": ...}`); after that the connection carries
raw OSDP frames in both directions, secure channel (SCBK, `doors_osdp_scbk`) included.

Commands and confirmation. Lock = osdp_OUT with control code 2 (permanent ON, abort any timed
operation); unlock = control code 1 (permanent OFF: back to the door's normal schedule). The PD
acknowledges the command (ACK) and then reports its output status (osdp_OSTATR, sent as its
answer to the next poll). A door is confirmed only when the reported output status shows it in
the commanded state; an ACK alone is not a confirmation. A PD reports a lock fault on the
door's supervision input (osdp_ISTATR, input K set); a door that is faulted and not in the
commanded state fails at once. A NAK, a lost connection or a PD going offline fails every door
of that bus still waiting; a door with no answer within `doors_timeout_seconds` times out.

Threads. libosdp is driven by one background thread that owns every socket and CP context
(`refresh()` is called for busy buses on every turn and for idle ones every 20 ms);
results are handed to the asyncio loop with `call_soon_threadsafe`. Connections are opened on
first use and kept (a lockdown must not wait for TCP and the OSDP handshake); a bus that fails
is closed and reopened on the next command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from watchfloor.config import Settings
from watchfloor.lockdown.drivers.base import DoorCommand, DoorResult, DoorTarget, commanded_state

log = logging.getLogger(__name__)

ADDRESS_RE = re.compile(
    r"^osdp://(?P<controller>controller-(?P<n>[1-9][0-9]{0,5}))/(?P<k>[1-9][0-9]{0,5})$"
)
CONTROLLER_RE = re.compile(r"^osdp://controller-[1-9][0-9]{0,5}$")
MAX_PD_ADDRESS = 126  # 0x7F is the broadcast address
HELLO_MAX = 4096
CONTROL_LOCK = 2  # osdp_OUT: permanent ON, abort timed operation
CONTROL_UNLOCK = 1  # osdp_OUT: permanent OFF, abort timed operation
IDLE_REFRESH_S = 0.02  # libosdp wants refresh() at least every 50 ms
SELECT_S = 0.001
HANDSHAKE_RETRY_S = 0.5  # a bus not online this long after (re)starting libosdp starts again
OPEN_AT_ONCE = 64  # connections being opened at the same time
STALL_S = 1.5  # a PD that leaves our frames unanswered this long is offline


class AddressError(ValueError):
    """A door or controller address this driver cannot command."""


@dataclass(frozen=True)
class DoorWire:
    """Where one door lives on the wire."""

    facility: str
    controller: str  # osdp://controller-N
    pd_address: int
    output: int  # 0-based output number on that PD


def parse_address(target: DoorTarget, outputs_per_pd: int) -> DoorWire:
    """The bus and output of a door, or AddressError in words an operator understands."""
    match = ADDRESS_RE.match(target.address or "")
    if not match:
        raise AddressError(
            f"Door address '{target.address}' is not an OSDP door address "
            "(expected osdp://controller-N/K)"
        )
    controller = f"osdp://{match['controller']}"
    if target.controller_address and target.controller_address != controller:
        raise AddressError(
            f"Door address '{target.address}' does not belong to its controller "
            f"'{target.controller_address}'"
        )
    index = int(match["k"]) - 1
    pd_address, output = divmod(index, outputs_per_pd)
    if pd_address > MAX_PD_ADDRESS:
        raise AddressError(
            f"Door number {index + 1} is beyond what one OSDP controller can address "
            f"({(MAX_PD_ADDRESS + 1) * outputs_per_pd} doors at {outputs_per_pd} per PD)"
        )
    return DoorWire(target.facility_code, controller, pd_address, output)


def parse_endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        raise AddressError(f"Controller endpoint '{url}' is not tcp://host:port")
    return parts.hostname, parts.port


def timeout_error(seconds: float) -> str:
    return f"No confirmation from the controller within {seconds:g} s"


# ---------------------------------------------------------------------------------------------
# The libosdp side (runs in the driver's thread)
# ---------------------------------------------------------------------------------------------


class SocketChannel:
    """An osdp.Channel over a non-blocking TCP socket (libosdp reads and writes through it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.id = 0
        self.sock = sock
        self.closed = False
        self.unanswered_since: float | None = None  # first write since the last byte read

    def read(self, max_bytes: int) -> bytes:
        if self.closed:
            return b""
        try:
            data = self.sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            self.closed = True
            return b""
        if not data:
            self.closed = True
        else:
            self.unanswered_since = None
        return data

    def write(self, buf: bytes) -> int:
        if self.closed:
            return 0
        if self.unanswered_since is None:
            self.unanswered_since = time.monotonic()
        try:
            return self.sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.closed = True
            return 0

    def flush(self) -> None:
        return None

    def stalled(self, now: float) -> bool:
        """Frames went out and nothing came back for STALL_S: the PD is gone."""
        return self.unanswered_since is not None and now - self.unanswered_since > STALL_S


@dataclass
class Pending:
    """One door of one command call, waiting on its bus."""

    call: Call
    target: DoorTarget
    output: int
    want: int  # 1 = output on (locked), 0 = off (normal schedule)
    submitted: bool = False
    acked: bool = False
    outputs_seen: int = 0  # the bus's report counters when the PD acknowledged the command:
    faults_seen: int = 0  # only reports after that count for this door


@dataclass
class Call:
    """One `command()` call: where its results go."""

    deliver: Callable[[DoorResult], None]
    command: DoorCommand
    done: set[int] = field(default_factory=set)  # device ids already answered
    cancelled: bool = False

    def finish(self, pending: Pending, ok: bool, error: str = "") -> None:
        if self.cancelled or pending.target.device_id in self.done:
            return
        self.done.add(pending.target.device_id)
        state = commanded_state(self.command) if ok else "unknown"
        self.deliver(DoorResult(pending.target.device_id, ok, state, error))


class Bus:
    """One PD reached over one TCP connection: a libosdp ControlPanel with a single PD."""

    def __init__(self, key: tuple[str, str, int], sock: socket.socket, scbk: bytes | None) -> None:
        self.key = key
        self.sock = sock
        self.channel = SocketChannel(sock)
        info: dict[str, Any] = {
            "name": f"{key[0]}/{key[1]}/pd{key[2]}",
            "address": key[2],
            "flags": 0,
            "scbk": scbk,
            "channel": self.channel,
            "version": 1,
            "model": 1,
            "vendor_code": 0,
            "serial_number": 0,
            "firmware_version": 0,
        }
        self.info = info
        self.cp = self._new_cp()
        self.secure = scbk is not None
        self.opened = self.cp_started = time.monotonic()
        self.online = False
        self.outputs = 0  # from the PD's capabilities once online
        self.waiting: list[Pending] = []  # not yet submitted to libosdp (bus not online yet)
        self.inflight: dict[int, list[Pending]] = {}  # output -> doors waiting confirmation
        self.submitted: list[Pending] = []  # in libosdp's queue, in order, awaiting ACK/NAK
        self.output_state = 0
        self.fault_state = 0
        self.output_reports = 0  # how many output / input status reports have arrived
        self.fault_reports = 0
        self.rejected: list[Pending] = []  # NAKed / aborted commands, settled after refresh
        self.failed = ""
        self.last_refresh = self.last_purge = 0.0

    def _new_cp(self) -> Any:
        import osdp_sys

        cp = osdp_sys.ControlPanel([self.info])
        cp.set_event_callback(self._on_event)
        cp.set_command_completion_callback(self._on_completion)
        return cp

    def _restart_handshake(self, now: float) -> None:
        """libosdp backs off for seconds after a failed first exchange; start afresh instead
        (a new CP context begins again at sequence 0, which a PD accepts as a restart)."""
        with contextlib.suppress(OSError):
            while self.sock.recv(65536):
                pass
        self.channel.unanswered_since = None
        self.cp = self._new_cp()
        self.cp_started = now

    # libosdp callbacks (called from inside refresh(), on the driver thread)
    def _on_completion(self, _pd: int, cmd: dict[str, Any], status: int) -> None:
        import osdp_sys

        if cmd.get("command") != osdp_sys.CMD_OUTPUT:
            return
        # libosdp sends a PD's commands in the order they were queued
        for index, pending in enumerate(self.submitted):
            if pending.output == cmd.get("output_no"):
                del self.submitted[index]
                break
        else:
            return
        if status == osdp_sys.COMPLETION_OK:
            pending.acked = True
            pending.outputs_seen = self.output_reports
            pending.faults_seen = self.fault_reports
        else:
            # decided after this refresh: a PD that went offline fails every door alike
            self.rejected.append(pending)

    def _on_event(self, _pd: int, event: dict[str, Any]) -> int:
        import osdp_sys

        if event.get("event") != osdp_sys.EVENT_STATUS:
            return 0
        report = event.get("report") or b""
        mask = sum(1 << i for i, value in enumerate(report) if value)
        if event.get("type") == osdp_sys.STATUS_REPORT_OUTPUT:
            self.output_state = mask
            self.output_reports += 1
        elif event.get("type") == osdp_sys.STATUS_REPORT_INPUT:
            self.fault_state = mask
            self.fault_reports += 1
        else:
            return 0
        for output in list(self.inflight):
            self._settle(output)
        return 0

    def _settle(self, output: int) -> None:
        """Decide the doors of one output by the reports that came after their ACK."""
        bit = 1 << output
        for pending in list(self.inflight.get(output, [])):
            if not pending.acked:
                continue
            if self.output_reports > pending.outputs_seen and bool(self.output_state & bit) == bool(
                pending.want
            ):
                pending.call.finish(pending, True)
                self._drop(pending)
            elif self.fault_reports > pending.faults_seen and self.fault_state & bit:
                pending.call.finish(
                    pending,
                    False,
                    "The controller reports a lock fault on this door; it is not "
                    + ("locked" if pending.want else "released"),
                )
                self._drop(pending)

    def _drop(self, pending: Pending) -> None:
        doors = self.inflight.get(pending.output)
        if doors and pending in doors:
            doors.remove(pending)
            if not doors:
                del self.inflight[pending.output]

    # driver-thread operations
    def add(self, pending: Pending) -> None:
        self.inflight.setdefault(pending.output, []).append(pending)
        self.waiting.append(pending)

    @property
    def busy(self) -> bool:
        return bool(self.inflight) or not self.online

    def pump(self, now: float, connect_timeout: float) -> None:
        """One turn: refresh libosdp, notice going online/offline, submit waiting commands."""
        import osdp_sys

        self.cp.refresh()
        self.last_refresh = now
        if self.channel.closed:
            self.fail("The controller closed the connection (offline)")
            return
        is_online = bool(self.cp.status() & 1) and (
            not self.secure or bool(self.cp.sc_status() & 1)
        )
        if is_online and not self.online:
            self.online = True
            with contextlib.suppress(Exception):
                self.outputs = self.cp.check_capability(0, osdp_sys.CAP_OUTPUT_CONTROL)[1]
        elif self.online and (not is_online or self.channel.stalled(now)):
            # libosdp polls an idle PD every 50 ms and a PD answers every frame at once
            self.fail("The controller stopped answering (offline)")
            return
        elif not self.online and now - self.opened > connect_timeout:
            self.fail("The controller did not complete the OSDP handshake")
            return
        elif not self.online and now - self.cp_started > HANDSHAKE_RETRY_S:
            self._restart_handshake(now)
            return
        if not self.online:
            return
        if now - self.last_purge > 0.25:  # forget calls that gave up waiting
            self.last_purge = now
            for output, doors in list(self.inflight.items()):
                doors[:] = [p for p in doors if not p.call.cancelled]
                if not doors:
                    del self.inflight[output]
        for pending in self.rejected:
            pending.call.finish(pending, False, "The controller rejected the command")
            self._drop(pending)
        self.rejected.clear()
        while self.waiting:
            pending = self.waiting.pop(0)
            if pending.call.cancelled or pending.target.device_id in pending.call.done:
                self._drop(pending)
                continue
            if pending.output >= self.outputs:
                pending.call.finish(
                    pending,
                    False,
                    f"The controller has no output {pending.output + 1} on OSDP address "
                    f"{self.key[2]} (it reports {self.outputs})",
                )
                self._drop(pending)
                continue
            ok = self.cp.submit_command(
                0,
                {
                    "command": osdp_sys.CMD_OUTPUT,
                    "output_no": pending.output,
                    "control_code": CONTROL_LOCK if pending.want else CONTROL_UNLOCK,
                    "timer_count": 0,
                },
            )
            if not ok:
                pending.call.finish(pending, False, "The controller's command queue is full")
                self._drop(pending)
                continue
            pending.submitted = True
            self.submitted.append(pending)

    def fail(self, error: str) -> None:
        if not self.failed:
            self.failed = error
        for doors in list(self.inflight.values()):
            for pending in doors:
                pending.call.finish(pending, False, error)
        self.inflight.clear()
        self.waiting.clear()
        self.submitted.clear()
        self.rejected.clear()
        self.close()

    def close(self) -> None:
        self.channel.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class Engine:
    """The driver thread: owns every Bus and drives libosdp."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.buses: dict[tuple[str, str, int], Bus] = {}
        self.inbox: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="osdp-cp", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the driver thread."""
        with self.lock:
            self.inbox.append(fn)
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")

    def attach(self, bus: Bus) -> None:
        old = self.buses.get(bus.key)
        if old is not None and old is not bus:
            old.fail("Replaced by a new connection")
            self._forget(old)
        self.buses[bus.key] = bus
        self.selector.register(bus.sock, selectors.EVENT_READ, bus)

    def _forget(self, bus: Bus) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(bus.sock)
        if self.buses.get(bus.key) is bus:
            del self.buses[bus.key]
        bus.close()

    def _run(self) -> None:
        while not self.stopping:
            try:
                self._turn()
            except Exception:  # pragma: no cover - the thread must not die silently
                log.exception("OSDP driver thread error")
                time.sleep(0.01)
        for bus in list(self.buses.values()):
            bus.fail("The door driver was closed")
            self._forget(bus)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()

    def _turn(self) -> None:
        busy = any(bus.busy for bus in self.buses.values())
        events = self.selector.select(SELECT_S if busy else IDLE_REFRESH_S)
        for key, _mask in events:
            if key.fileobj is self.wake_r:
                with contextlib.suppress(OSError):
                    self.wake_r.recv(4096)
        with self.lock:
            work, self.inbox = self.inbox, []
        for fn in work:
            fn()
        now = time.monotonic()
        ready = {key.data for key, _mask in events if key.data is not None}
        for bus in list(self.buses.values()):
            if bus in ready or bus.busy or now - bus.last_refresh >= IDLE_REFRESH_S:
                bus.pump(now, self.connect_timeout)
                if bus.failed:
                    self._forget(bus)

    def stop(self) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")
        self.thread.join(5)


# ---------------------------------------------------------------------------------------------
# The asyncio side
# ---------------------------------------------------------------------------------------------


class OsdpDoorDriver:
    name = "osdp"

    def __init__(
        self,
        *,
        fleet_url: str,
        endpoints: dict[str, str] | None = None,
        timeout: float = 3.0,
        connect_timeout: float = 2.0,
        outputs_per_pd: int = 16,
        scbk: bytes | None = None,
    ) -> None:
        import osdp_sys

        osdp_sys.set_loglevel(osdp_sys.LOG_CRIT)  # failures are reported per door instead
        self.fleet_url = fleet_url
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.outputs_per_pd = outputs_per_pd
        self.scbk = scbk
        self.engine: Engine | None = None
        self._connecting: dict[tuple[str, str, int], asyncio.Task[str]] = {}
        self._buses: dict[tuple[str, str, int], Bus] = {}  # the newest bus per key
        self._opening = asyncio.Semaphore(OPEN_AT_ONCE)
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> OsdpDoorDriver:
        return cls(
            fleet_url=settings.doors_fleet_url,
            endpoints=settings.doors_osdp_endpoints,
            timeout=settings.doors_timeout_seconds,
            connect_timeout=settings.doors_connect_timeout_seconds,
            outputs_per_pd=settings.doors_outputs_per_pd,
            scbk=bytes.fromhex(settings.doors_osdp_scbk) if settings.doors_osdp_scbk else None,
        )

    def endpoint_for(self, facility: str, controller: str) -> tuple[str, int]:
        url = (
            self.endpoints.get(f"{facility}/{controller}")
            or self.endpoints.get(facility)
            or self.fleet_url
        )
        return parse_endpoint(url)

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = Engine(self.connect_timeout)
        return self.engine

    async def _open(self, key: tuple[str, str, int]) -> str:
        """Connect one bus and hand it to the engine; '' or why not."""
        facility, controller, pd_address = key
        try:
            host, port = self.endpoint_for(facility, controller)
        except AddressError as exc:
            return str(exc)
        async with self._opening:
            return await self._open_now(key, facility, controller, pd_address, host, port)

    async def _open_now(
        self, key: tuple[str, str, int], facility: str, controller: str, pd_address: int,
        host: str, port: int,
    ) -> str:  # fmt: skip
        where = f"Controller {controller} at {facility}"
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self.connect_timeout):
                await loop.sock_connect(sock, (host, port))
                hello = {"osdp_tunnel": 1, "facility": facility, "controller": controller}
                hello["pd"] = pd_address
                await loop.sock_sendall(sock, json.dumps(hello).encode() + b"\n")
                answer = b""
                while not answer.endswith(b"\n"):
                    chunk = await loop.sock_recv(sock, 1)  # byte by byte: OSDP follows
                    if not chunk:
                        raise ConnectionResetError(0, "connection closed")
                    answer += chunk
                    if len(answer) > HELLO_MAX:
                        raise ConnectionError(0, "oversize answer")
        except TimeoutError:
            sock.close()
            return f"{where} did not answer within {self.connect_timeout:g} s"
        except OSError as exc:
            sock.close()
            reason = exc.strerror or type(exc).__name__
            return f"{where} is unreachable ({reason})"
        try:
            reply = json.loads(answer)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            sock.close()
            why = reply.get("error") if isinstance(reply, dict) else None
            return f"{where} refused the connection: {why or 'unexpected answer'}"
        bus = Bus(key, sock, self.scbk)
        engine = self._engine()
        self._buses[key] = bus
        engine.call(lambda: engine.attach(bus))
        return ""

    async def _ensure(self, key: tuple[str, str, int]) -> str:
        """An open bus for key (connecting once, however many callers wait); '' or why not."""
        bus = self._buses.get(key)
        if bus is not None and not bus.failed:
            return ""
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._open(key))
            self._connecting[key] = task
            task.add_done_callback(lambda _t: self._connecting.pop(key, None))
        return await asyncio.shield(task)

    def _plan(
        self, targets: Sequence[DoorTarget], call: Call
    ) -> tuple[dict[int, DoorTarget], list[DoorResult], dict[tuple[str, str, int], list[Pending]]]:
        want = 1 if call.command is DoorCommand.LOCK else 0
        remaining: dict[int, DoorTarget] = {}
        early: list[DoorResult] = []
        by_bus: dict[tuple[str, str, int], list[Pending]] = {}
        for target in targets:
            if target.device_id in remaining:
                continue  # one result per door even if listed twice
            remaining[target.device_id] = target
            try:
                wire = parse_address(target, self.outputs_per_pd)
            except AddressError as exc:
                early.append(DoorResult(target.device_id, False, "unknown", str(exc)))
                continue
            key = (wire.facility, wire.controller, wire.pd_address)
            by_bus.setdefault(key, []).append(Pending(call, target, wire.output, want))
        return remaining, early, by_bus

    async def command(
        self, targets: Sequence[DoorTarget], command: DoorCommand
    ) -> AsyncIterator[DoorResult]:
        if self.closed:
            raise RuntimeError("The door driver is closed")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[DoorResult] = asyncio.Queue()
        deadline = loop.time() + self.timeout

        def deliver(result: DoorResult) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, result)

        call = Call(deliver=deliver, command=command)
        remaining, early, by_bus = self._plan(targets, call)

        async def start(key: tuple[str, str, int], doors: list[Pending]) -> None:
            error = await self._ensure(key)
            if error:
                for pending in doors:
                    call.finish(pending, False, error)
                return
            engine = self._engine()
            bus = self._buses[key]

            def hand_over() -> None:
                if bus.failed:
                    for pending in doors:
                        call.finish(pending, False, bus.failed)
                    return
                for pending in doors:
                    bus.add(pending)

            engine.call(hand_over)

        starters = [asyncio.ensure_future(start(key, doors)) for key, doors in by_bus.items()]
        try:
            for result in early:
                remaining.pop(result.device_id, None)
                yield result
            while remaining:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    result = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if remaining.pop(result.device_id, None) is not None:
                    yield result
            call.cancelled = True
            for device_id in list(remaining):
                remaining.pop(device_id)
                yield DoorResult(device_id, False, "unknown", timeout_error(self.timeout))
        finally:
            call.cancelled = True
            for task in starters:
                task.cancel()

    async def warm_up(self, targets: Sequence[DoorTarget]) -> dict[int, str]:
        """Open the connections these doors need and wait for the OSDP handshake, as a running
        system keeps them open; returns, per door that cannot be reached, why."""
        errors: dict[int, str] = {}
        keys: dict[tuple[str, str, int], list[int]] = {}
        for target in targets:
            try:
                wire = parse_address(target, self.outputs_per_pd)
            except AddressError as exc:
                errors[target.device_id] = str(exc)
                continue
            keys.setdefault((wire.facility, wire.controller, wire.pd_address), []).append(
                target.device_id
            )
        results = await asyncio.gather(*(self._ensure(key) for key in keys))
        for ids, error in zip(keys.values(), results, strict=True):
            if error:
                errors.update(dict.fromkeys(ids, error))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while loop.time() < deadline:
            buses = [self._buses.get(key) for key in keys]
            if all(bus is None or bus.online or bus.failed for bus in buses):
                break
            await asyncio.sleep(0.01)
        return errors

    async def close(self) -> None:
        self.closed = True
        for task in list(self._connecting.values()):
            task.cancel()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await asyncio.to_thread(engine.stop)
