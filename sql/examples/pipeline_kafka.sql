CREATE EXTENSION pipeline_kafka;
SELECT pipeline_kafka.add_broker('localhost:9092');
CREATE STREAM logs_stream (payload json);
CREATE CONTINUOUS VIEW message_count AS SELECT COUNT(*) FROM logs_stream;
SELECT pipeline_kafka.consume_begin('logs', 'logs_stream', format := 'json');
