"""SQLAlchemy 2 on psycopg 3 (its default PostgreSQL driver when psycopg2 is
absent) and pandas, both from PyPI, against Eddy, run by tests/clients.rs
as

    python sqlalchemy_pandas.py PORT

What a data script does on default settings: a table created and filled in
a transaction, reflection with `Table(autoload_with=engine)` (columns and
the primary key, through SQLAlchemy's catalog queries), pandas'
`read_sql_table` of a table and of a continuous view, `read_sql_query`, and
`DataFrame.to_sql` appending rows. The output must equal
sqlalchemy_pandas.out."""

import sys

import pandas as pd
from sqlalchemy import MetaData, Table, create_engine, select, text

engine = create_engine(f"postgresql+psycopg://eddy@127.0.0.1:{sys.argv[1]}/eddy")
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, score float8)"))
    conn.execute(text("INSERT INTO users VALUES (1, 'ann', 1.5), (2, 'bob', 2.5)"))
    conn.execute(text("CREATE VIEW top AS SELECT name, max(score) AS best FROM users GROUP BY name"))
users = Table("users", MetaData(), autoload_with=engine)
print("reflected", [(c.name, str(c.type), c.nullable, c.primary_key) for c in users.columns])
with engine.connect() as conn:
    print("select", conn.execute(select(users).where(users.c.score > 2).order_by(users.c.id)).all())
print(pd.read_sql_table("users", engine).sort_values("id").to_string(index=False))
print(pd.read_sql_table("top", engine).sort_values("name").to_string(index=False))
pd.DataFrame({"id": [3, 4], "name": ["cy", "di"], "score": [3.0, None]}).to_sql(
    "users", engine, if_exists="append", index=False
)
print(pd.read_sql_query("SELECT count(*) AS n, sum(score) AS total FROM users", engine).to_string(index=False))
# A transaction rolled back leaves nothing.
with engine.connect() as conn:
    conn.execute(text("DELETE FROM users"))
    print("inside", conn.execute(text("SELECT count(*) FROM users")).scalar())
    conn.rollback()
print("after rollback", pd.read_sql_query("SELECT count(*) AS n FROM users", engine)["n"][0])
