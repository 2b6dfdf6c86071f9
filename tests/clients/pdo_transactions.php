<?php
// Laravel's way with PDO (pdo_pgsql), run by tests/clients.rs as
//
//     php pdo_transactions.php PORT SERVER_PID CYCLES
//
// Native prepares (Laravel turns emulated prepares off): pdo_pgsql names
// each statement pdo_stmt_N and frees it with a simple-query DEALLOCATE,
// which must reach the statement its Parse message prepared (PostgreSQL
// keeps both in one namespace). A transaction of several statements must
// commit, a nested one (a savepoint) must survive a failure inside it, and
// CYCLES prepare-and-free cycles on one connection must leave
// the server's memory flat. It prints one line per check; its output must
// equal pdo_transactions.out.

declare(strict_types=1);

[$port, $pid, $cycles] = [(int) $argv[1], (int) $argv[2], (int) $argv[3]];
$failures = 0;

function check(string $what, bool $ok, string $detail = ''): void
{
    global $failures;
    echo $ok ? "ok $what\n" : "FAIL $what: $detail\n";
    $failures += $ok ? 0 : 1;
}

/** The server's resident memory, in kB. */
function rss(int $pid): int
{
    preg_match('/VmRSS:\s+(\d+) kB/', (string) file_get_contents("/proc/$pid/status"), $m);
    return (int) ($m[1] ?? 0);
}

$pdo = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=eddy", 'eddy', '', [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
    PDO::ATTR_EMULATE_PREPARES => false,
]);
$pdo->exec('CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance bigint)');
$pdo->exec('CREATE VIEW rich AS SELECT owner, sum(balance) AS total FROM accounts GROUP BY owner');

// DB::transaction(function () { ... }) with three statements, each freed
// (DEALLOCATE) before the next.
try {
    $pdo->beginTransaction();
    foreach ([[1, 'ann', 10], [2, 'bob', 20]] as $row) {
        $insert = $pdo->prepare('INSERT INTO accounts VALUES (?, ?, ?)');
        $insert->execute($row);
        $insert = null;
    }
    $update = $pdo->prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?');
    $update->execute([5, 1]);
    $update = null;
    $pdo->commit();
    check('a transaction of three prepared statements commits', true);
} catch (PDOException $e) {
    check('a transaction of three prepared statements commits', false, $e->getMessage());
    if ($pdo->inTransaction()) {
        $pdo->rollBack();
    }
}
$read = $pdo->prepare('SELECT owner, total FROM rich WHERE total > ? ORDER BY owner');
$read->execute([0]);
$rows = $read->fetchAll(PDO::FETCH_NUM);
// sum(bigint) is numeric, which PDO gives as a string, as from PostgreSQL.
check('the view has both accounts', $rows === [['ann', '15'], ['bob', '20']], var_export($rows, true));
$read = null;

// Laravel's nested transaction: a savepoint, a failure inside it, ROLLBACK
// TO the savepoint, and the outer transaction goes on and commits.
try {
    $pdo->beginTransaction();
    $pdo->exec('SAVEPOINT trans2');
    try {
        $pdo->exec('SELECT * FROM no_such_table');
    } catch (PDOException $e) {
        check('the failure inside the savepoint is 42P01', $e->getCode() === '42P01', $e->getMessage());
        $pdo->exec('ROLLBACK TO SAVEPOINT trans2');
    }
    $insert = $pdo->prepare('INSERT INTO accounts VALUES (?, ?, ?)');
    $insert->execute([3, 'cy', 30]);
    $insert = null;
    $pdo->exec('RELEASE SAVEPOINT trans2');
    check('still in the transaction after ROLLBACK TO', $pdo->inTransaction());
    $pdo->commit();
    check('the outer transaction commits', !$pdo->inTransaction());
} catch (PDOException $e) {
    check('a nested transaction with ROLLBACK TO SAVEPOINT', false, $e->getMessage());
}
$total = $pdo->query("SELECT total FROM rich WHERE owner = 'cy'")->fetchColumn();
check('the row written after ROLLBACK TO is there', $total === '30', var_export($total, true));

// rollBack() undoes the transaction's writes, prepared ones included.
$pdo->beginTransaction();
$insert = $pdo->prepare('INSERT INTO accounts VALUES (?, ?, ?)');
$insert->execute([4, 'dee', 40]);
$insert = null;
$pdo->exec("UPDATE accounts SET balance = 0 WHERE owner = 'ann'");
$inside = $pdo->query('SELECT count(*) FROM accounts')->fetchColumn();
$pdo->rollBack();
$after = $pdo->query("SELECT count(*), sum(balance) FROM accounts")->fetch(PDO::FETCH_NUM);
check('the transaction read its own insert', $inside === 4, var_export($inside, true));
check('rollBack undid the insert and the update', $after === [3, '65'], var_export($after, true));

// A statement freed twice is an error, as in PostgreSQL.
try {
    $pdo->exec('DEALLOCATE pdo_stmt_00000001');
    check('DEALLOCATE of a freed statement fails', false, 'it succeeded');
} catch (PDOException $e) {
    check('DEALLOCATE of a freed statement fails with 26000', $e->getCode() === '26000', $e->getMessage());
}

// DEALLOCATE ALL frees a statement still held, which then cannot run.
$held = $pdo->prepare('SELECT count(*) FROM accounts WHERE id > ?');
$held->execute([0]);
check('a held statement runs', $held->fetchColumn() === 3);
$pdo->exec('DEALLOCATE ALL');
try {
    $held->execute([0]);
    check('a statement freed by DEALLOCATE ALL cannot run', false, 'it ran');
} catch (PDOException $e) {
    check('a statement freed by DEALLOCATE ALL cannot run (26000)', $e->getCode() === '26000', $e->getMessage());
}

// Laravel's insertGetId: a prepared INSERT ... RETURNING "id" into a table
// whose id is a bigserial, as a Laravel migration declares it.
$pdo->exec('CREATE TABLE users (id bigserial PRIMARY KEY, name varchar(255) NOT NULL, created_at timestamp(0) without time zone NULL)');
$ids = [];
$pdo->beginTransaction();
foreach (['ann', 'bob', 'cy'] as $name) {
    $s = $pdo->prepare('insert into "users" ("name", "created_at") values (?, ?) returning "id"');
    $s->execute([$name, '2026-12-07 10:00:00']);
    $ids[] = $s->fetchColumn();
}
$pdo->commit();
check('insertGetId returns each new id', $ids === [1, 2, 3], json_encode($ids));
$count = $pdo->query('SELECT count(*) FROM users WHERE created_at IS NOT NULL')->fetchColumn();
check('the rows insertGetId wrote are there', $count === 3, json_encode($count));

// Memory: prepare, run and free, again and again, on one connection.
$cycle = function () use ($pdo): void {
    $s = $pdo->prepare('SELECT owner FROM accounts WHERE id = ?');
    $s->execute([1]);
    $s->fetchAll();
};
for ($i = 0; $i < 200; $i++) {
    $cycle();
}
$before = rss($pid);
for ($i = 0; $i < $cycles; $i++) {
    $cycle();
}
$grown = rss($pid) - $before;
check("$cycles prepare-and-free cycles leave the server's memory flat", $before > 0 && $grown < 16 * 1024, "it grew by $grown kB");

exit($failures === 0 ? 0 : 1);
