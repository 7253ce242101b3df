"""SQL on the lab's PostgreSQL servers as their superuser (postgres; dba on lab3), for tests that set up data and
check what a module did."""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

import lab
from harness.paths import lab_credentials


def connect(host: lab.Host, db: str = "postgres") -> psycopg2.extensions.connection:
    conn = psycopg2.connect(
        host=host.addr,
        user=host.shape.superuser,
        dbname=db,
        password=lab_credentials(host.name)["stackops_pg_password"],
    )
    conn.autocommit = True
    return conn


def query(host: lab.Host, db: str, statement: str | sql.Composable, args: tuple = ()) -> list[tuple]:
    """The rows of one statement (none for a statement without a result), on its own connection."""
    conn = connect(host, db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
