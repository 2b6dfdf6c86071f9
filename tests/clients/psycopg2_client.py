"""psycopg2 (Debian python3-psycopg2, run with /usr/bin/python3) against Eddy,
run by tests/clients.rs: parameters, copy_expert into a stream, typed
results (ints, floats, numeric, timezone-aware timestamps, json, NULL),
server-side prepared statements through PREPARE/EXECUTE, and errors with
their SQLSTATE. The output must equal psycopg2.out."""

import io
import sys

import psycopg2
import psycopg2.extras

conn = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="eddy", dbname="eddy")
conn.autocommit = True
cur = conn.cursor()
cur.execute("CREATE STREAM readings (sensor text NOT NULL, value float8, reading numeric(10,3), at timestamptz, meta json)")
cur.execute(
    "CREATE VIEW per_sensor AS SELECT sensor, count(*) AS n, avg(value) AS mean, sum(reading) AS total, "
    "max(at) AS last_at, max(meta::text) AS last_meta FROM readings GROUP BY sensor"
)
cur.execute(
    "INSERT INTO readings VALUES (%s, %s, %s, %s, %s)",
    ("s1", 1.5, "2.125", "2026-01-01 10:00:00+00", psycopg2.extras.Json({"unit": "C"})),
)
data = io.StringIO("s1\t2.5\t1.000\t2026-01-01 11:00:00+00\t{\"unit\": \"C\"}\ns2\t\\N\t\\N\t\\N\t\\N\n")
cur.copy_expert("COPY readings FROM STDIN", data)
print("copied", cur.rowcount)
cur.execute("SELECT sensor, n, mean, total, last_at, last_meta FROM per_sensor ORDER BY sensor")
print("columns", [(d.name, d.type_code) for d in cur.description])
for row in cur.fetchall():
    print("row", [(type(v).__name__, str(v)) for v in row])
cur.execute("SELECT n FROM per_sensor WHERE sensor = %(s)s", {"s": "s1"})
print("param", cur.fetchone())
cur.execute("PREPARE by_sensor (text) AS SELECT n, mean FROM per_sensor WHERE sensor = $1")
cur.execute("EXECUTE by_sensor (%s)", ("s1",))
print("prepared", cur.fetchone())
cur.execute("DEALLOCATE by_sensor")
try:
    cur.execute("SELECT * FROM nope")
except psycopg2.Error as e:
    print("error", e.pgcode, type(e).__name__)
cur.execute("SELECT 1")
print("still", cur.fetchone())
conn.close()
