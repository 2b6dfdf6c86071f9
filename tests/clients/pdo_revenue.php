<?php
// The read side of sql/examples/orders.sql, as a PHP application reads it:
// PDO (pdo_pgsql) with server-side prepares. Run by tests/kafka_e2e.rs:
//
//     php pdo_revenue.php PORT MIN_ORDERS
//
// It prints every plan of revenue_by_plan as "plan orders revenue", the
// plans with at least MIN_ORDERS orders chosen by a bound parameter.

declare(strict_types=1);

$port = (int) ($argv[1] ?? 5432);
$db = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=eddy", 'eddy', '', [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_EMULATE_PREPARES => false,
]);

$read = $db->prepare('SELECT plan, orders, revenue FROM revenue_by_plan WHERE orders >= ? ORDER BY plan');
$read->execute([(int) ($argv[2] ?? 0)]);
foreach ($read as $row) {
    echo "{$row['plan']} {$row['orders']} {$row['revenue']}\n";
}
