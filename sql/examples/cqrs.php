<?php
// CQRS with Eddy and PDO: events go into a stream, a read-model view keeps
// orders and totals per customer, and a worker is woken by the view's
// notification and prints the new totals. No polling.
//
//     php sql/examples/cqrs.php [PORT]      (Eddy on 127.0.0.1, default 5432)
//
// In a real application the "web" part runs in your request handlers and
// the worker in its own process (a queue worker, a WebSocket pusher).

$port = $argv[1] ?? '5432';
$dsn = "pgsql:host=127.0.0.1;port=$port;dbname=eddy";
$options = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION];
$web = new PDO($dsn, 'eddy', '', $options);
$worker = new PDO($dsn, 'eddy', '', $options);

// The event log and the read model, which announces each change on the
// channel 'customer_totals'.
$web->exec('CREATE STREAM IF NOT EXISTS order_events (customer text, amount numeric(10,2))');
$web->exec("CREATE VIEW IF NOT EXISTS customer_totals WITH (notify = 'customer_totals') AS
    SELECT customer, count(*) AS orders, sum(amount) AS total FROM order_events GROUP BY customer");

// The worker listens.
$worker->exec('LISTEN customer_totals');

$place = $web->prepare('INSERT INTO order_events (customer, amount) VALUES (?, ?)');
foreach ([['ann', '19.99'], ['bob', '5.00'], ['ann', '30.01']] as [$customer, $amount]) {
    // A request places an order...
    $place->execute([$customer, $amount]);
    // ...and the worker wakes with the read model's change.
    $note = $worker->pgsqlGetNotify(PDO::FETCH_ASSOC, 5000);
    if ($note === false) {
        fwrite(STDERR, "no notification within 5 seconds\n");
        exit(1);
    }
    $change = json_decode($note['payload'], true);
    foreach ($change['changes'] as $row) {
        if ($row['diff'] > 0) {
            printf("%s now has %d order(s), %.2f in total\n", $row['customer'], $row['orders'], $row['total']);
        }
    }
}
