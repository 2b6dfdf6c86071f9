"""psycopg 3 (PyPI, binary wheel) against Eddy, run by tests/clients.rs as

    python psycopg3_client.py PORT

What a Python service does with psycopg 3 on its defaults (server-side
binding): parameterized writes and reads, executemany, binary COPY in and
out, `timedelta` and list parameters, `TypeInfo.fetch`, and a named
(server-side) cursor with a parameter. It prints one line per check; its
output must equal psycopg3.out.
"""

import datetime
import sys

import psycopg
from psycopg.types import TypeInfo

failures = 0


def check(what, ok, detail=""):
    global failures
    print(f"ok {what}" if ok else f"FAIL {what}: {detail!r}")
    failures += 0 if ok else 1


def main(port):
    with psycopg.connect(host="127.0.0.1", port=port, user="eddy", dbname="eddy", autocommit=True) as conn:
        conn.execute("CREATE TABLE jobs (id bigserial PRIMARY KEY, name text NOT NULL, took interval, tags text[])")
        conn.execute("CREATE VIEW slow AS SELECT count(*) AS n FROM jobs WHERE took > interval '1 minute'")
        span = datetime.timedelta(minutes=2, seconds=3.5)
        row = conn.execute(
            "INSERT INTO jobs (name, took, tags) VALUES (%s, %s, %s) RETURNING id, took", ("build", span, ["ci", "nightly"])
        ).fetchone()
        check("INSERT ... RETURNING with a timedelta and a list", row == (1, span), row)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO jobs (name, took) VALUES (%s, %s)", [(f"job{i}", datetime.timedelta(seconds=i)) for i in range(200)])
        n = conn.execute("SELECT n FROM slow").fetchone()[0]
        check("executemany, and the view over the table", n == 1 + 139, n)
        found = conn.execute("SELECT name FROM jobs WHERE id = ANY(%s) ORDER BY id", ([1, 3],)).fetchall()
        check("= ANY with a list", found == [("build",), ("job1",)], found)
        tags = conn.execute("SELECT tags FROM jobs WHERE id = 1").fetchone()[0]
        check("a text[] column reads as a list", tags == ["ci", "nightly"], tags)
        cursor = conn.execute("SELECT id FROM jobs ORDER BY id")
        ids = [r[0] for r in cursor]
        check("a client-side cursor reads every row", ids == list(range(1, 202)), (len(ids), ids[:3]))
        # Binary COPY in, then out.
        with conn.cursor() as cur:
            with cur.copy("COPY jobs (id, name, took) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text", "interval"])
                for i in range(1000, 1010):
                    copy.write_row((i, f"copied{i}", datetime.timedelta(hours=1)))
            rows = []
            with cur.copy("COPY (SELECT id, name FROM jobs WHERE id >= 1000 ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "text"])
                rows = list(copy.rows())
        check("binary COPY in and out", len(rows) == 10 and rows[0] == (1000, "copied1000"), rows[:2])
        # TypeInfo.fetch: to_regtype() compared with pg_type's oid.
        info = TypeInfo.fetch(conn, "int4")
        check("TypeInfo.fetch", (info.oid, info.array_oid, info.regtype) == (23, 1007, "integer"), info)
        check("TypeInfo.fetch of a type Eddy lacks", TypeInfo.fetch(conn, "hstore") is None)
    # A named (server-side) cursor, in a transaction as psycopg 3 runs it:
    # DECLARE with a bound parameter, Describe of the cursor as a portal, FETCH.
    with psycopg.connect(host="127.0.0.1", port=port, user="eddy", dbname="eddy") as conn:
        with conn.cursor(name="recent") as cur:
            cur.itersize = 4
            cur.execute("SELECT id, name FROM jobs WHERE id > %s ORDER BY id", (195,))
            first = cur.fetchmany(2)
            rest = cur.fetchall()
            names = [d.name for d in cur.description]
        check("a named cursor with a parameter", first == [(196, "job194"), (197, "job195")] and len(rest) == 14 and names == ["id", "name"], (first, len(rest), names))
        conn.rollback()
        try:
            conn.execute("SELECT * FROM nowhere")
            check("an error is raised", False, "none")
        except psycopg.errors.UndefinedTable as e:
            check("an error is UndefinedTable with 42P01", e.sqlstate == "42P01", e.sqlstate)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
