-- LISTEN/NOTIFY in psql: it prints each notification after the command
-- that brought it back, its own NOTIFY's and a view's included.
LISTEN orders;
NOTIFY orders, 'hello';
SELECT pg_notify('orders', 'from a function');
CREATE STREAM events (customer text, amount bigint);
CREATE VIEW totals WITH (notify = 'totals') AS
  SELECT customer, sum(amount) AS total FROM events GROUP BY customer;
LISTEN totals;
INSERT INTO events VALUES ('ann', 10);
INSERT INTO events VALUES ('ann', 5), ('bob', 1);
UNLISTEN *;
NOTIFY orders, 'unheard';
SELECT customer, total FROM totals ORDER BY customer;
