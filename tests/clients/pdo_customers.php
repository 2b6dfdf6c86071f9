<?php
// The read side of sql/examples/customers.sql, as a PHP application reads
// it: PDO (pdo_pgsql) with server-side prepares. Run by tests/kafka_e2e.rs:
//
//     php pdo_customers.php PORT
//
// It prints every plan of customers_by_plan as "plan customers seats", then
// every row of top_plans as "top plan customers", and a customer looked up
// by its key as "customer id plan" (or "customer id gone").

declare(strict_types=1);

$port = (int) ($argv[1] ?? 5432);
$db = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=eddy", 'eddy', '', [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_EMULATE_PREPARES => false,
]);

foreach ($db->query('SELECT plan, customers, seats FROM customers_by_plan ORDER BY plan') as $row) {
    echo "{$row['plan']} {$row['customers']} {$row['seats']}\n";
}
foreach ($db->query('SELECT plan, customers FROM top_plans') as $row) {
    echo "top {$row['plan']} {$row['customers']}\n";
}
$lookup = $db->prepare('SELECT plan FROM customers WHERE id = ?');
foreach (array_slice($argv, 2) as $id) {
    $lookup->execute([$id]);
    $plan = $lookup->fetchColumn();
    echo "customer $id ", $plan === false ? 'gone' : $plan, "\n";
}
