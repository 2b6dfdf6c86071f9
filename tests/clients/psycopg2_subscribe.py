"""Streams COPY (SUBSCRIBE totals) TO STDOUT with psycopg2's copy_expert,
printing each line as it arrives, until the test kills it.

Usage: python3 psycopg2_subscribe.py PORT
"""

import sys

import psycopg2


class Printer:
    """A file-like target that writes through at once."""

    def write(self, data):
        sys.stdout.write(data if isinstance(data, str) else data.decode("utf-8"))
        sys.stdout.flush()


conn = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="eddy", dbname="eddy")
conn.autocommit = True
conn.cursor().copy_expert("COPY (SUBSCRIBE totals) TO STDOUT", Printer())
