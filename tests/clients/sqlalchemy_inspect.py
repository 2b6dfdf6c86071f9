"""SQLAlchemy 2 (PyPI, with Debian's psycopg2) against Eddy, run by
tests/clients.rs: what Superset does on connect, inspect(engine) listing
schemas, tables, foreign tables (streams), views, their columns and a view's
definition. The output must equal sqlalchemy.out."""

import sys

from sqlalchemy import create_engine, inspect, text

engine = create_engine(f"postgresql+psycopg2://eddy@127.0.0.1:{sys.argv[1]}/eddy")
with engine.connect() as conn:
    conn.execute(text("CREATE STREAM orders (customer text NOT NULL, amount float8, placed_at timestamptz)"))
    conn.execute(
        text("CREATE VIEW revenue AS SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer")
    )
    conn.execute(text("INSERT INTO orders VALUES ('ada', 12.5, now()), ('ada', 7.5, now())"))
    # SQLAlchemy 2 runs these in a transaction; views show it once committed.
    conn.commit()
    print("rows", conn.execute(text("SELECT customer, n, total FROM revenue")).all())
inspector = inspect(engine)
print("schemas", inspector.get_schema_names())
print("tables", inspector.get_table_names())
print("foreign tables", inspector.get_foreign_table_names())
print("views", inspector.get_view_names())
for relation in ("revenue", "orders"):
    columns = inspector.get_columns(relation)
    print("columns", relation, [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in columns])
print("definition", inspector.get_view_definition("revenue").strip())
print("has_table", inspector.has_table("revenue"), inspector.has_table("nope"))
