-- Orders from a Kafka topic, enriched with the customers table of
-- sql/examples/customers.sql (run that first): revenue by plan, kept
-- current as orders arrive. Each order is joined with its customer as the
-- table holds it when the order is processed (a lookup join); an order of
-- a deleted customer is left out (an inner join).
--
--     eddy generate --topic orders --schema orders --keys 200 --count 3000
--     psql -h 127.0.0.1 -U eddy -v broker=localhost:9092 -f sql/examples/orders.sql

CREATE STREAM orders (customer_id text, amount int);

CREATE VIEW revenue_by_plan AS
  SELECT c.plan, count(*) AS orders, sum(o.amount) AS revenue
  FROM orders o JOIN customers c ON o.customer_id = c.id
  GROUP BY c.plan;

-- Consuming starts once the view is there: a stream keeps no rows, so
-- events read before any view reads the stream would count nowhere.
SELECT pipeline_kafka.consume_begin('orders', 'orders', format := 'json');
