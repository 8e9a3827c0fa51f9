"""The shared filter compiler, run against SQLite and PostgreSQL with awkward data."""

from __future__ import annotations

import json
import operator
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    create_engine,
    exists,
    func,
    insert,
    select,
)

from tracehouse.errors import InvalidInput
from tracehouse.store.filters import (
    FilterColumn,
    compile_conditions,
    json_text_path,
    parse_filter_param,
)

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

metadata_obj = MetaData()
items = Table(
    "items",
    metadata_obj,
    Column("id", Integer, primary_key=True),
    Column("name", Text),
    Column("ts", DateTime(timezone=True)),
    Column("cost", Float),
    Column("tags", Text),
    Column("metadata", Text),
    Column("flag", Boolean),
)
scores = Table(
    "scores",
    metadata_obj,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer),
    Column("name", Text),
    Column("value", Float),
)

WEIRD_KEY = 'we"ird.key'


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


ROWS = [
    {
        "id": 1,
        "name": "Alpha",
        "ts": _ts("2024-01-01T00:00:00Z"),
        "cost": 1.5,
        "tags": ["a", "b"],
        "metadata": {"env": "prod", "n": 5, "ok": True, WEIRD_KEY: "q1", "a.b": "dot"},
        "flag": True,
    },
    {
        "id": 2,
        "name": "beta_50%",
        "ts": _ts("2024-02-01T12:00:00Z"),
        "cost": 10.0,
        "tags": ["b"],
        "metadata": {"env": "dev", "n": "7.5", "ok": "false", "a": {"b": "dot"}, "pct": "50%_off"},
        "flag": False,
    },
    {
        "id": 3,
        "name": "gamma",
        "ts": _ts("2024-03-01T00:00:00Z"),
        "cost": 0.0,
        "tags": [],
        "metadata": {"env": "Prod", "n": "abc", "ok": False, WEIRD_KEY: "q3"},
        "flag": True,
    },
    {
        "id": 4,
        "name": None,
        "ts": None,
        "cost": None,
        "tags": None,
        "metadata": None,
        "flag": None,
    },
    {
        "id": 5,
        "name": "betaX50Y",
        "ts": _ts("2024-02-15T09:30:00+01:00"),
        "cost": -2.0,
        "tags": ["c", "a", "a"],
        "metadata": {"ok": "TRUE", "env": None, "n": 1e2, "pct": "50xxoff"},
        "flag": False,
    },
    {
        "id": 6,
        "name": "ALPHA",
        "ts": _ts("2023-12-31T23:00:00Z"),
        "cost": 5.0,
        "tags": ["a", "b", "c"],
        "metadata": [1, 2],
        "flag": None,
    },
]
ALL = {r["id"] for r in ROWS}
SCORES = [
    {"id": 1, "item_id": 1, "name": "quality", "value": 0.9},
    {"id": 2, "item_id": 1, "name": "quality", "value": 0.2},
    {"id": 3, "item_id": 2, "name": "quality", "value": 0.5},
    {"id": 4, "item_id": 3, "name": "speed", "value": 1.0},
]


def _score_filter(oper: str, value, key):
    if key == "forbidden":
        raise ValueError("no such score")
    cmp = {"=": operator.eq, ">": operator.gt, "<": operator.lt, ">=": operator.ge}[oper]
    return exists(
        select(scores.c.id).where(
            scores.c.item_id == items.c.id, scores.c.name == key, cmp(scores.c.value, value)
        )
    )


COLUMNS = {
    "id": FilterColumn(items.c.id, "number"),
    "name": FilterColumn(items.c.name, "string"),
    "ts": FilterColumn(items.c.ts, "datetime"),
    "cost": FilterColumn(items.c.cost, "number"),
    "tags": FilterColumn(items.c.tags, "string_array"),
    "metadata": FilterColumn(items.c.metadata, "json_object"),
    "flag": FilterColumn(items.c.flag, "boolean"),
    "scores": FilterColumn(None, "custom", build=_score_filter, types=frozenset({"numberObject"})),
    "scoreCount": FilterColumn(
        select(func.count(scores.c.id)).where(scores.c.item_id == items.c.id).scalar_subquery(),
        "number",
    ),
}


def _create_pg_database():
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"tracehouse_filters_{uuid.uuid4().hex[:12]}"
    # No skip when PostgreSQL is down: the server profile must be tested for real.
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin, name


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def engine(request, tmp_path_factory):
    admin = name = None
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('filters') / 'f.db'}")
    else:
        admin, name = _create_pg_database()
        eng = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    metadata_obj.create_all(eng)
    rows = [
        {
            **r,
            "tags": None if r["tags"] is None else json.dumps(r["tags"]),
            "metadata": None if r["metadata"] is None else json.dumps(r["metadata"]),
        }
        for r in ROWS
    ]
    with eng.begin() as conn:
        conn.execute(insert(items), rows)
        conn.execute(insert(scores), SCORES)
    yield eng
    eng.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _ids(engine, conditions) -> set[int]:
    exprs = compile_conditions(conditions, COLUMNS, dialect=engine.dialect.name)
    with engine.connect() as conn:
        return set(conn.scalars(select(items.c.id).where(and_(True, *exprs))))


def c(ctype: str, column: str, oper: str, value=None, key=None) -> dict:
    out = {"type": ctype, "column": column, "operator": oper, "value": value}
    if key is not None:
        out["key"] = key
    return out


CASES = [
    # string
    (c("string", "name", "=", "Alpha"), {1}),
    (c("string", "name", "=", "alpha"), set()),
    (c("string", "name", "contains", "ALP"), {1, 6}),
    (c("string", "name", "contains", "_50%"), {2}),
    (c("string", "name", "contains", "a_"), {2}),
    (c("string", "name", "contains", "/"), set()),
    (c("string", "name", "does not contain", "beta"), {1, 3, 4, 6}),
    (c("string", "name", "starts with", "BETA"), {2, 5}),
    (c("string", "name", "starts with", "%"), set()),
    (c("string", "name", "ends with", "50%"), {2}),
    (c("string", "name", "ends with", "A"), {1, 3, 6}),
    (c("string", "name", "matches", "alpha"), {1, 6}),
    (c("string", "Name", "=", "gamma"), {3}),
    # stringOptions
    (c("stringOptions", "name", "any of", ["Alpha", "gamma"]), {1, 3}),
    (c("stringOptions", "name", "none of", ["Alpha", "gamma"]), {2, 4, 5, 6}),
    (c("stringOptions", "name", "any of", []), set()),
    (c("stringOptions", "name", "none of", []), ALL),
    # datetime
    (c("datetime", "ts", ">", "2024-02-01T12:00:00Z"), {3, 5}),
    (c("datetime", "ts", ">=", "2024-02-01T12:00:00Z"), {2, 3, 5}),
    (c("datetime", "ts", "<", "2024-01-01T00:00:00"), {6}),
    (c("datetime", "ts", "<=", "2024-01-01T01:00:00+01:00"), {1, 6}),
    (c("datetime", "ts", "<", "2024-02-01T13:00:00.000+01:00"), {1, 6}),
    (c("datetime", "ts", ">", "2024-02-01"), {2, 3, 5}),
    (c("datetime", "ts", ">=", "2024-02-15T08:30:00Z"), {3, 5}),
    (c("datetime", "ts", ">", "2024-02-15T08:30:00Z"), {3}),
    # number
    (c("number", "cost", "=", 1.5), {1}),
    (c("number", "cost", "=", 10), {2}),
    (c("number", "cost", ">", 0), {1, 2, 6}),
    (c("number", "cost", ">=", 0), {1, 2, 3, 6}),
    (c("number", "cost", "<", 0), {5}),
    (c("number", "cost", "<=", 1.5), {1, 3, 5}),
    (c("number", "id", "<", 2.5), {1, 2}),
    (c("number", "scoreCount", ">=", 1), {1, 2, 3}),
    (c("number", "scoreCount", "=", 0), {4, 5, 6}),
    # arrayOptions
    (c("arrayOptions", "tags", "any of", ["a"]), {1, 5, 6}),
    (c("arrayOptions", "tags", "any of", ["b", "c"]), {1, 2, 5, 6}),
    (c("arrayOptions", "tags", "any of", ["A"]), set()),
    (c("arrayOptions", "tags", "all of", ["a", "b"]), {1, 6}),
    (c("arrayOptions", "tags", "all of", ["a", "a"]), {1, 5, 6}),
    (c("arrayOptions", "tags", "none of", ["a"]), {2, 3, 4}),
    (c("arrayOptions", "tags", "none of", ["zz"]), ALL),
    (c("arrayOptions", "tags", "any of", []), set()),
    (c("arrayOptions", "tags", "all of", []), ALL),
    (c("arrayOptions", "tags", "none of", []), ALL),
    # stringObject
    (c("stringObject", "metadata", "=", "prod", "env"), {1}),
    (c("stringObject", "metadata", "contains", "PROD", "env"), {1, 3}),
    (c("stringObject", "metadata", "does not contain", "prod", "env"), {2, 4, 5, 6}),
    (c("stringObject", "metadata", "starts with", "D", "env"), {2}),
    (c("stringObject", "metadata", "ends with", "OD", "env"), {1, 3}),
    (c("stringObject", "metadata", "matches", "Prod", "env"), {3}),
    (c("stringObject", "metadata", "=", "q1", WEIRD_KEY), {1}),
    (c("stringObject", "metadata", "starts with", "q", WEIRD_KEY), {1, 3}),
    (c("stringObject", "metadata", "=", "dot", "a.b"), {1}),
    (c("stringObject", "metadata", "contains", "50%_", "pct"), {2}),
    (c("stringObject", "metadata", "=", "5", "n"), {1}),
    (c("stringObject", "metadata", "=", "true", "ok"), {1}),
    (c("stringObject", "metadata", "contains", '"b"', "a"), {2}),
    (c("stringObject", "metadata", "=", "q1", "x' OR '1'='1"), set()),
    (c("stringObject", "metadata", "=", "q1", '$."we"'), set()),
    # numberObject
    (c("numberObject", "metadata", ">", 4, "n"), {1, 2, 5}),
    (c("numberObject", "metadata", "=", 100, "n"), {5}),
    (c("numberObject", "metadata", "=", 7.5, "n"), {2}),
    (c("numberObject", "metadata", "<", 6, "n"), {1}),
    (c("numberObject", "metadata", ">=", 7.5, "n"), {2, 5}),
    (c("numberObject", "metadata", "<=", 5, "n"), {1}),
    (c("numberObject", "metadata", ">", -1e9, "env"), set()),
    (c("numberObject", "metadata", "<", 1e9, "ok"), set()),
    # booleanObject
    (c("booleanObject", "metadata", "=", True, "ok"), {1, 5}),
    (c("booleanObject", "metadata", "=", False, "ok"), {2, 3}),
    (c("booleanObject", "metadata", "<>", True, "ok"), {2, 3, 4, 6}),
    (c("booleanObject", "metadata", "<>", False, "ok"), {1, 4, 5, 6}),
    # categoryOptions on a JSON object
    (c("categoryOptions", "metadata", "any of", ["prod", "dev"], "env"), {1, 2}),
    (c("categoryOptions", "metadata", "none of", ["prod"], "env"), {2, 3, 4, 5, 6}),
    # boolean
    (c("boolean", "flag", "=", True), {1, 3}),
    (c("boolean", "flag", "=", False), {2, 5}),
    (c("boolean", "flag", "<>", True), {2, 4, 5, 6}),
    # null
    (c("null", "name", "is null"), {4}),
    (c("null", "name", "is not null"), ALL - {4}),
    (c("null", "ts", "is null"), {4}),
    (c("null", "cost", "is not null"), ALL - {4}),
    (c("null", "tags", "is null"), {4}),
    (c("null", "flag", "is null"), {4, 6}),
    (c("null", "metadata", "is null"), {4}),
    (c("null", "metadata", "is null", key="env"), {4, 5, 6}),
    (c("null", "metadata", "is not null", key="env"), {1, 2, 3}),
    # custom
    (c("numberObject", "scores", ">", 0.8, "quality"), {1}),
    (c("numberObject", "scores", ">=", 0.5, "quality"), {1, 2}),
    (c("numberObject", "scores", "=", 1, "speed"), {3}),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    CASES,
    ids=[f"{k['type']}-{k['column']}-{k['operator']}-{i}" for i, (k, _) in enumerate(CASES)],
)
def test_condition(engine, condition, expected):
    assert _ids(engine, [condition]) == expected


def test_conditions_are_anded(engine):
    conds = [c("string", "name", "starts with", "beta"), c("number", "cost", "<", 0)]
    assert _ids(engine, conds) == {5}
    assert _ids(engine, []) == ALL


def test_round_trip_through_parse(engine):
    raw = json.dumps([c("arrayOptions", "tags", "all of", ["b"]), c("null", "flag", "is not null")])
    assert _ids(engine, parse_filter_param(raw)) == {1, 2}


def test_json_text_path(engine):
    expr = json_text_path(items.c.metadata, WEIRD_KEY, dialect=engine.dialect.name)
    with engine.connect() as conn:
        got = dict(conn.execute(select(items.c.id, expr).order_by(items.c.id)).all())
    assert got == {1: "q1", 2: None, 3: "q3", 4: None, 5: None, 6: None}


@pytest.mark.parametrize("raw", [None, "", "   ", "[]"])
def test_parse_empty(raw):
    assert parse_filter_param(raw) == []


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("not json", "filter", "is not valid JSON"),
        ('{"type": "string"}', "filter", "must be a JSON array"),
        ("[1]", "filter", "condition 0 must be a JSON object"),
        ('[{"column": "name", "operator": "="}]', "filter[0].type", "is required"),
        ('[{"type": "string", "operator": "="}]', "filter[0].column", "is required"),
        ('[{"type": "string", "column": "name"}]', "filter[0].operator", "is required"),
        ('[{"type": "string", "column": 5, "operator": "="}]', "filter[0].column", "string"),
        (
            '[{"type": "null", "column": "a", "operator": "is null"}, '
            '{"type": "null", "column": "a", "operator": "is null", "key": 1}]',
            "filter[1].key",
            "must be a string",
        ),
    ],
)
def test_parse_errors(raw, field, message):
    with pytest.raises(InvalidInput) as err:
        parse_filter_param(raw)
    assert err.value.field == field
    assert message in err.value.message


@pytest.mark.parametrize(
    ("condition", "field", "message"),
    [
        (
            c("string", "nope", "=", "x"),
            "filter[0].column",
            "unknown column 'nope'; valid columns: cost, flag, id, metadata, name, scoreCount, "
            "scores, tags, ts",
        ),
        (c("fuzzy", "name", "=", "x"), "filter[0].type", "unknown type 'fuzzy'"),
        (
            c("number", "name", "=", 1),
            "filter[0].type",
            "type 'number' is not supported for column 'name'; use one of: null, string, "
            "stringOptions",
        ),
        (
            c("string", "name", ">", "x"),
            "filter[0].operator",
            "operator '>' is not valid for type 'string'",
        ),
        (c("string", "name", "=", 3), "filter[0].value", "must be a string"),
        (c("string", "name", "="), "filter[0].value", "is required"),
        (c("number", "cost", ">", "3"), "filter[0].value", "must be a finite number"),
        (c("number", "cost", ">", True), "filter[0].value", "must be a finite number"),
        (c("number", "cost", ">", float("nan")), "filter[0].value", "must be a finite number"),
        (c("numberObject", "metadata", ">", 10**400, "n"), "filter[0].value", "finite number"),
        (c("datetime", "ts", ">", "yesterday"), "filter[0].value", "not an ISO-8601 datetime"),
        (c("datetime", "ts", ">", 1700000000), "filter[0].value", "ISO-8601 datetime string"),
        (c("boolean", "flag", "=", "true"), "filter[0].value", "must be true or false"),
        (c("stringOptions", "name", "any of", "a"), "filter[0].value", "array of strings"),
        (c("arrayOptions", "tags", "any of", ["a", 1]), "filter[0].value", "array of strings"),
        (c("stringObject", "metadata", "=", "x"), "filter[0].key", "is required"),
        (c("categoryOptions", "metadata", "any of", ["x"]), "filter[0].key", "is required"),
        (c("numberObject", "scores", ">", 1), "filter[0].key", "is required"),
        (c("numberObject", "scores", ">", 1, "forbidden"), "filter[0].value", "no such score"),
        (c("string", "scores", "=", "x"), "filter[0].type", "not supported for column 'scores'"),
    ],
)
def test_compile_errors(condition, field, message):
    with pytest.raises(InvalidInput) as err:
        compile_conditions([condition], COLUMNS, dialect="sqlite")
    assert err.value.field == field
    assert message in err.value.message
    assert err.value.status == 400


def test_error_names_the_failing_index():
    conds = [c("null", "name", "is null"), c("string", "name", "=", None)]
    with pytest.raises(InvalidInput) as err:
        compile_conditions(conds, COLUMNS, dialect="postgresql")
    assert err.value.field == "filter[1].value"


def test_compile_rejects_unchecked_shapes():
    with pytest.raises(InvalidInput) as err:
        compile_conditions([{"type": "string", "column": "name"}], COLUMNS, dialect="sqlite")
    assert err.value.field == "filter[0].operator"
    with pytest.raises(InvalidInput):
        compile_conditions({"type": "string"}, COLUMNS, dialect="sqlite")  # type: ignore[arg-type]


def test_filter_column_and_dialect_validation():
    with pytest.raises(ValueError):
        FilterColumn(items.c.name, "bogus")
    with pytest.raises(ValueError):
        FilterColumn(None, "custom", build=_score_filter)
    with pytest.raises(ValueError):
        FilterColumn(items.c.name, "string", types=frozenset({"regex"}))
    with pytest.raises(ValueError):
        compile_conditions([], COLUMNS, dialect="mysql")
    custom_types = FilterColumn(items.c.name, "string", types={"string"})  # type: ignore[arg-type]
    assert custom_types.accepted_types == frozenset({"string"})
    assert COLUMNS["tags"].accepted_types == frozenset({"arrayOptions", "null"})


def test_values_are_bound_not_inlined():
    cond = c("stringObject", "metadata", "=", "v'; DROP TABLE items; --", "k'\"")
    for dialect in ("sqlite", "postgresql"):
        sql = str(select(items.c.id).where(*compile_conditions([cond], COLUMNS, dialect=dialect)))
        assert "DROP" not in sql
        assert "k'" not in sql
