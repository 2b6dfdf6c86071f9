<?php
// PHP PDO (pdo_pgsql) against Eddy, run by tests/clients.rs as
//
//     php pdo.php PORT
//
// It prints one line per check, "ok ..." or "FAIL ...", and exits 1 if any
// check failed; its output must equal pdo.out.

declare(strict_types=1);

$port = (int) ($argv[1] ?? 5432);
$failures = 0;

function show($v): string
{
    return str_replace("\n", ' ', var_export($v, true));
}

function check(string $what, bool $ok, $got = null, $want = null): void
{
    global $failures;
    if ($ok) {
        echo "ok $what\n";
        return;
    }
    $failures++;
    echo "FAIL $what: got ", show($got), ', want ', show($want), "\n";
}

// Column $i of $row, or the string 'missing' (unlike ??, this keeps NULL).
function col(array $row, int $i)
{
    return array_key_exists($i, $row) ? $row[$i] : 'missing';
}

function same(string $what, $got, $want): void
{
    check($what, $got === $want, $got, $want);
}

// A float8 value fetched with ATTR_STRINGIFY_FETCHES false: pdo_pgsql turns
// float4/float8 into PHP floats since PHP 8.4; before, it hands over the
// server's text, which must then be PostgreSQL's shortest form ("5", not "5.0").
function float_value(string $what, $got, float $want, string $pg_text): void
{
    if (PHP_VERSION_ID >= 80400) {
        same($what, $got, $want);
    } else {
        same($what, $got, $pg_text);
    }
}

// Runs $f, which must throw a PDOException with SQLSTATE $sqlstate and a
// message containing $message.
function throws(string $what, callable $f, string $sqlstate, string $message): void
{
    try {
        $f();
        check("$what throws", false, 'no exception', "PDOException $sqlstate");
    } catch (PDOException $e) {
        same("$what throws SQLSTATE $sqlstate", $e->getCode(), $sqlstate);
        same("$what: errorInfo[0] is $sqlstate", $e->errorInfo[0] ?? null, $sqlstate);
        check("$what: message says '$message'", str_contains($e->getMessage(), $message), $e->getMessage(), $message);
    }
}

$pdo = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=eddy", 'eddy', '', [
    PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
]);
echo "ok connected\n";
same('driver name', $pdo->getAttribute(PDO::ATTR_DRIVER_NAME), 'pgsql');

same('exec CREATE STREAM returns 0', $pdo->exec(
    'CREATE STREAM orders (k text, qty int4, price float8, amount numeric(12,2))'
), 0);
same('exec CREATE CONTINUOUS VIEW returns 0', $pdo->exec(
    'CREATE CONTINUOUS VIEW totals AS
       SELECT k, count(*) AS n, sum(qty) AS qty, sum(price) AS price_sum,
              avg(price) AS price_avg, sum(amount) AS amount
       FROM orders GROUP BY k'
), 0);

// The same four inserts with client-side (emulated) and server-side prepares.
foreach ([true, false] as $emulate) {
    $mode = $emulate ? 'emulated prepare' : 'server-side prepare';
    $pdo->setAttribute(PDO::ATTR_EMULATE_PREPARES, $emulate);
    same("$mode: ATTR_EMULATE_PREPARES is set", $pdo->getAttribute(PDO::ATTR_EMULATE_PREPARES), $emulate);

    $st = $pdo->prepare('INSERT INTO orders (k, qty, price, amount) VALUES (?, ?, ?, ?)');
    $st->bindValue(1, 'a', PDO::PARAM_STR);
    $st->bindValue(2, 2, PDO::PARAM_INT);
    $st->bindValue(3, '1.5', PDO::PARAM_STR);
    $st->bindValue(4, '2.25', PDO::PARAM_STR);
    same("$mode: bindValue + execute() inserts 1 row", [$st->execute(), $st->rowCount()], [true, 1]);

    same("$mode: execute([...]) inserts 1 row", [$st->execute(['b', 3, '2.5', '1.10']), $st->rowCount()], [true, 1]);

    $st->bindValue(1, 'c', PDO::PARAM_STR);
    $st->bindValue(2, null, PDO::PARAM_NULL);
    $st->bindValue(3, '0.5', PDO::PARAM_STR);
    $st->bindValue(4, null, PDO::PARAM_NULL);
    same("$mode: PARAM_NULL inserts 1 row", [$st->execute(), $st->rowCount()], [true, 1]);

    $st = $pdo->prepare('INSERT INTO orders (k, qty, price, amount) VALUES (:k, :qty, :price, :amount)');
    same(
        "$mode: named parameters insert 1 row",
        [$st->execute([':k' => 'a', ':qty' => 5, ':price' => '0.25', ':amount' => '0.05']), $st->rowCount()],
        [true, 1]
    );
}

// Reading the view: column types, and native PHP values for ints.
$pdo->setAttribute(PDO::ATTR_STRINGIFY_FETCHES, false);
$want_types = [
    ['k', 25, 'text'],
    ['n', 20, 'int8'],
    ['qty', 20, 'int8'],
    ['price_sum', 701, 'float8'],
    ['price_avg', 701, 'float8'],
    ['amount', 1700, 'numeric'],
];
foreach ([true, false] as $emulate) {
    $mode = $emulate ? 'emulated prepare' : 'server-side prepare';
    $pdo->setAttribute(PDO::ATTR_EMULATE_PREPARES, $emulate);
    $st = $pdo->prepare('SELECT k, n, qty, price_sum, price_avg, amount FROM totals WHERE n >= ? ORDER BY k');
    $st->bindValue(1, 1, PDO::PARAM_INT);
    $st->execute();
    same("$mode: SELECT has 6 columns", $st->columnCount(), 6);
    foreach ($want_types as $i => [$name, $oid, $type]) {
        $meta = $st->getColumnMeta($i);
        same("$mode: column $i is named $name", $meta['name'] ?? null, $name);
        same("$mode: $name has pgsql:oid $oid", $meta['pgsql:oid'] ?? null, $oid);
        // pdo_pgsql knows the names of int8 and text itself, and looks the
        // others up with SELECT TYPNAME FROM PG_TYPE WHERE OID=...
        same("$mode: $name has native_type $type", $meta['native_type'] ?? null, $type);
    }
    $rows = $st->fetchAll(PDO::FETCH_NUM);
    same("$mode: the view has 3 groups", count($rows), 3);
    [$a, $b, $c] = $rows + [[], [], []];
    same("$mode: keys are strings", [col($a, 0), col($b, 0), col($c, 0)], ['a', 'b', 'c']);
    same("$mode: count(*) values are PHP ints", [col($a, 1), col($b, 1), col($c, 1)], [4, 2, 2]);
    same("$mode: sum(int4) values are PHP ints, NULL when all NULL", [col($a, 2), col($b, 2), col($c, 2)], [14, 6, null]);
    float_value("$mode: sum(float8) of a is 3.5", col($a, 3), 3.5, '3.5');
    float_value("$mode: sum(float8) of b is 5", col($b, 3), 5.0, '5');
    float_value("$mode: avg(float8) of a is 0.875", col($a, 4), 0.875, '0.875');
    float_value("$mode: avg(float8) of c is 0.5", col($c, 4), 0.5, '0.5');
    same("$mode: sum(numeric) values are exact strings", [col($a, 5), col($b, 5), col($c, 5)], ['4.60', '2.20', null]);
}

// PDO::query and fetchColumn.
same('query + fetchColumn: count of groups', $pdo->query('SELECT count(*) FROM totals')->fetchColumn(), 3);
same(
    'FETCH_KEY_PAIR over the view',
    $pdo->query('SELECT k, n FROM totals ORDER BY k')->fetchAll(PDO::FETCH_KEY_PAIR),
    ['a' => 4, 'b' => 2, 'c' => 2]
);

// Transactions: beginTransaction and commit, the transaction status PDO
// reads, and an error inside a transaction (25P02 until rollBack). Every
// statement applies when it runs (Eddy's transactions are not atomic).
same('beginTransaction', $pdo->beginTransaction(), true);
same('inTransaction after BEGIN', $pdo->inTransaction(), true);
$pdo->prepare('INSERT INTO orders (k, qty, price, amount) VALUES (?, ?, ?, ?)')->execute(['d', 1, 1.5, '2.50']);
same('commit', $pdo->commit(), true);
same('inTransaction after COMMIT', $pdo->inTransaction(), false);
same('the committed row is counted', $pdo->query("SELECT n FROM totals WHERE k = 'd'")->fetchColumn(), 1);
$pdo->beginTransaction();
throws('an error inside a transaction', function () use ($pdo) {
    $pdo->query('SELECT * FROM nope');
}, '42P01', 'relation "nope" does not exist');
throws('the next statement in the failed transaction', function () use ($pdo) {
    $pdo->query('SELECT 1');
}, '25P02', 'current transaction is aborted');
same('rollBack', $pdo->rollBack(), true);
same('the connection works after rollBack', $pdo->query('SELECT 1')->fetchColumn(), 1);

// Errors: a PDOException with the SQLSTATE, and the connection goes on.
foreach ([true, false] as $emulate) {
    $mode = $emulate ? 'emulated prepare' : 'server-side prepare';
    $pdo->setAttribute(PDO::ATTR_EMULATE_PREPARES, $emulate);
    throws("$mode: SELECT from a missing relation", function () use ($pdo) {
        $pdo->query('SELECT * FROM nope');
    }, '42P01', 'relation "nope" does not exist');
    throws("$mode: INSERT into a missing stream", function () use ($pdo) {
        $st = $pdo->prepare('INSERT INTO nope (k) VALUES (?)');
        $st->execute(['x']);
    }, '42P01', 'relation "nope" does not exist');
    throws("$mode: a missing column", function () use ($pdo) {
        $st = $pdo->prepare('SELECT nope FROM totals WHERE k = ?');
        $st->execute(['a']);
    }, '42703', 'nope');
    throws("$mode: a syntax error", function () use ($pdo) {
        $pdo->query('SELEC 1');
    }, '42601', 'syntax error');
    $st = $pdo->prepare('SELECT n FROM totals WHERE k = ?');
    $st->execute(['b']);
    same("$mode: the connection works after the errors", $st->fetchColumn(), 2);
}

if ($failures > 0) {
    echo "pdo.php: $failures check(s) failed\n";
    exit(1);
}
echo "pdo.php: every check passed\n";
