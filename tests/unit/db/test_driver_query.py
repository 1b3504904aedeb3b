"""`Query` reads `:name` parameters by `text()`'s rule, as SQLAlchemy does, and numbers them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect

from app.db.driver import Query

ASYNCPG = dialect()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t WHERE a = :a AND b = :b_key AND c = :a",
        "SELECT CAST(:run_key AS uuid), x::text, a[1:2]",
        "SELECT :run_key::uuid, :a::int",  # a name followed by a cast: not a parameter
        "SELECT '{\"type\":\"done\"}', ':x'",
        "SELECT \\:escaped, :kept",  # an escaped colon is a colon
    ],
)
def test_the_sql_sent_is_what_sqlalchemy_sends_for_text(sql: str) -> None:
    compiled = text(sql).compile(dialect=ASYNCPG)
    query = Query(sql)
    assert query.sql == str(compiled)
    assert query.arguments({name: name for name in compiled.positiontup or ()}) == list(
        compiled.positiontup or ()
    )
