"""The SQLite ingest path writes times as text itself: it must be exactly the text SQLAlchemy
writes, or time-window queries (alarm rules counting events) would miss events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from watchfloor.events.ingest import _sqlite_time, _sqlite_time_of_iso


class _Base(DeclarativeBase):
    pass


class _Stamp(_Base):
    __tablename__ = "stamps"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


aware = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))]),
)


@given(aware)
def test_time_text_cut_from_iso_is_the_stored_text(value: datetime) -> None:
    assert _sqlite_time_of_iso(value.isoformat(), value) == _sqlite_time(value)


def test_time_text_is_what_sqlalchemy_stores() -> None:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    values = [
        datetime(2026, 12, 5, 12, 46, 4, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 12, 46, 4, tzinfo=UTC),  # no microseconds
        datetime(2026, 3, 29, 1, 0, tzinfo=timezone(timedelta(hours=2))),  # not UTC
    ]
    with Session(engine) as db:
        for v in values:
            db.add(_Stamp(at=v.astimezone(UTC).replace(tzinfo=None)))
        db.commit()
        stored = db.execute(text("SELECT at FROM stamps ORDER BY id")).scalars().all()
        assert len(db.execute(select(_Stamp)).all()) == len(values)
    assert stored == [_sqlite_time_of_iso(v.isoformat(), v) for v in values]
