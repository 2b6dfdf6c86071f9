<?php
// Laravel's database layer (Debian's php-laravel-framework, Illuminate 8)
// against Eddy, run by tests/clients.rs as
//
//     php laravel.php PORT
//
// What a Laravel app does through the query builder and the schema
// builder, on Laravel's defaults (native prepares): a migration's
// Schema::create with a bigserial id and timestamps, insertGetId,
// DB::transaction with several statements and with a rollback (nothing of
// it stays), a nested transaction (a savepoint, whose writes are undone), pagination, whereIn, and reads of a
// continuous view over the table. It prints one line per check; its output
// must equal laravel.out.

declare(strict_types=1);

require '/usr/share/php/Illuminate/Database/autoload.php';

use Illuminate\Database\Capsule\Manager as Capsule;
use Illuminate\Database\Schema\Blueprint;

$failures = 0;
function check(string $what, bool $ok, $detail = ''): void
{
    global $failures;
    echo $ok ? "ok $what\n" : "FAIL $what: " . json_encode($detail) . "\n";
    $failures += $ok ? 0 : 1;
}

$capsule = new Capsule();
$capsule->addConnection([
    'driver' => 'pgsql',
    'host' => '127.0.0.1',
    'port' => (int) $argv[1],
    'database' => 'eddy',
    'username' => 'eddy',
    'password' => '',
    'charset' => 'utf8',
    'prefix' => '',
    'schema' => 'public',
    'sslmode' => 'disable',
]);
$capsule->setAsGlobal();
$db = $capsule->getConnection();

try {
    // A migration.
    Capsule::schema()->create('orders', function (Blueprint $table) {
        $table->id();
        $table->string('customer', 64);
        $table->integer('amount');
        $table->timestamps();
    });
    check('Schema::create makes the table', Capsule::schema()->hasTable('orders'));
    $db->statement('CREATE VIEW totals AS SELECT customer, count(*) AS orders, sum(amount) AS spent FROM orders GROUP BY customer');

    // insertGetId: INSERT ... RETURNING "id".
    $now = '2026-12-07 10:00:00';
    $first = $db->table('orders')->insertGetId(['customer' => 'ann', 'amount' => 10, 'created_at' => $now, 'updated_at' => $now]);
    $second = $db->table('orders')->insertGetId(['customer' => 'bob', 'amount' => 20, 'created_at' => $now, 'updated_at' => $now]);
    check('insertGetId returns the new ids', [$first, $second] === [1, 2], [$first, $second]);

    // DB::transaction with several statements commits them all.
    $db->transaction(function ($db) use ($now) {
        $db->table('orders')->insert(['customer' => 'ann', 'amount' => 5, 'created_at' => $now, 'updated_at' => $now]);
        $db->table('orders')->where('customer', 'bob')->update(['amount' => 25]);
        $db->table('orders')->insert([
            ['customer' => 'cy', 'amount' => 1, 'created_at' => $now, 'updated_at' => $now],
            ['customer' => 'cy', 'amount' => 2, 'created_at' => $now, 'updated_at' => $now],
        ]);
    });
    check('a transaction of several statements commits', $db->table('orders')->count() === 5, $db->table('orders')->count());

    // A nested transaction is a savepoint: its failure is caught and the
    // outer transaction goes on.
    $db->beginTransaction();
    $db->table('orders')->insert(['customer' => 'dee', 'amount' => 7, 'created_at' => $now, 'updated_at' => $now]);
    try {
        $db->transaction(function ($db) use ($now) {
            $db->table('orders')->insert(['customer' => 'gone', 'amount' => 1, 'created_at' => $now, 'updated_at' => $now]);
            $db->table('no_such_table')->insert(['x' => 1]);
        });
        check('the failing nested transaction fails', false, 'it did not');
    } catch (\Illuminate\Database\QueryException $e) {
        check('the failing nested transaction fails with 42P01', $e->getCode() === '42P01', $e->getCode());
    }
    $db->commit();
    check('the outer transaction commits after the savepoint', $db->table('orders')->where('customer', 'dee')->count() === 1);
    check('the nested transaction\'s insert was rolled back', $db->table('orders')->where('customer', 'gone')->count() === 0);

    // DB::transaction whose closure throws rolls all of it back.
    try {
        $db->transaction(function ($db) use ($now) {
            $db->table('orders')->insert(['customer' => 'eve', 'amount' => 99, 'created_at' => $now, 'updated_at' => $now]);
            $db->table('orders')->where('customer', 'ann')->update(['amount' => 0]);
            throw new \RuntimeException('changed my mind');
        });
    } catch (\RuntimeException $e) {
        check('the closure\'s exception comes back', $e->getMessage() === 'changed my mind');
    }
    $ann = (int) $db->table('orders')->where('customer', 'ann')->sum('amount');
    check('a rolled-back transaction left nothing', $db->table('orders')->where('customer', 'eve')->count() === 0 && $ann === 15, $ann);

    // Reads.
    $page = $db->table('orders')->orderBy('id')->offset(1)->limit(2)->pluck('customer')->all();
    check('pagination (LIMIT and OFFSET parameters)', $page === ['bob', 'ann'], $page);
    $some = $db->table('orders')->whereIn('id', [1, 4])->orderBy('id')->pluck('customer')->all();
    check('whereIn', $some === ['ann', 'cy'], $some);
    $totals = $db->table('totals')->orderBy('customer')->get()->map(fn ($r) => "$r->customer:$r->orders:$r->spent")->all();
    check('the continuous view over the table', $totals === ['ann:2:15', 'bob:1:25', 'cy:2:3', 'dee:1:7'], $totals);
    $paginated = $db->table('orders')->orderBy('id')->paginate(2, ['*'], 'page', 2);
    check('paginate() counts and pages', $paginated->total() === 6 && count($paginated->items()) === 2, [$paginated->total(), count($paginated->items())]);
    check('timestamps read back', $db->table('orders')->where('id', 1)->value('created_at') === $now);
} catch (\Throwable $e) {
    check('Laravel works', false, get_class($e) . ': ' . $e->getMessage());
}

exit($failures === 0 ? 0 : 1);
