"""Rollout board and preparedness scorecard roll-up for 10,000 facilities × 30 measures.

A fresh SQLite database (migrated to head) gets 50 regions, 10,000 facilities (each with a
panic button and a door, some offline), 30 countermeasures (the 15 seeded plus 15 more) and one
directive with a task per facility and measure: 300,000 tasks in mixed states and due dates,
written with `executemany`. The clock is set inside the rollout so every status occurs. For the
scorecard's drills and training components each facility also gets two completed drills of each
required kind (ages spread so some are overdue, some due soon, a few never held), open
corrective actions at every seventh facility, and ten people (7 staff, 2 guards, a manager: 100,000
in all) with completions of the courses their roles require (about 230,000; some expired, some
expiring soon, a few never done).

Measured (server time, the service functions the API and console call, median of the runs):
- board: `rollout.service.board` — counts by status per region, per measure and per facility
  (the worst 100), the facility count, and the burn-down;
- scorecard: `rollout.scorecard.rollup` — facilities per status for every component, per region;

Baselines, same run, same database file: plain `sqlite3` GROUP BY queries of the same counts
(status per region, per measure, per facility; and for the scorecard, the per-facility rollout,
device, drills and training status grouped by region — the figures are checked equal to ours),
with the status CASE written by hand; and for the board a
second, "lean" baseline: raw sqlite3 sending the same lean queries the service sends (conditional
sums per facility, raw groups per measure, closings per day), which shows what the service's
SQLAlchemy, async driver and Python cost on top of its SQL.

    .venv/bin/python -m bench.bench_rollout        (BENCH_ROLLOUT_FACILITIES=1000 to shrink it)

Writes bench/results/rollout.json and prints one line per figure. Targets: within 3× of the
baseline and under 1 s each.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchfloor.auth.principal import Scope
from watchfloor.config import Settings
from watchfloor.db import make_engine, make_sessionmaker
from watchfloor.migrate import upgrade
from watchfloor.rollout import scorecard, service

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rollout.json"
FACILITIES = int(os.environ.get("BENCH_ROLLOUT_FACILITIES", "10000"))
MEASURES = 30
REGIONS = 50
RUNS = int(os.environ.get("BENCH_ROLLOUT_RUNS", "5"))
ISSUED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOW = ISSUED + timedelta(days=10)
SOON = timedelta(days=3)
KINDS = ["immediate", "72h", "2w", "30d", "3m", "continuous"]
HOURS = {"immediate": 24, "72h": 72, "2w": 14 * 24, "30d": 30 * 24, "3m": 90 * 24}


def ts(d: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime on SQLite."""
    return d.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def seed(path: Path) -> int:
    con = sqlite3.connect(path)
    now = ts(ISSUED)
    cur = con.cursor()
    cur.execute(
        "INSERT INTO organisations (id, code, name, created_at, updated_at) "
        "VALUES (1, 'BENCH', 'Bench Agency', ?, ?)",
        (now, now),
    )
    cur.executemany(
        "INSERT INTO regions (id, organisation_id, code, name, created_at, updated_at) "
        "VALUES (?, 1, ?, ?, ?, ?)",
        [(r, f"R{r:02d}", f"Region {r:02d}", now, now) for r in range(1, REGIONS + 1)],
    )
    fac_cols = (
        "id, region_id, code, name, kind, address, city, state, postal_code, timezone, "
        "population, floor_area_sqft, operating_hours, created_at, updated_at"
    )
    cur.executemany(
        f"INSERT INTO facilities ({fac_cols}) VALUES "  # noqa: S608 - fixed column list
        "(?, ?, ?, ?, 'field_office', '', '', '', '', 'America/Chicago', 0, 0, '{}', ?, ?)",
        [
            (i, (i % REGIONS) + 1, f"F{i:05d}", f"Facility {i:05d}", now, now)
            for i in range(1, FACILITIES + 1)
        ],
    )
    dev_cols = "facility_id, code, name, kind, protocol, address, status, created_at, updated_at"
    devices = []
    for i in range(1, FACILITIES + 1):
        devices.append(
            (i, "PB1", "Panic button", "panic_button", "offline" if i % 37 == 0 else "online")
        )
        devices.append((i, "D1", "Front door", "door", "trouble" if i % 23 == 0 else "online"))
    cur.executemany(
        f"INSERT INTO devices ({dev_cols}) VALUES (?, ?, ?, ?, 'http', '', ?, ?, ?)",  # noqa: S608
        [(*d, now, now) for d in devices],
    )
    existing = cur.execute("SELECT count(*) FROM countermeasures").fetchone()[0]
    cur.executemany(
        "INSERT INTO countermeasures (code, name, area, description, deadline, review_days, "
        "position, active, created_at, updated_at) "
        "VALUES (?, ?, 'perimeter', '', ?, ?, ?, 1, ?, ?)",
        [
            (
                f"EXTRA-{k}",
                f"Extra measure {k}",
                KINDS[k % 6],
                90 if KINDS[k % 6] == "continuous" else None,
                100 + k,
                now,
                now,
            )
            for k in range(MEASURES - existing)
        ],
    )
    measures = cur.execute("SELECT id, deadline FROM countermeasures ORDER BY id").fetchall()
    cur.execute(
        "INSERT INTO directives (id, title, description, issued_at, issued_by, created_at, "
        "selection, measures, facility_count, task_count, last_due_at) VALUES "
        "(1, 'Overhaul', '', ?, 'bench', ?, '{\"kind\": \"all\"}', '[]', ?, ?, NULL)",
        (now, now, FACILITIES, FACILITIES * len(measures)),
    )
    rows = []
    for f in range(1, FACILITIES + 1):
        for m_id, kind in measures:
            due = None if kind == "continuous" else ts(ISSUED + timedelta(hours=HOURS[kind]))
            r = (f * 31 + m_id * 7) % 10
            state = (
                "done" if r < 3 else "in_progress" if r < 5 else "waived" if r == 5 else "planned"
            )
            closed = (
                ts(ISSUED + timedelta(days=(f + m_id) % 10))
                if state in ("done", "waived")
                else None
            )
            rows.append((f, m_id, state, due, closed, now))
    cur.executemany(
        "INSERT INTO rollout_tasks (directive_id, facility_id, countermeasure_id, state, due_at, "
        "review_days, closed_at, updated_at, updated_by, note, waiver_reason, version) "
        "VALUES (1, ?, ?, ?, ?, NULL, ?, ?, 'bench', '', '', 0)",
        rows,
    )
    seed_drills(cur)
    seed_training(cur)
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return len(rows)


STAFF = (("staff", 7), ("guard", 2), ("facility_manager", 1))  # people per facility, by role


def seed_training(cur: sqlite3.Cursor) -> None:
    """Ten people per facility (7 staff, 2 guards, a manager) and their completions of the
    courses their roles require: most current, some expiring soon, some expired, some never."""
    now, today = ts(NOW), NOW.date()
    people = []
    for f in range(1, FACILITIES + 1):
        n = 0
        for role, count in STAFF:
            for _ in range(count):
                n += 1
                people.append((f, f"E{f:05d}-{n:02d}", role, now, now))
    cur.executemany(
        "INSERT INTO people (facility_id, employee_id, given_name, family_name, job_title, role,"
        " email, phone, contacts, vetting_status, active, created_at, updated_at)"
        " VALUES (?, ?, 'Pat', 'Bench', '', ?, '', '', '[]', 'cleared', 1, ?, ?)",
        people,
    )
    required: dict[str, list[tuple[int, int]]] = {}
    for role, course_id, months in cur.execute(
        "SELECT r.role, c.id, c.refresh_months FROM training_requirements r"
        " JOIN training_courses c ON c.id = r.course_id"
    ).fetchall():
        required.setdefault(role, []).append((course_id, months))
    rows = []
    for person_id, facility_id, role in cur.execute(
        "SELECT id, facility_id, role FROM people"
    ).fetchall():
        for course_id, months in required.get(role, []):
            r = (person_id * 7 + course_id * 3 + facility_id) % 40
            if r == 0:
                continue  # never done
            # r 1-2: expired; r 3-4: expires within 30 days; otherwise current
            left = -(r * 5) if r <= 2 else r * 5 if r <= 4 else 60 + r * 5
            expires = today + timedelta(days=left)
            done = expires - timedelta(days=months * 30)
            rows.append((person_id, course_id, done.isoformat(), expires.isoformat(), now))
    cur.executemany(
        "INSERT INTO training_completions (person_id, course_id, completed_on, expires_on,"
        " source, note, recorded_by, recorded_at) VALUES (?, ?, ?, ?, 'entered', '', 'bench', ?)",
        rows,
    )


def seed_drills(cur: sqlite3.Cursor) -> None:
    """Each facility's last active-shooter, lockdown and evacuation drills (a spread of ages, so
    some are overdue, some due soon, a few never held) and some open corrective actions."""
    reqs = cur.execute("SELECT kind, interval_months FROM drill_requirements").fetchall()
    drills = []
    for f in range(1, FACILITIES + 1):
        for k, (kind, months) in enumerate(reqs):
            if (f + k) % 19 == 0:
                continue  # never held
            for back in (months * 31 + 40, (f * 7 + k * 13) % (months * 31 + 20)):
                held = NOW - timedelta(days=back, hours=6)
                drills.append((f, kind, ts(held - timedelta(hours=1)), ts(held), ts(held)))
    cur.executemany(
        "INSERT INTO drills (facility_id, kind, title, state, planned_at, started_at, ended_at,"
        " run_by, partner_agencies, timings_source, notes, created_at, created_by, updated_at)"
        " VALUES (?, ?, 'Drill', 'completed', ?, ?, ?, 'bench', '[]', 'typed', '', ?, 'bench',"
        " ?)",
        [(f, kind, start, start, end, end, end) for f, kind, start, end, _e in drills],
    )
    cur.executemany(
        "INSERT INTO drill_actions (drill_id, facility_id, description, owner, due_on, state,"
        " created_at, created_by, updated_at, updated_by) VALUES ((SELECT min(id) FROM drills"
        " WHERE facility_id = ?), ?, 'Fix it', 'Manager', ?, 'open', ?, 'bench', ?, 'bench')",
        [
            (f, f, (NOW - timedelta(days=f % 20 - 10)).date().isoformat(), ts(NOW), ts(NOW))
            for f in range(1, FACILITIES + 1, 7)
        ],
    )


STATUS_SQL = """CASE WHEN t.state = 'done' THEN 'done' WHEN t.state = 'waived' THEN 'waived'
 WHEN t.due_at IS NULL THEN 'on_track' WHEN t.due_at < :now THEN 'late'
 WHEN t.due_at <= :soon THEN 'due_soon' ELSE 'on_track' END"""


def baseline_board(con: sqlite3.Connection) -> dict[str, Any]:
    p = {"now": ts(NOW), "soon": ts(NOW + SOON)}
    base = (
        " FROM rollout_tasks t JOIN facilities f ON f.id = t.facility_id"
        " JOIN regions r ON r.id = f.region_id JOIN countermeasures c ON c.id = t.countermeasure_id"
    )
    by_region = con.execute(
        f"SELECT r.code, {STATUS_SQL} AS s, count(*) {base} GROUP BY r.code, s",
        p,  # noqa: S608
    ).fetchall()
    by_measure = con.execute(
        f"SELECT c.code, {STATUS_SQL} AS s, count(*) {base} GROUP BY c.code, s",
        p,  # noqa: S608
    ).fetchall()
    by_facility = con.execute(
        f"SELECT f.code, {STATUS_SQL} AS s, count(*) {base} GROUP BY f.code, s",
        p,  # noqa: S608
    ).fetchall()
    facilities = {row[0] for row in by_facility}
    return {"by_region": by_region, "by_measure": by_measure, "by_facility": len(facilities)}


def baseline_board_lean(con: sqlite3.Connection) -> int:
    """The same counts with the lean queries the service itself sends (conditional sums per
    facility in index order, raw groups per measure, closings per day), summed per region in
    Python: what the service costs beyond its SQL."""
    p = {"now": ts(NOW), "soon": ts(NOW + SOON)}
    per_fac = con.execute(
        """SELECT facility_id, count(*), sum(state IN ('planned', 'in_progress') AND due_at < :now),
        sum(state IN ('planned', 'in_progress') AND due_at >= :now AND due_at <= :soon),
        sum(state = 'done'), sum(state = 'waived') FROM rollout_tasks GROUP BY facility_id""",
        p,
    ).fetchall()
    region_of = dict(con.execute("SELECT id, region_id FROM facilities").fetchall())
    regions: dict[int, list[int]] = {}
    for fid, *counts in per_fac:
        acc = regions.setdefault(region_of[fid], [0] * 5)
        for i, n in enumerate(counts):
            acc[i] += n
    con.execute(
        "SELECT countermeasure_id, state, due_at, count(*) FROM rollout_tasks "
        "GROUP BY countermeasure_id, state, due_at"
    ).fetchall()
    con.execute(
        "SELECT substr(closed_at, 1, 10), count(*) FROM rollout_tasks WHERE state IN "
        "('done', 'waived') AND due_at IS NOT NULL GROUP BY 1"
    ).fetchall()
    return len(per_fac)


def baseline_scorecard(con: sqlite3.Connection) -> list[Any]:
    p = {"now": ts(NOW), "soon": ts(NOW + SOON)}
    rollout = con.execute(
        f"""SELECT f.region_id, CASE WHEN x.late > 0 THEN 'gap' WHEN x.open > 0
        THEN 'under_review' ELSE 'in_place' END AS st, count(*) FROM facilities f JOIN
        (SELECT t.facility_id AS fid, sum({STATUS_SQL} = 'late') AS late,
         sum(t.state IN ('planned', 'in_progress')) AS open FROM rollout_tasks t
         GROUP BY t.facility_id) x ON x.fid = f.id GROUP BY f.region_id, st""",  # noqa: S608
        p,
    ).fetchall()
    devices = con.execute(
        """SELECT f.region_id, CASE WHEN x.bad > 0 THEN 'gap' WHEN x.unk > 0 THEN 'under_review'
        ELSE 'in_place' END AS st, count(*) FROM facilities f JOIN (SELECT facility_id AS fid,
        sum(status IN ('offline', 'trouble')) AS bad, sum(status = 'unknown') AS unk FROM devices
        WHERE kind IN ('panic_button', 'door') GROUP BY facility_id) x ON x.fid = f.id
        GROUP BY f.region_id, st"""
    ).fetchall()
    # drills: each facility's worst required kind (never held / overdue → gap; due within 14
    # days → under review), an overdue corrective action → at least under review
    drills = con.execute(
        """SELECT f.region_id, CASE WHEN x.bad > 0 THEN 'gap' WHEN x.soon > 0 OR a.fid IS NOT
        NULL THEN 'under_review' ELSE 'in_place' END AS st, count(*) FROM facilities f JOIN
        (SELECT f2.id AS fid, sum(d.last IS NULL OR :now > datetime(d.last, '+' ||
         r.interval_months || ' months')) AS bad, sum(d.last IS NOT NULL AND :now <= datetime(
         d.last, '+' || r.interval_months || ' months') AND datetime(d.last, '+' ||
         r.interval_months || ' months') <= :drills_soon) AS soon
         FROM facilities f2 CROSS JOIN drill_requirements r LEFT JOIN (SELECT facility_id, kind,
         max(ended_at) AS last FROM drills WHERE state = 'completed' GROUP BY facility_id, kind)
         d ON d.facility_id = f2.id AND d.kind = r.kind WHERE r.active GROUP BY f2.id) x
        ON x.fid = f.id LEFT JOIN (SELECT DISTINCT facility_id AS fid FROM drill_actions
        WHERE state != 'done' AND due_on < :today) a ON a.fid = f.id GROUP BY f.region_id, st""",
        {**p, "drills_soon": ts(NOW + timedelta(days=14)), "today": NOW.date().isoformat()},
    ).fetchall()
    # training: per facility, the (active person, required course) pairs behind (never done or
    # expired) and due within 30 days; more than a tenth behind → gap
    training = con.execute(
        """SELECT f.region_id, CASE WHEN x.behind * 1.0 / x.total > 0.10 THEN 'gap'
        WHEN x.behind > 0 OR x.soon > 0 THEN 'under_review' ELSE 'in_place' END AS st, count(*)
        FROM facilities f JOIN (SELECT p.facility_id AS fid, count(*) AS total,
         sum(l.exp IS NULL OR l.exp < :today) AS behind,
         sum(l.exp >= :today AND l.exp <= :training_soon) AS soon
         FROM people p JOIN training_requirements r ON r.role = p.role
         JOIN training_courses c ON c.id = r.course_id AND c.active
         LEFT JOIN (SELECT person_id, course_id, max(expires_on) AS exp FROM
          training_completions GROUP BY person_id, course_id) l
         ON l.person_id = p.id AND l.course_id = r.course_id
         WHERE p.active GROUP BY p.facility_id) x ON x.fid = f.id GROUP BY f.region_id, st""",
        {
            "today": NOW.date().isoformat(),
            "training_soon": (NOW.date() + timedelta(days=30)).isoformat(),
        },
    ).fetchall()
    return [rollout, devices, drills, training]


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


async def ours(url: str, var: Path) -> dict[str, Any]:
    engine = make_engine(Settings(database_url=url, var_dir=var))
    maker = make_sessionmaker(engine)
    everything = Scope(everything=True)
    board_t: list[float] = []
    card_t: list[float] = []
    board = card = None
    try:
        for _ in range(RUNS):
            async with maker() as db:
                t0 = time.perf_counter()
                board = await service.board(db, everything, NOW, SOON, facility_limit=100)
                board_t.append(time.perf_counter() - t0)
            async with maker() as db:
                t0 = time.perf_counter()
                card = await scorecard.rollup(db, everything, NOW, SOON)
                card_t.append(time.perf_counter() - t0)
    finally:
        await engine.dispose()
    assert board is not None and card is not None
    return {"board": board_t, "scorecard": card_t, "board_obj": board, "card_obj": card}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"

        async def migrate() -> None:
            engine = make_engine(Settings(database_url=url, var_dir=Path(tmp)))
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        t0 = time.perf_counter()
        tasks = seed(path)
        seed_s = time.perf_counter() - t0
        print(
            f"seeded {FACILITIES} facilities x {MEASURES} measures = {tasks} tasks "
            f"in {seed_s:.1f} s"
        )

        con = sqlite3.connect(path)
        base_board: list[float] = []
        base_card: list[float] = []
        base_lean: list[float] = []
        expect: dict[str, Any] = {}
        card_expect: list[Any] = []
        for _ in range(RUNS):
            s, expect = timed(lambda: baseline_board(con))
            base_board.append(s)
            s, _ = timed(lambda: baseline_board_lean(con))
            base_lean.append(s)
            s, card_expect = timed(lambda: baseline_scorecard(con))
            base_card.append(s)
        con.close()
        res = asyncio.run(ours(url, Path(tmp)))

    # the same counts both ways
    board = res["board_obj"]
    base_totals: dict[str, int] = {}
    for _code, status, n in expect["by_region"]:
        base_totals[status] = base_totals.get(status, 0) + n
    for status, n in base_totals.items():
        assert board.totals[status] == n, (status, board.totals, base_totals)
    assert board.facility_rows == expect["by_facility"] == FACILITIES
    card = res["card_obj"]
    for component, rows in (
        ("rollout", card_expect[0]),
        ("device_health", card_expect[1]),
        ("drills", card_expect[2]),
        ("training_compliance", card_expect[3]),
    ):
        counted: dict[str, int] = {}
        for _region, status, n in rows:
            counted[status] = counted.get(status, 0) + n
        got = {k: v for k, v in card.organisation[component].items() if v and k != "not_tracked"}
        assert got == counted, (component, got, counted)

    figures: dict[str, Any] = {
        "facilities": FACILITIES,
        "measures": MEASURES,
        "tasks": tasks,
        "runs": RUNS,
        "seed_seconds": round(seed_s, 2),
    }
    for name, mine, base in (
        ("board", res["board"], base_board),
        ("board_vs_lean_sql", res["board"], base_lean),
        ("scorecard", res["scorecard"], base_card),
    ):
        m, b = statistics.median(mine), statistics.median(base)
        ratio = m / b if b else float("inf")
        figures[name] = {
            "watchfloor_ms": round(m * 1000, 1),
            "baseline_ms": round(b * 1000, 1),
            "ratio": round(ratio, 2),
            "target": "ratio <= 3 and < 1000 ms",
            "met": ratio <= 3 and m < 1.0,
        }
        met = "met" if figures[name]["met"] else "NOT met"
        print(
            f"{name}: watchfloor {m * 1000:.0f} ms, raw sqlite3 GROUP BY {b * 1000:.0f} ms, "
            f"ratio {ratio:.2f} (target <= 3 and < 1 s: {met})"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
