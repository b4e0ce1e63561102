"""A simulated fleet of OSDP door controllers, run as its own process (`watchfloor simulate doors`).

Every controller of the fleet is a set of libosdp PeripheralDevices (one per `outputs_per_pd`
doors, at OSDP addresses 0, 1, ...), reached the way the OSDP driver reaches real controllers
(see lockdown/drivers/osdp.py): one TCP connection per PD on the fleet port, opened with a JSON
hello line naming facility, controller and PD address, then raw OSDP frames (secure channel when
an SCBK is configured). A PD acknowledges osdp_OUT, applies it to the door's output and reports
its output status (osdp_OSTATR) and lock-fault inputs (osdp_ISTATR) on the next poll.

Fault controls, per door or per controller, over a line-based JSON control port on loopback
(`FleetControl` is the client; `echo '{"op": "ping"}' | nc 127.0.0.1 4602` works too):

    {"op": "set", "facility": F, "controller": "osdp://controller-1", "door": 3,
     "behaviour": "confirm" | "fail" | "lag" | "silent", "delay": 2.5}
        door omitted = the whole controller's doors; facility and controller omitted = every door.
        fail: ACK, then report a lock fault, output unchanged.  lag: ACK, output changes after
        `delay` seconds.  silent: ACK, nothing changes and nothing is reported.
    {"op": "drop", "facility": F, "controller": C}      the controller drops off: its connections
                                                        close and new ones are refused
    {"op": "hang", "facility": F, "controller": C}      it stays connected but stops answering
    {"op": "restore", "facility": F, "controller": C}   back online (after drop or hang)
    {"op": "reset"}                                     every door unlocked, every fault cleared
    {"op": "state", "facility": F, "controller": C}     {"doors": {"3": "locked", ...}}
    {"op": "stats"} / {"op": "ping"}

Each request is one line; each answer one line: {"ok": true, ...} or {"ok": false, "error": ...}.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import json
import logging
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from watchfloor.lockdown.drivers.base import DoorTarget
from watchfloor.lockdown.drivers.osdp import ADDRESS_RE, CONTROLLER_RE, MAX_PD_ADDRESS

log = logging.getLogger(__name__)

BEHAVIOURS = ("confirm", "fail", "lag", "silent")
LINE_MAX = 4096
SWEEP_S = 0.02  # every PD is refreshed at least this often (libosdp wants < 50 ms)


@dataclass(frozen=True)
class Plan:
    behaviour: str = "confirm"
    delay: float = 0.0


@dataclass
class ControllerSim:
    facility: str
    address: str  # osdp://controller-N
    doors: set[int] = field(default_factory=set)  # door numbers K (1-based)
    outputs: dict[int, int] = field(default_factory=dict)  # K -> 1 locked / 0 normal
    faults: set[int] = field(default_factory=set)
    plans: dict[int, Plan] = field(default_factory=dict)
    plan: Plan | None = None  # the whole controller's behaviour, when set
    dropped: bool = False
    hung: bool = False
    sessions: dict[int, Session] = field(default_factory=dict)  # PD address -> its connection

    def plan_for(self, door: int, default: Plan) -> Plan:
        return self.plans.get(door) or self.plan or default


def generated_fleet(
    sites: int, doors_per_site: int, doors_per_controller: int = 64, prefix: str = "SIM"
) -> list[DoorTarget]:
    """The doors of a generated fleet (device ids 1..n), as the driver is given them."""
    targets: list[DoorTarget] = []
    device_id = 0
    for site in range(1, sites + 1):
        facility = f"{prefix}-{site:04d}"
        for index in range(doors_per_site):
            controller, door = divmod(index, doors_per_controller)
            device_id += 1
            ctrl = f"osdp://controller-{controller + 1}"
            targets.append(
                DoorTarget(device_id, facility, f"DOOR-{index + 1:04d}", f"{ctrl}/{door + 1}", ctrl)
            )
    return targets


async def fleet_from_database(facilities: list[str] | None = None) -> list[DoorTarget]:
    """The OSDP doors of the database (the demo organisation's, once loaded)."""
    from sqlalchemy import select

    from watchfloor.config import get_settings
    from watchfloor.db import make_engine, make_sessionmaker
    from watchfloor.sites.models import Device, Facility

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as db:
            query = (
                select(Device.id, Facility.code, Device.code, Device.address)
                .join(Facility, Facility.id == Device.facility_id)
                .where(Device.kind == "door", Device.protocol == "osdp")
                .order_by(Device.id)
            )
            if facilities:
                query = query.where(Facility.code.in_(facilities))
            rows = (await db.execute(query)).all()
    finally:
        await engine.dispose()
    targets = []
    for device_id, facility, code, address in rows:
        match = ADDRESS_RE.match(address or "")
        if match:
            ctrl = f"osdp://{match['controller']}"
            targets.append(DoorTarget(device_id, facility, code, address, ctrl))
    return targets


class Session:
    """One TCP connection: first the hello line, then one PD's OSDP frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.pd: Any = None
        self.controller: ControllerSim | None = None
        self.pd_address = 0
        self.closed = False
        self.dirty_out = False
        self.dirty_in = False
        self.faults_reported = b""
        self.hot_until = 0.0

    # osdp.Channel interface
    id = 0

    def read(self, max_bytes: int) -> bytes:
        if self.buffer:
            data, self.buffer = self.buffer[:max_bytes], self.buffer[max_bytes:]
            return data
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
        return data

    def write(self, buf: bytes) -> int:
        if self.closed:
            return 0
        try:
            return self.sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.closed = True
            return 0

    def flush(self) -> None:
        return None


class ControlConn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


class FleetSimulator:
    def __init__(
        self,
        doors: Iterable[DoorTarget],
        *,
        host: str = "127.0.0.1",
        port: int = 4601,
        control_port: int = 4602,
        outputs_per_pd: int = 16,
        scbk: bytes | None = None,
    ) -> None:
        self.outputs_per_pd = outputs_per_pd
        self.scbk = scbk
        self.default = Plan()
        self.controllers: dict[tuple[str, str], ControllerSim] = {}
        for door in doors:
            match = ADDRESS_RE.match(door.address)
            if not match:
                continue
            key = (door.facility_code, f"osdp://{match['controller']}")
            ctrl = self.controllers.setdefault(key, ControllerSim(*key))
            ctrl.doors.add(int(match["k"]))
            ctrl.outputs.setdefault(int(match["k"]), 0)
        self.selector = selectors.DefaultSelector()
        self.listener = self._listen(host, port)
        self.control = self._listen(host, control_port)
        self.port = self.listener.getsockname()[1]
        self.control_port = self.control.getsockname()[1]
        self.sessions: set[Session] = set()
        self.hot: set[Session] = set()  # refreshed on every turn (traffic, pending reports)
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.stopping = False
        self.commands = 0
        self.last_sweep = 0.0

    def _listen(self, host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, "listen")
        return sock

    # -- the loop ------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        try:
            while not self.stopping:
                self.turn()
        finally:
            self.shutdown()

    def turn(self) -> None:
        now = time.monotonic()
        wait = 0.0005 if self.hot else SWEEP_S
        if self.timers:
            wait = max(0.0, min(wait, self.timers[0][0] - now))
        for key, _mask in self.selector.select(wait):
            if key.data == "listen":
                self._accept(key.fileobj)  # type: ignore[arg-type]
            elif isinstance(key.data, ControlConn):
                self._control_read(key.data)
            elif isinstance(key.data, Session):
                session = key.data
                if session.pd is None:
                    self._hello_read(session)
                else:
                    session.hot_until = time.monotonic() + 0.01
                    self.hot.add(session)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _due, _n, fn = heapq.heappop(self.timers)
            fn()
        if now - self.last_sweep >= SWEEP_S:
            self.last_sweep = now
            due = list(self.sessions)
        else:
            due = list(self.hot)
        for session in due:
            if session.pd is None or session.controller is None or session.controller.hung:
                self.hot.discard(session)
                continue
            session.pd.refresh()
            if session.closed:
                self._close(session)
                continue
            self._report(session)
            if session.hot_until <= now and not (session.dirty_in or session.dirty_out):
                self.hot.discard(session)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if listener is self.control:
            self.selector.register(sock, selectors.EVENT_READ, ControlConn(sock))
        else:
            session = Session(sock)
            self.sessions.add(session)
            self.selector.register(sock, selectors.EVENT_READ, session)

    def _close(self, session: Session) -> None:
        self.sessions.discard(session)
        self.hot.discard(session)
        ctrl = session.controller
        if ctrl is not None and ctrl.sessions.get(session.pd_address) is session:
            del ctrl.sessions[session.pd_address]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(session.sock)
        with contextlib.suppress(OSError):
            session.sock.close()
        session.closed = True
        session.pd = None

    # -- OSDP sessions -------------------------------------------------------------------------

    def _hello_read(self, session: Session) -> None:
        try:
            data = session.sock.recv(LINE_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(session)
            return
        session.buffer += data
        if b"\n" not in session.buffer:
            if len(session.buffer) > LINE_MAX:
                self._refuse(session, "hello line too long")
            return
        line, session.buffer = session.buffer.split(b"\n", 1)
        try:
            hello = json.loads(line)
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or hello.get("osdp_tunnel") != 1:
            self._refuse(session, "expected an OSDP tunnel hello line")
            return
        facility, controller, pd_address = (
            hello.get("facility"),
            hello.get("controller"),
            hello.get("pd"),
        )
        if (
            not isinstance(facility, str)
            or not isinstance(controller, str)
            or not CONTROLLER_RE.match(controller)
            or not isinstance(pd_address, int)
            or isinstance(pd_address, bool)
            or not 0 <= pd_address <= MAX_PD_ADDRESS
        ):
            self._refuse(session, "malformed hello (facility, controller, pd)")
            return
        ctrl = self.controllers.get((facility, controller))
        if ctrl is None:
            self._refuse(session, f"no controller {controller} at {facility}")
            return
        if ctrl.dropped:
            self._close(session)  # an unreachable controller does not answer
            return
        first = pd_address * self.outputs_per_pd + 1
        if not any(first <= door < first + self.outputs_per_pd for door in ctrl.doors):
            self._refuse(session, f"{controller} at {facility} has no PD at address {pd_address}")
            return
        old = ctrl.sessions.get(pd_address)
        if old is not None:
            self._close(old)  # the CP reconnected: the newer connection wins
        session.controller = ctrl
        session.pd_address = pd_address
        session.pd = self._make_pd(session, facility, controller, pd_address)
        ctrl.sessions[pd_address] = session
        session.sock.send(b'{"ok": true}\n')
        session.hot_until = time.monotonic() + 0.05
        self.hot.add(session)

    def _refuse(self, session: Session, error: str) -> None:
        with contextlib.suppress(OSError):
            session.sock.send(json.dumps({"ok": False, "error": error}).encode() + b"\n")
        self._close(session)

    def _make_pd(self, session: Session, facility: str, controller: str, address: int) -> Any:
        import osdp_sys

        caps = [
            {"function_code": osdp_sys.CAP_OUTPUT_CONTROL, "compliance_level": 1,
             "num_items": self.outputs_per_pd},
            {"function_code": osdp_sys.CAP_CONTACT_STATUS_MONITORING, "compliance_level": 1,
             "num_items": self.outputs_per_pd},
        ]  # fmt: skip
        if self.scbk:
            caps.append(
                {
                    "function_code": osdp_sys.CAP_COMMUNICATION_SECURITY,
                    "compliance_level": 1,
                    "num_items": 1,
                }
            )
        info = {
            "name": f"{facility}/{controller}/pd{address}",
            "address": address,
            "flags": 0,
            "scbk": self.scbk,
            "channel": session,
            "version": 1,
            "model": 1,
            "vendor_code": 0x00CAFE,
            "serial_number": address,
            "firmware_version": 1,
        }
        pd = osdp_sys.PeripheralDevice(info, capabilities=caps)

        def on_command(cmd: dict[str, Any]) -> tuple[int, None]:
            answer = self._on_command(session, cmd)
            # libosdp's Python binding (3.2.9, pd_command_cb) releases a reference to the
            # second item of the returned tuple that it never took: hand it one, or None's
            # reference count runs down to zero and the interpreter aborts after some
            # thousands of commands ("none_dealloc").
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(answer[1]))
            return answer

        pd.set_command_callback(on_command)
        return pd

    def _on_command(self, session: Session, cmd: dict[str, Any]) -> tuple[int, None]:
        import osdp_sys

        ctrl = session.controller
        if cmd.get("command") != osdp_sys.CMD_OUTPUT or ctrl is None:
            return 0, None
        self.commands += 1
        door = session.pd_address * self.outputs_per_pd + int(cmd["output_no"]) + 1
        want = 1 if cmd.get("control_code") in (2, 4, 5) else 0
        plan = ctrl.plan_for(door, self.default)
        if plan.behaviour == "silent":
            return 0, None
        if plan.behaviour == "fail":
            ctrl.faults.add(door)
            self._mark(ctrl, door)
            return 0, None

        def apply() -> None:
            ctrl.outputs[door] = want
            ctrl.faults.discard(door)
            self._mark(ctrl, door)

        if plan.behaviour == "lag" and plan.delay > 0:
            heapq.heappush(self.timers, (time.monotonic() + plan.delay, next(self.seq), apply))
            self._mark(ctrl, door)  # the report still shows the old state meanwhile
        else:
            apply()
        return 0, None

    def _mark(self, ctrl: ControllerSim, door: int) -> None:
        session = ctrl.sessions.get((door - 1) // self.outputs_per_pd)
        if session is not None:
            session.dirty_out = session.dirty_in = True
            self.hot.add(session)

    def _report(self, session: Session) -> None:
        """Queue the PD's current status (newest only) for its next poll."""
        import osdp_sys

        if not (session.dirty_out or session.dirty_in) or session.pd is None:
            return
        ctrl = session.controller
        assert ctrl is not None
        first = session.pd_address * self.outputs_per_pd + 1
        doors = range(first, first + self.outputs_per_pd)
        session.pd.flush_events()
        faults = bytes(1 if door in ctrl.faults else 0 for door in doors)
        if any(faults) or faults != session.faults_reported:
            session.faults_reported = faults
            session.pd.submit_event(
                {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_INPUT,
                 "report": faults}
            )  # fmt: skip
        outputs = bytes(ctrl.outputs.get(door, 0) for door in doors)
        session.pd.submit_event(
            {"event": osdp_sys.EVENT_STATUS, "type": osdp_sys.STATUS_REPORT_OUTPUT,
             "report": outputs}
        )  # fmt: skip
        session.dirty_out = session.dirty_in = False

    # -- control port --------------------------------------------------------------------------

    def _control_read(self, conn: ControlConn) -> None:
        try:
            data = conn.sock.recv(LINE_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(conn.sock)
            conn.sock.close()
            return
        conn.buffer += data
        while b"\n" in conn.buffer:
            line, conn.buffer = conn.buffer.split(b"\n", 1)
            answer = self.handle(line)
            with contextlib.suppress(OSError):
                conn.sock.settimeout(1.0)  # a client that does not read must not stall the fleet
                conn.sock.sendall(json.dumps(answer).encode() + b"\n")
            conn.sock.setblocking(False)
        if len(conn.buffer) > LINE_MAX:
            conn.buffer = b""

    def _pick(self, request: dict[str, Any]) -> list[ControllerSim]:
        facility, controller = request.get("facility"), request.get("controller")
        if facility is None and controller is None:
            return list(self.controllers.values())
        if controller is None:
            found = [c for (f, _a), c in self.controllers.items() if f == facility]
        else:
            ctrl = self.controllers.get((str(facility), str(controller)))
            found = [ctrl] if ctrl else []
        if not found:
            raise ValueError(f"no controller {controller or '(any)'} at {facility}")
        return found

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            return {"ok": True, **self._do(request)}
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    def _do(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"controllers": len(self.controllers)}
        if op == "stats":
            return {
                "controllers": len(self.controllers),
                "doors": sum(len(c.doors) for c in self.controllers.values()),
                "sessions": len(self.sessions),
                "commands": self.commands,
            }
        if op == "reset":
            self.default = Plan()
            for ctrl in self.controllers.values():
                ctrl.plans.clear()
                ctrl.plan = None
                ctrl.faults.clear()
                ctrl.dropped = ctrl.hung = False
                for door in ctrl.outputs:
                    ctrl.outputs[door] = 0
            self.timers.clear()  # pending lagged changes
            return {}
        if op == "set":
            behaviour = request.get("behaviour")
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}")
            delay = float(request.get("delay") or 0.0)
            if not 0 <= delay <= 3600:
                raise ValueError("delay must be between 0 and 3600 seconds")
            plan = Plan(behaviour, delay)
            number = request.get("door")
            if request.get("facility") is None and request.get("controller") is None:
                self.default = plan
                return {}
            for ctrl in self._pick(request):
                if number is None:
                    ctrl.plan = plan
                elif isinstance(number, int) and number in ctrl.doors:
                    ctrl.plans[number] = plan
                else:
                    raise ValueError(f"no door {number} on {ctrl.address} at {ctrl.facility}")
            return {}
        if op in ("drop", "hang", "restore"):
            for ctrl in self._pick(request):
                ctrl.dropped = op == "drop"
                ctrl.hung = op == "hang"
                if op == "drop":
                    for session in list(self.sessions):
                        if session.controller is ctrl:
                            self._close(session)
            return {}
        if op == "state":
            ctrls = self._pick(request)
            doors: dict[str, str] = {}
            for ctrl in ctrls:
                for door in sorted(ctrl.doors):
                    state = "locked" if ctrl.outputs.get(door) else "unlocked"
                    name = (
                        str(door) if len(ctrls) == 1 else f"{ctrl.facility}/{ctrl.address}/{door}"
                    )
                    doors[name] = "fault" if door in ctrl.faults else state
            return {"doors": doors}
        raise ValueError(f"unknown op {op!r}")

    def shutdown(self) -> None:
        for session in list(self.sessions):
            self._close(session)
        for sock in (self.listener, self.control):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(sock)
            sock.close()
        self.selector.close()


class FleetProcess:
    """`watchfloor simulate doors ARGS` as a child process on free ports (tests, benchmarks).

    with FleetProcess(["--sites", "200", "--doors-per-site", "50"]) as fleet:
        driver = OsdpDoorDriver(fleet_url=fleet.url)
        fleet.control.drop("SIM-0001", "osdp://controller-1")
    """

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, stderr: Any = None
    ) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        command = [str(Path(sys.executable).with_name("watchfloor")), "simulate", "doors"]
        self.process = subprocess.Popen(  # noqa: S603 - our own command, no shell
            [*command, *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            raise RuntimeError(f"the door fleet did not start (exit {self.process.returncode})")
        ready = json.loads(line)
        self.port: int = ready["port"]
        self.control = FleetControl(port=ready["control_port"])
        self.control.wait_ready()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        import subprocess

        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> FleetProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class FleetControl:
    """A client of the simulator's control port (blocking; one short request at a time)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4602, timeout: float = 5.0) -> None:
        self.address = (host, port)
        self.timeout = timeout

    def request(self, **request: Any) -> dict[str, Any]:
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        reply: dict[str, Any] = json.loads(answer)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "simulator refused the request"))
        return reply

    def set(
        self,
        behaviour: str,
        *,
        facility: str | None = None,
        controller: str | None = None,
        door: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.request(
            op="set",
            behaviour=behaviour,
            facility=facility,
            controller=controller,
            door=door,
            delay=delay,
        )

    def drop(self, facility: str, controller: str) -> None:
        self.request(op="drop", facility=facility, controller=controller)

    def hang(self, facility: str, controller: str) -> None:
        self.request(op="hang", facility=facility, controller=controller)

    def restore(self, facility: str, controller: str) -> None:
        self.request(op="restore", facility=facility, controller=controller)

    def reset(self) -> None:
        self.request(op="reset")

    def state(self, facility: str, controller: str) -> dict[str, str]:
        doors: dict[str, str] = self.request(op="state", facility=facility, controller=controller)[
            "doors"
        ]
        return doors

    def wait_ready(self, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.request(op="ping")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def run(
    doors: list[DoorTarget],
    *,
    host: str,
    port: int,
    control_port: int,
    outputs_per_pd: int,
    scbk: bytes | None,
) -> None:
    """Serve the fleet until SIGINT/SIGTERM."""
    import osdp_sys

    osdp_sys.set_loglevel(osdp_sys.LOG_CRIT)
    sim = FleetSimulator(
        doors,
        host=host,
        port=port,
        control_port=control_port,
        outputs_per_pd=outputs_per_pd,
        scbk=scbk,
    )

    def stop(_signum: int, _frame: object) -> None:
        sim.stopping = True

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    log.info(
        "Door fleet: %d controllers, %d doors; OSDP on %s:%d, control on %s:%d",
        len(sim.controllers),
        sum(len(c.doors) for c in sim.controllers.values()),
        host,
        sim.port,
        host,
        sim.control_port,
    )
    print(
        json.dumps({"ready": True, "port": sim.port, "control_port": sim.control_port}),
        flush=True,
    )
    sim.serve_forever()
