<?php
// Doctrine DBAL's schema manager (Debian's php-doctrine-dbal, DBAL 3)
// against Eddy, run by tests/clients.rs as
//
//     php doctrine.php PORT
//
// What Doctrine's tooling reads on start: listTableNames, listViews (with
// each view's SQL), listTableColumns and createSchema, plus a parameterized
// query through DBAL. It prints one line per check; its output must equal
// doctrine.out.

declare(strict_types=1);

require '/usr/share/php/Doctrine/DBAL/autoload.php';

use Doctrine\DBAL\DriverManager;

$failures = 0;
function check(string $what, bool $ok, $detail = ''): void
{
    global $failures;
    echo $ok ? "ok $what\n" : "FAIL $what: " . json_encode($detail) . "\n";
    $failures += $ok ? 0 : 1;
}

try {
    $conn = DriverManager::getConnection([
        'driver' => 'pdo_pgsql',
        'host' => '127.0.0.1',
        'port' => (int) $argv[1],
        'dbname' => 'eddy',
        'user' => 'eddy',
        'password' => '',
    ]);
    $conn->executeStatement('CREATE TABLE accounts (id bigserial PRIMARY KEY, owner varchar(40) NOT NULL, balance numeric(12,2) DEFAULT 0)');
    $conn->executeStatement('CREATE STREAM payments (account bigint, amount numeric(12,2))');
    $conn->executeStatement('CREATE VIEW paid AS SELECT account, sum(amount) AS total FROM payments GROUP BY account');

    $sm = $conn->createSchemaManager();
    $tables = $sm->listTableNames();
    check('listTableNames lists the table', in_array('accounts', $tables, true), $tables);
    $views = [];
    foreach ($sm->listViews() as $view) {
        $views[$view->getShortestName('public')] = $view->getSql();
    }
    check('listViews lists the view with its SQL', isset($views['paid']) && stripos($views['paid'], 'sum(amount)') !== false, $views);
    $columns = $sm->listTableColumns('accounts');
    $described = [];
    foreach ($columns as $column) {
        // Doctrine finds a serial column by its default, which it reads
        // with a correlated subquery over pg_attrdef.
        $described[] = $column->getName() . ':' . $column->getType()->getName() . ($column->getNotnull() ? ':not null' : '') . ($column->getAutoincrement() ? ':autoincrement' : '');
    }
    check('listTableColumns describes the columns', $described === ['id:bigint:not null:autoincrement', 'owner:string:not null', 'balance:decimal'], $described);
    $schema = $sm->createSchema();
    check('createSchema reads the whole schema', $schema->hasTable('accounts'), $schema->getTableNames());

    $conn->insert('accounts', ['owner' => 'ann', 'balance' => '12.50']);
    $conn->insert('accounts', ['owner' => 'bob']);
    $rows = $conn->fetchAllAssociative('SELECT id, owner, balance FROM accounts WHERE balance >= ? ORDER BY id', [0]);
    $read = array_map(fn ($r) => "{$r['id']}:{$r['owner']}:{$r['balance']}", $rows);
    check('insert and a parameterized read', $read === ['1:ann:12.50', '2:bob:0.00'], $read);
} catch (\Throwable $e) {
    check('Doctrine works', false, get_class($e) . ': ' . $e->getMessage());
}

exit($failures === 0 ? 0 : 1);
