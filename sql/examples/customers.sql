-- A CQRS read model kept current from a Kafka topic, ksqlDB style.
--
-- The topic `customers` carries one message per change to a customer: the
-- key is the customer's id, the value a JSON object with its columns, and a
-- message with a null value (a tombstone) deletes the customer. The table
-- holds the last value of each key; a view counts customers by plan, and a
-- view over that view lists the two biggest plans. Every read is exact,
-- also after kill -9: the table, the views and the topic's offsets are
-- checkpointed together.
--
--     eddy generate --topic customers --schema customers --keys 200 --count 5000
--     psql -h 127.0.0.1 -U eddy -v broker=localhost:9092 -f sql/examples/customers.sql

CREATE EXTENSION IF NOT EXISTS pipeline_kafka;
SELECT pipeline_kafka.add_broker(:'broker');

CREATE TABLE customers (id text PRIMARY KEY, plan text NOT NULL, seats int, name text)
  WITH (kafka_topic = 'customers', value_format = 'json');

CREATE VIEW customers_by_plan AS
  SELECT plan, count(*) AS customers, sum(seats) AS seats FROM customers GROUP BY plan;

CREATE VIEW top_plans AS
  SELECT plan, customers FROM customers_by_plan ORDER BY customers DESC, plan LIMIT 2;
