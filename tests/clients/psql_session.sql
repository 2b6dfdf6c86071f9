-- A psql session against Eddy, run by tests/clients.rs as
--   psql -X -a -v ON_ERROR_STOP=0 -h 127.0.0.1 -p PORT -U eddy -d eddy -f psql_session.sql
-- with stderr merged into stdout; the output must equal psql_session.out.
CREATE STREAM s (k text, v float8);
CREATE CONTINUOUS VIEW v AS SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k;
INSERT INTO s (k, v) VALUES ('a', 1.5), ('a', 2.5), ('b', 10);
SELECT * FROM v ORDER BY k;
-- psql's \copy reads the rows that follow it in this file and sends them
-- with COPY FROM STDIN; \N is NULL, which sum() skips and count(*) counts.
\copy s (k, v) from stdin
a	4.25
c	0.25
c	\N
\.
-- COPY FROM STDIN with its rows inline, in text and in CSV.
COPY s FROM STDIN;
b	5
c	0.75
\.
COPY s (v, k) FROM STDIN WITH (FORMAT csv);
2,"d,e"
\.
SELECT * FROM v ORDER BY k;
-- An error: psql reports it, sets SQLSTATE, and the session goes on.
SELECT * FROM nope;
\echo SQLSTATE :SQLSTATE
SELECT k, n, total FROM v WHERE n > 1 ORDER BY k;
SELECT count(*) AS groups, sum(n) AS events FROM v;
-- COPY out: a query in text, a query in CSV with a header, and psql's \copy ... to.
COPY (SELECT * FROM v ORDER BY k) TO STDOUT;
COPY (SELECT k, n FROM v WHERE n > 1 ORDER BY k) TO STDOUT WITH (FORMAT csv, HEADER);
\copy (SELECT k, total FROM v ORDER BY k) to stdout csv
COPY v TO '/tmp/eddy-copy-out';
\q
SELECT 'not reached';
