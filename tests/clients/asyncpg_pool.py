"""asyncpg against Eddy, run by tests/clients.rs as

    python asyncpg_pool.py PORT

A pool whose connections are released (and so reset, with asyncpg's
`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`) and
acquired again many times, writing to a stream and reading a view with
parameters. It prints one line per check; its output must equal
asyncpg_pool.out.
"""

import asyncio
import datetime
import decimal
import sys

import asyncpg


async def main(port: int) -> int:
    failures = 0

    def check(what: str, ok: bool, detail: object = "") -> None:
        nonlocal failures
        print(f"ok {what}" if ok else f"FAIL {what}: {detail}")
        failures += 0 if ok else 1

    dsn = f"postgresql://eddy@127.0.0.1:{port}/eddy"
    setup = await asyncpg.connect(dsn)
    await setup.execute("CREATE STREAM clicks (url text, ms bigint)")
    await setup.execute("CREATE VIEW hits AS SELECT url, count(*) AS n, sum(ms) AS total FROM clicks GROUP BY url")
    await setup.close()

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    released = 0
    try:
        for i in range(40):
            async with pool.acquire() as conn:
                await conn.execute("INSERT INTO clicks VALUES ($1, $2)", f"/p{i % 4}", i)
            released += 1
        check("40 acquire/insert/release cycles (each release resets the connection)", released == 40)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT url, n, total FROM hits WHERE n >= $1 ORDER BY url", 1)
            got = [(r["url"], r["n"], r["total"]) for r in rows]
            want = [(f"/p{k}", 10, sum(range(k, 40, 4))) for k in range(4)]
            check("the view counts every insert", got == want, got)
            one = await conn.fetchval("SELECT n FROM hits WHERE url = $1", "/p1")
            check("fetchval with a text parameter", one == 10, one)
            page = await conn.fetch("SELECT url FROM hits ORDER BY url LIMIT $1 OFFSET $2", 2, 1)
            check("pagination: LIMIT $1 OFFSET $2 take integers", [r["url"] for r in page] == ["/p1", "/p2"], page)
            since = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
            n = await conn.fetchval("SELECT count(*) FROM hits WHERE $1::timestamptz < now()", since)
            check("a $1::timestamptz parameter takes a datetime", n == 4, n)
            span = datetime.timedelta(days=1, hours=2, minutes=3, seconds=4.5)
            same = await conn.fetchval("SELECT $1::interval = interval '1 day 02:03:04.5'", span)
            check("a timedelta parameter (a binary interval) reads as PostgreSQL's", same is True, same)
            # asyncpg reads numeric in binary: 20 and 35 digits, past
            # rust_decimal's 28, as PostgreSQL sends them.
            row = await conn.fetchrow(
                "SELECT sum(x) AS s, avg(x) AS a FROM (VALUES (9223372036854775807::bigint), (9223372036854775807::bigint)) t(x)"
            )
            want = (decimal.Decimal("18446744073709551614"), decimal.Decimal("9223372036854775807.0000000000000000"))
            check("sum(bigint) and avg(bigint) are exact numerics", (row["s"], row["a"]) == want and str(row["a"]) == str(want[1]), tuple(row))
            # copy_records_to_table sends binary COPY. Into a stream it needs
            # the column list: asyncpg reads the columns from SELECT *, which
            # includes the stream's arrival_timestamp.
            await conn.execute("CREATE TABLE visits (id bigint PRIMARY KEY, url text, at timestamptz, span interval, price numeric(10,2))")
            when = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
            records = [(i, f"/v{i}", when, datetime.timedelta(seconds=i), decimal.Decimal("1.25") * i) for i in range(500)]
            records.append((500, None, None, None, None))
            status = await conn.copy_records_to_table("visits", records=records)
            back = await conn.fetch("SELECT id, url, at, span, price FROM visits ORDER BY id")
            check("copy_records_to_table into a table (binary COPY)", status == "COPY 501" and [tuple(r) for r in back] == records, (status, back[:2], back[-1:]))
            status = await conn.copy_records_to_table("clicks", records=[("/p0", 1000), ("/p9", 5)], columns=["url", "ms"])
            n = await conn.fetchval("SELECT n FROM hits WHERE url = '/p9'")
            check("copy_records_to_table into a stream feeds its view", status == "COPY 2" and n == 1, (status, n))
            # Arrays: asyncpg looks up every array type but text[] and oid[]
            # with its type introspection query before it binds or reads one.
            ids = await conn.fetch("SELECT id FROM visits WHERE id = ANY($1) ORDER BY id", [499, 3, 1])
            check("= ANY($1) takes a list of integers (bigint[])", [r["id"] for r in ids] == [1, 3, 499], ids)
            urls = await conn.fetch("SELECT url FROM visits WHERE url = ANY($1::text[]) ORDER BY url", ["/v7", "/v2"])
            check("= ANY($1::text[]) takes a list of strings", [r["url"] for r in urls] == ["/v2", "/v7"], urls)
            row = await conn.fetchrow(
                "SELECT ARRAY[1, 2]::int2[] AS s, ARRAY[1, NULL]::int4[] AS i, ARRAY[9223372036854775807] AS b, "
                "ARRAY[1.5, -0.25]::float4[] AS r, ARRAY[1.5]::float8[] AS d, ARRAY[true, false] AS t, "
                "ARRAY['a b', NULL, '{x}'] AS x, '{2026-01-02}'::date[] AS dt"
            )
            want = ([1, 2], [1, None], [9223372036854775807], [1.5, -0.25], [1.5], [True, False], ["a b", None, "{x}"], [datetime.date(2026, 1, 2)])
            check("arrays of each scalar type read back", tuple(row) == want, tuple(row))
            back = [await conn.fetchval(f"SELECT $1::{t}[]", v) for t, v in [("float8", [0.5, None]), ("bool", [True, None]), ("int2", [1, 2])]]
            check("array parameters round-trip", back == [[0.5, None], [True, None], [1, 2]], back)
            # What asyncpg's pool sends on release to a PostgreSQL server.
            await conn.execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
            check("the pool's reset query runs", True)
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check("the pool works", False, repr(e))
    finally:
        await pool.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
