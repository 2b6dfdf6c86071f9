-- psql's meta-commands against Eddy, run by tests/clients.rs as
--   psql -X -a -v ON_ERROR_STOP=0 -h 127.0.0.1 -p PORT -U eddy -d eddy -f psql_catalog.sql
-- with stderr merged into stdout; the output must equal psql_catalog.out
-- (with the figures of \timing's "Time:" lines replaced by N).
CREATE STREAM clicks (url text NOT NULL, user_id bigint, at timestamptz, payload json);
CREATE CONTINUOUS VIEW per_url AS SELECT url, count(*) AS hits, count(DISTINCT user_id) AS users, max(at) AS last_at FROM clicks GROUP BY url;
CREATE TABLE accounts (id bigint PRIMARY KEY, plan text NOT NULL, seats int);
-- Streams are foreign tables, as in PipelineDB; continuous views are views.
\d
\dt
\dv
-- Eddy's own relations are in their schemas, off the search path.
\dt pipelinedb.*
\d per_url
-- A table shows its NOT NULL columns and its primary key, as PostgreSQL's do.
\d accounts
-- A stream is a foreign table of the server pipelinedb, and varchar(n) and
-- char(n) columns show their lengths.
CREATE STREAM signups (email varchar(80), country char(2), referrer text);
\d signups
\di
\df
\l
-- \copy into a stream, then the view in expanded display.
\copy clicks (url, user_id, at) from stdin
/home	1	2026-01-01 10:00:00+00
/home	2	2026-01-01 10:01:00+00
/cart	1	2026-01-01 10:02:00+00
\.
\x
SELECT * FROM per_url ORDER BY url;
\x
\timing on
SELECT url, hits FROM per_url ORDER BY hits DESC, url;
\timing off
\dv per_*
\d nope
-- The `+` forms and the privilege and view-source commands.
\d+ accounts
\d+ signups
\dt+
\sv per_url
\dp
-- Defaults and serial columns in \d.
CREATE TABLE orders (id serial PRIMARY KEY, note text DEFAULT 'none', amount numeric(10,2) NOT NULL);
\d orders
-- Roles, data types (none of a user's own), and a bare varchar and numeric.
\du
\dT
CREATE TABLE notes (body varchar, amount numeric);
\d notes
