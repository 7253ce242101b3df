"""The proofs of a restored database (module_utils/_proofs.py, pg_restore's check step) judged on recorded server
answers: a proof that was asked for and could not be made fails, a smoke query without `expect` must answer rows,
and each comparison with the manifest is its own proof."""

from __future__ import annotations

import typing as t

import psycopg2
import pytest

from ansible_collections.stackops.runbooks.plugins.module_utils import _proofs, _restore
from ansible_collections.stackops.runbooks.plugins.module_utils._backup import BackupError
from ansible_collections.stackops.runbooks.plugins.module_utils._common import StackopsError
from ansible_collections.stackops.runbooks.plugins.module_utils._restore_plan import check_inputs
from ansible_collections.stackops.runbooks.plugins.modules import pg_restore

# What PostgreSQL 17 (drill1) answered: CREATE EXTENSION by a login that is not a superuser, on a server without
# the extension's files, and an amcheck function called without EXECUTE on it.
NOT_SUPERUSER = (
    'permission denied to create extension "amcheck"\nHINT:  Must be superuser to create this extension.',
    "42501",
)
NO_CONTROL_FILE = (
    'extension "amcheck" is not available\nDETAIL:  Could not open extension control file '
    '"/usr/share/postgresql/17/extension/amcheck.control": No such file or directory.',
    "0A000",
)
NO_EXECUTE = ("permission denied for function bt_index_check", "42501")
CORRUPT_INDEX = ('item order invariant violated for index "customers_pkey"', "XX002")
INDEXES = [("app.customers_pkey",), ("app.orders_pkey",)]
TABLES = [("app.customers",), ("app.orders",)]
NO_ROWS = object()  # a statement that returns no result set


class Refused(psycopg2.Error):
    """A server error as psycopg2 raises it, with its SQLSTATE."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def pgcode(self) -> str:  # type: ignore[override]
        return self.code


Answer = t.Union[list, Refused, object]


class Recorded:
    """A cursor (and its connection) answering each statement from a recording: the answer of the longest
    (fragment of the statement, argument) key that matches, an argument of None matching any."""

    def __init__(self, answers: dict[tuple[str, str | None], Answer]) -> None:
        self.answers = answers
        self.executed: list[str] = []
        self.rows: list = []
        self.description: object = None
        self.connection = self

    def execute(self, statement: t.Any, args: t.Any = None) -> None:
        text = " ".join(str(statement).split())
        self.executed.append(text)
        arg = args[0] if args else None
        keys = [k for k in self.answers if k[0] in text and k[1] in (None, arg)]
        if not keys:
            raise AssertionError(f"no recorded answer for {text!r} {args!r}")
        answer = self.answers[max(keys, key=lambda k: (len(k[0]), k[1] is not None))]
        if isinstance(answer, Refused):
            raise answer
        self.description = None if answer is NO_ROWS else ("column",)
        self.rows = [] if answer is NO_ROWS else list(t.cast(list, answer))

    def fetchall(self) -> list:
        return self.rows

    def fetchone(self) -> t.Any:
        return self.rows[0] if self.rows else None

    def rollback(self) -> None:
        pass

    # The connection's side, for pg_restore's check step.
    def cursor(self) -> Recorded:
        return self

    def __enter__(self) -> Recorded:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def set_session(self, **settings: object) -> None:
        pass

    def close(self) -> None:
        pass


def server(**changes: Answer) -> dict[tuple[str, str | None], Answer]:
    """A healthy restored database with amcheck available; changes replace answers by key name."""
    answers: dict[tuple[str, str | None], Answer] = {
        ("CREATE EXTENSION IF NOT EXISTS amcheck", None): NO_ROWS,
        ("SELECT c.oid::regclass::text FROM pg_catalog.pg_index", None): INDEXES,
        ("SELECT to_regproc('verify_heapam')", None): [(True,)],
        ("SELECT c.oid::regclass::text FROM pg_catalog.pg_class", None): TABLES,
        ("bt_index_check(", None): [],
        ("FROM verify_heapam(", None): [],
        ("ANALYZE", None): NO_ROWS,
        ("SELECT to_regclass", None): [(False,)],
    }
    names = {
        "create_extension": ("CREATE EXTENSION IF NOT EXISTS amcheck", None),
        "index_check": ("bt_index_check(", None),
        "customers_pkey": ("bt_index_check(", "app.customers_pkey"),
    }
    for name, answer in changes.items():
        answers[names[name]] = answer
    return answers


# --- amcheck --------------------------------------------------------------------------------------------------------


def test_amcheck_passes_only_after_checking_every_index_and_table() -> None:
    cur = Recorded(server())
    assert _proofs.amcheck(cur) == {
        "name": "amcheck",
        "passed": True,
        "detail": "2 B-tree indexes (with heapallindexed) and 2 tables",
    }
    assert (
        sum("bt_index_check" in s for s in cur.executed) == 2 and sum("verify_heapam(" in s for s in cur.executed) == 2
    )


@pytest.mark.parametrize(
    ("changes", "cause", "fix"),
    [
        (
            {"create_extension": Refused(*NOT_SUPERUSER)},
            'CREATE EXTENSION amcheck failed: permission denied to create extension "amcheck".',
            "Log in as a superuser (login_user)",
        ),
        (
            {"create_extension": Refused(*NO_CONTROL_FILE)},
            'CREATE EXTENSION amcheck failed: extension "amcheck" is not available.',
            "Install PostgreSQL's contrib modules on the server",
        ),
        (
            {"index_check": Refused(*NO_EXECUTE)},
            "bt_index_check(app.customers_pkey) failed: permission denied for function bt_index_check.",
            "Log in as a superuser (login_user)",
        ),
    ],
    ids=["not-a-superuser", "not-installed", "no-execute"],
)
def test_amcheck_asked_for_and_unable_to_run_fails_with_its_cause_and_fix(
    changes: dict[str, Answer], cause: str, fix: str
) -> None:
    found = _proofs.amcheck(Recorded(server(**changes)))
    assert found["passed"] is False, found
    assert found["detail"].startswith(f"amcheck was asked for but could not run: {cause} {fix}"), found["detail"]
    assert found["detail"].endswith("or set amcheck=false (restore_drill_amcheck in a drill) to go without it.")


def test_amcheck_records_a_corrupt_index_and_goes_on_with_the_others() -> None:
    cur = Recorded(server(customers_pkey=Refused(*CORRUPT_INDEX)))
    found = _proofs.amcheck(cur)
    assert found == {
        "name": "amcheck",
        "passed": False,
        "detail": 'app.customers_pkey: item order invariant violated for index "customers_pkey"',
    }
    assert sum("verify_heapam(" in s for s in cur.executed) == 2, "the tables were not checked after the finding"


# --- smoke queries --------------------------------------------------------------------------------------------------

SMOKE = "SELECT id FROM app.customers WHERE id < 0"


def smoke(answer: Answer, **query: t.Any) -> dict[str, t.Any]:
    return _proofs.smoke(Recorded({(SMOKE, None): answer}), {"name": "negative_ids", "query": SMOKE, **query})


def test_a_smoke_query_without_expect_that_returns_no_rows_fails() -> None:
    for answer in ([], NO_ROWS):
        found = smoke(answer)
        assert found["name"] == "smoke:negative_ids" and found["passed"] is False, found
        assert found["detail"] == (
            "returned no rows; a smoke query without expect must return at least one. If no rows is the right "
            "answer, say so with expect: []"
        )


@pytest.mark.parametrize(
    ("answer", "query", "passed"),
    [
        ([(7,)], {}, True),
        ([(7,)], {"expect": None}, True),
        ([], {"expect": []}, True),
        ([(7,)], {"expect": []}, False),
        ([], {"expect": 0}, False),
        ([(0,)], {"expect": 0}, True),
    ],
)
def test_a_smoke_query_with_rows_or_its_expect(answer: list, query: dict[str, t.Any], passed: bool) -> None:
    assert smoke(answer, **query)["passed"] is passed


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        (
            [{"name": "customers", "query": "SELECT count(*) FROM app.customers", "expected": 20000}],
            "smoke_queries[0] (customers) has expected, which is not an option; each takes name, query and expect.",
        ),
        (
            [{"name": "customers", "query": "SELECT 1"}, {"name": "customers", "query": "SELECT 2", "expect": 2}],
            "smoke_queries[1] is named customers like an earlier one",
        ),
    ],
    ids=["misspelt-expect", "same-name"],
)
def test_smoke_queries_that_would_prove_less_than_they_seem_are_refused(
    queries: list[dict[str, t.Any]], message: str
) -> None:
    with pytest.raises(StackopsError) as caught:
        _proofs.check_smoke_spec(queries)
    assert str(caught.value).startswith(message)


# --- one comparison, one proof: pg_restore's check step --------------------------------------------------------------


def reading(**changes: dict[str, t.Any] | None) -> dict[str, t.Any]:
    found: dict[str, t.Any] = {
        "tables": {"app.customers": 20000, "app.orders": 51234},
        "objects": {"tables": 2, "indexes": 2, "sequences": 1},
        "sequences": {"app.customers_id_seq": 20000},
    }
    return {**found, **changes}


def check(
    monkeypatch: pytest.MonkeyPatch,
    manifest: dict[str, t.Any],
    found: dict[str, t.Any],
    answers: dict[tuple[str, str | None], Answer] | None = None,
    **params: t.Any,
) -> tuple[list[dict[str, t.Any]], str | None]:
    """pg_restore's check step of a drill on a restored database whose catalog reads as `found` and which answers
    the rest as recorded: its proofs, and its failure."""
    monkeypatch.setattr(_restore, "must_connect", lambda *args, **kwargs: Recorded(answers or server()))
    monkeypatch.setattr(_restore, "catalog", lambda conn: found)
    spec = pg_restore.argument_spec()
    p = {**{name: option.get("default") for name, option in spec.items()}, "operation": "drill", **params}
    proofs: list[dict[str, t.Any]] = []
    try:
        o = check_inputs({**p, "db": "app", "src": "/var/backups/postgres/app-20260101T020000Z"})
        _restore.Restore(o, None).check("app_restore_1", manifest, proofs)
    except BackupError as exc:
        return proofs, str(exc)
    return proofs, None


def verdicts(proofs: list[dict[str, t.Any]]) -> dict[str, bool | None]:
    return {p["name"]: p["passed"] for p in proofs}


def test_a_row_count_that_differs_fails_row_counts_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    found = reading(tables={"app.customers": 19999, "app.orders": 51234})
    proofs, failure = check(monkeypatch, reading(), found)
    assert verdicts(proofs) == {"row_counts": False, "objects": True, "sequences": True}
    assert proofs[0]["detail"] == "table app.customers has 19999 rows, the backup had 20000"
    assert failure == (
        "The restored data does not match the backup's manifest: table app.customers has 19999 rows, the backup had "
        "20000."
    )


def test_a_sequence_that_differs_fails_sequences_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    proofs, failure = check(monkeypatch, reading(), reading(sequences={"app.customers_id_seq": 1}))
    assert verdicts(proofs) == {"row_counts": True, "objects": True, "sequences": False}
    assert failure and "sequence app.customers_id_seq is at 1, the backup had it at 20000" in failure


def test_a_plain_dump_has_no_object_counts_to_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain dump's expected_of() has no object record: objects is skipped, not passed."""
    proofs, failure = check(monkeypatch, reading(objects=None), reading(), amcheck=True)
    assert failure is None
    assert verdicts(proofs) == {
        "row_counts": True,
        "objects": None,
        "sequences": True,
        "sentinel": None,
        "amcheck": True,
    }
    assert proofs[1]["detail"] == "not compared: the backup (a plain dump) records no object counts"
    assert proofs[2]["detail"] == "1 sequences at the backup's values"


def test_a_drill_whose_amcheck_cannot_run_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = server(create_extension=Refused(*NOT_SUPERUSER))
    proofs, failure = check(monkeypatch, reading(), reading(), refused, amcheck=True)
    assert verdicts(proofs)["amcheck"] is False
    assert failure and failure.startswith(
        "The restored database failed its checks: amcheck: amcheck was asked for but could not run: CREATE "
        'EXTENSION amcheck failed: permission denied to create extension "amcheck".'
    )


def test_a_drill_whose_smoke_query_answers_no_rows_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {**server(), (SMOKE, None): []}
    queries = [{"name": "negative_ids", "query": SMOKE}]
    proofs, failure = check(monkeypatch, reading(), reading(), answers, smoke_queries=queries)
    assert verdicts(proofs)["smoke:negative_ids"] is False
    assert failure and "smoke:negative_ids: returned no rows" in failure
