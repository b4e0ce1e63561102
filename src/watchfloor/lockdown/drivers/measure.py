"""Driver-only fan-out measurement for the lockdown benchmark (no database, no service).

    seconds = await fanout(driver, targets)            # every door confirmed, or FanoutError

Time runs from the call until the last door's confirmation; it includes opening connections
unless the driver was warmed up first (`await driver.warm_up(targets)` on the OSDP driver, as a
running Watchfloor keeps its controller connections open).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from watchfloor.lockdown.drivers.base import DoorCommand, DoorDriver, DoorResult, DoorTarget


class FanoutError(RuntimeError):
    def __init__(self, failed: list[DoorResult], total: int) -> None:
        self.failed = failed
        sample = "; ".join(f"{r.device_id}: {r.error}" for r in failed[:3])
        super().__init__(f"{len(failed)} of {total} doors not confirmed ({sample})")


async def fanout(
    driver: DoorDriver, targets: Sequence[DoorTarget], command: DoorCommand = DoorCommand.LOCK
) -> float:
    """Seconds until every target is confirmed in the commanded state."""
    started = time.perf_counter()
    failed: list[DoorResult] = []
    seen = 0
    async for result in driver.command(targets, command):
        seen += 1
        if not result.ok:
            failed.append(result)
    elapsed = time.perf_counter() - started
    if failed or seen != len({t.device_id for t in targets}):
        raise FanoutError(failed, len(targets))
    return elapsed


async def measure(
    sites: int, doors_per_site: int, doors_per_controller: int = 64, rounds: int = 3
) -> dict[str, float | int]:
    """Start a generated fleet process, then time lock fan-outs through the OSDP driver: the
    first one cold (connections opened on the way), the rest warm (connections already open,
    as in a running system); each warm round unlocks first so every door really changes."""
    from watchfloor.config import get_settings
    from watchfloor.lockdown.drivers.osdp import OsdpDoorDriver
    from watchfloor.lockdown.simulator import FleetProcess, generated_fleet

    targets = generated_fleet(sites, doors_per_site, doors_per_controller)
    args = ["--sites", str(sites), "--doors-per-site", str(doors_per_site)]
    args += ["--doors-per-controller", str(doors_per_controller)]
    with FleetProcess(args, env={"WATCHFLOOR_DOORS_OSDP_SCBK": ""}) as fleet:
        driver = OsdpDoorDriver(
            fleet_url=fleet.url,
            timeout=30.0,
            connect_timeout=10.0,
            outputs_per_pd=get_settings().doors_outputs_per_pd,  # as the fleet process reads it
        )
        try:
            cold = await fanout(driver, targets)
            warm: list[float] = []
            for _ in range(rounds):
                await fanout(driver, targets, DoorCommand.UNLOCK)
                warm.append(await fanout(driver, targets))
        finally:
            await driver.close()
    return {
        "doors": len(targets),
        "sites": sites,
        "cold_s": round(cold, 4),
        "warm_best_s": round(min(warm), 4),
        "warm_worst_s": round(max(warm), 4),
    }


def main() -> None:
    """python -m watchfloor.lockdown.drivers.measure [SITES DOORS_PER_SITE [PER_CONTROLLER]]"""
    import asyncio
    import json
    import sys

    argv = [int(a) for a in sys.argv[1:]]
    cases = [tuple(argv)] if argv else [(1, 1000), (200, 50)]
    for case in cases:
        print(json.dumps(asyncio.run(measure(*case))), flush=True)


if __name__ == "__main__":
    main()
