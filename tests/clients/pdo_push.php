<?php
// PHP PDO and pushed changes: LISTEN plus pgsqlGetNotify receives a plain
// NOTIFY and a view's notification; a cursor FETCH with a timeout reads a
// subscription. Every line printed starts with "ok " when it holds.
//
// Usage: php pdo_push.php PORT

$port = $argv[1];
$dsn = "pgsql:host=127.0.0.1;port=$port;dbname=eddy";
$options = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false];
$worker = new PDO($dsn, 'eddy', '', $options);
$web = new PDO($dsn, 'eddy', '', $options);

function check(string $what, bool $ok, $detail = null): void
{
    echo ($ok ? 'ok ' : 'FAILED ') . $what . ($ok ? '' : ': ' . var_export($detail, true)) . "\n";
}

// A plain NOTIFY from another connection.
$worker->exec('LISTEN orders');
$web->exec("NOTIFY orders, 'order 42 placed'");
$n = $worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 2000);
check('NOTIFY reaches the listener', $n !== false && $n['message'] === 'orders' && $n['payload'] === 'order 42 placed', $n);

// pg_notify through a prepared statement.
$web->prepare('SELECT pg_notify(?, ?)')->execute(['orders', 'order 43 placed']);
$n = $worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 2000);
check('pg_notify reaches the listener', $n !== false && $n['payload'] === 'order 43 placed', $n);

// Nothing more: pgsqlGetNotify gives up after its timeout.
check('no notification when nothing happened', $worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 100) === false);

// A read model that announces its changes.
$web->exec('CREATE STREAM order_events (customer text, amount bigint)');
$web->exec("CREATE VIEW customer_totals WITH (notify = 'totals') AS
    SELECT customer, count(*) AS orders, sum(amount) AS total FROM order_events GROUP BY customer");
$worker->exec('LISTEN totals');
$insert = $web->prepare('INSERT INTO order_events VALUES (?, ?)');
$insert->execute(['ann', 30]);
$n = $worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 2000);
$payload = $n === false ? null : json_decode($n['payload'], true);
check('the view notifies its channel', $n !== false && $n['message'] === 'totals', $n);
check('with the changed rows as JSON', $payload !== null && $payload['view'] === 'customer_totals'
    && $payload['changes'] === [['diff' => 1, 'customer' => 'ann', 'orders' => 1, 'total' => 30]], $payload);
$insert->execute(['ann', 12]);
$payload = json_decode($worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 2000)['payload'] ?? 'null', true);
check('an update is the old row out and the new row in', ($payload['changes'] ?? null) === [
    ['diff' => -1, 'customer' => 'ann', 'orders' => 1, 'total' => 30],
    ['diff' => 1, 'customer' => 'ann', 'orders' => 2, 'total' => 42],
], $payload);

// A subscription through a cursor: the snapshot, then each change.
$worker->exec('DECLARE changes CURSOR FOR SUBSCRIBE customer_totals');
$rows = $worker->query("FETCH ALL changes WITH (timeout = '1s')")->fetchAll(PDO::FETCH_ASSOC);
check('FETCH returns the snapshot', count($rows) === 1 && $rows[0]['diff'] == 1 && $rows[0]['total'] == 42, $rows);
$started = microtime(true);
$rows = $worker->query("FETCH ALL changes WITH (timeout = '200ms')")->fetchAll(PDO::FETCH_ASSOC);
$waited = microtime(true) - $started;
check('FETCH waits for its timeout when nothing changed', $rows === [] && $waited >= 0.15, [$rows, $waited]);
$insert->execute(['bob', 7]);
$rows = $worker->query("FETCH 10 changes WITH (timeout = '1s')")->fetchAll(PDO::FETCH_ASSOC);
check('FETCH returns the change', count($rows) === 1 && $rows[0]['customer'] === 'bob' && $rows[0]['diff'] == 1
    && $rows[0]['epoch'] > 0, $rows);
$worker->exec('CLOSE changes');
check('done', true);
