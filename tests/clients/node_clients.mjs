// node-postgres (pg) and postgres.js against Eddy, run by tests/clients.rs as
//
//     EDDY_NODE_DIR=DIR node node_clients.mjs PORT
//
// with pg, pg-copy-streams and postgres installed in DIR/node_modules
// (tests/run.sh installs them with npm).
//
// What a Node web app does: parameterized writes and reads, pagination with
// LIMIT $1 OFFSET $2, `= ANY($1)` with a JavaScript array, INSERT ...
// RETURNING of a serial id, and COPY TO (pg-copy-streams). It prints one
// line per check; its output must equal node_clients.out.

import { createRequire } from 'node:module';
const require = createRequire(`${process.env.EDDY_NODE_DIR}/package.json`);
const pg = require('pg');
const { to: copyTo } = require('pg-copy-streams');
const postgres = require('postgres');

const port = Number(process.argv[2]);
let failures = 0;
function check(what, ok, detail = '') {
  console.log(ok ? `ok ${what}` : `FAIL ${what}: ${JSON.stringify(detail)}`);
  if (!ok) failures += 1;
}

async function nodePostgres() {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'eddy', database: 'eddy' });
  await client.connect();
  await client.query('CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL, tier text DEFAULT \'free\')');
  await client.query('CREATE VIEW tiers AS SELECT tier, count(*) AS n FROM users GROUP BY tier');
  const ids = [];
  for (const [name, tier] of [['ann', 'pro'], ['bob', null], ['cy', 'pro'], ['dee', null]]) {
    const sql = tier ? 'INSERT INTO users (name, tier) VALUES ($1, $2) RETURNING id' : 'INSERT INTO users (name) VALUES ($1) RETURNING id';
    const res = await client.query(sql, tier ? [name, tier] : [name]);
    ids.push(res.rows[0].id);
  }
  check('pg: INSERT ... RETURNING gives each new serial id', JSON.stringify(ids) === '["1","2","3","4"]', ids);
  const page = await client.query('SELECT name FROM users ORDER BY id LIMIT $1 OFFSET $2', [2, 1]);
  check('pg: LIMIT $1 OFFSET $2', page.rows.map((r) => r.name).join() === 'bob,cy', page.rows);
  const some = await client.query('SELECT name FROM users WHERE id = ANY($1) ORDER BY id', [[4, 1]]);
  check('pg: = ANY($1) with an array of numbers', some.rows.map((r) => r.name).join() === 'ann,dee', some.rows);
  const named = await client.query('SELECT id FROM users WHERE name = ANY($1::text[]) ORDER BY id', [['cy', 'bob', 'x y']]);
  check('pg: = ANY($1::text[]) with an array of strings', named.rows.map((r) => r.id).join() === '2,3', named.rows);
  const tiers = await client.query('SELECT tier, n FROM tiers ORDER BY tier');
  check('pg: the view counts the rows', JSON.stringify(tiers.rows) === '[{"tier":"free","n":"2"},{"tier":"pro","n":"2"}]', tiers.rows);
  const arr = await client.query("SELECT ARRAY[1, 2] AS a, '{x,\"y z\",NULL}'::text[] AS t");
  check('pg: arrays read as JavaScript arrays', JSON.stringify(arr.rows[0]) === '{"a":["1","2"],"t":["x","y z",null]}', arr.rows[0]);
  const copied = await new Promise((resolve, reject) => {
    let text = '';
    const stream = client.query(copyTo('COPY (SELECT id, name, tier FROM users ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)'));
    stream.on('data', (chunk) => { text += chunk.toString(); });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
  check('pg: COPY (SELECT ...) TO STDOUT', copied === 'id,name,tier\n1,ann,pro\n2,bob,free\n3,cy,pro\n4,dee,free\n', copied);
  try {
    await client.query('SELECT * FROM nowhere WHERE id = $1', [1]);
    check('pg: an error is thrown', false, 'no error');
  } catch (e) {
    check('pg: an error carries its SQLSTATE', e.code === '42P01', e.code);
  }
  await client.end();
}

async function postgresJs() {
  // postgres.js reads the array types from pg_type on connect, and prepares
  // every query.
  const sql = postgres({ host: '127.0.0.1', port, user: 'eddy', database: 'eddy', max: 2 });
  const [row] = await sql`INSERT INTO users (name, tier) VALUES (${'eve'}, ${'team'}) RETURNING id, tier`;
  check('postgres.js: INSERT ... RETURNING', row.id === '5' && row.tier === 'team', row);
  const page = await sql`SELECT name FROM users ORDER BY id LIMIT ${2} OFFSET ${3}`;
  check('postgres.js: LIMIT and OFFSET parameters', page.map((r) => r.name).join() === 'dee,eve', page);
  const some = await sql`SELECT name FROM users WHERE id = ANY(${[2, 5]}) ORDER BY id`;
  check('postgres.js: = ANY with an array', some.map((r) => r.name).join() === 'bob,eve', some);
  const tiers = await sql`SELECT tier, n FROM tiers WHERE n >= ${1} ORDER BY tier`;
  check('postgres.js: reads the view', tiers.map((r) => `${r.tier}=${r.n}`).join() === 'free=2,pro=2,team=1', tiers);
  const lines = [];
  const readable = await sql`COPY (SELECT name FROM users WHERE tier = 'pro' ORDER BY id) TO STDOUT`.readable();
  for await (const chunk of readable) lines.push(chunk.toString());
  check('postgres.js: COPY TO STDOUT', lines.join('') === 'ann\ncy\n', lines);
  await sql.end();
}

try {
  await nodePostgres();
  await postgresJs();
} catch (e) {
  check('the clients work', false, String(e && e.stack));
}
process.exit(failures === 0 ? 0 : 1);
