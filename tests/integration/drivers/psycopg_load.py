"""psycopg 3 through pgmux with prepare_threshold=0: every query is prepared on first use and
executed by name afterwards, from several connections that share few server connections.

usage: psycopg_load.py CONNINFO CLIENTS QUERIES [PREPARED_MAX]
With PREPARED_MAX (psycopg's cache size, default 100) below the 4 statements used, psycopg
evicts statements with DEALLOCATE as it goes.
Prints "ok <queries run>" and exits 0 when every result was right, else the first error, exit 1.
"""
import sys
import threading

import psycopg

errors = []
counts = []
lock = threading.Lock()


def client(n, conninfo, queries, prepared_max):
    done = 0
    try:
        with psycopg.connect(conninfo, prepare_threshold=0, autocommit=True) as conn:
            conn.prepared_max = prepared_max
            for i in range(queries):
                a = n * 1000 + i
                got = conn.execute("select %s::int * 2", (a,)).fetchone()[0]
                if got != a * 2:
                    raise AssertionError(f"client {n} query {i}: got {got}, expected {a * 2}")
                label = conn.execute("select %s::text || ':' || %s::text", (f"c{n}", i)).fetchone()[0]
                if label != f"c{n}:{i}":
                    raise AssertionError(f"client {n} query {i}: got {label!r}")
                done += 2
                if i % 20 == 0:
                    with conn.transaction():
                        conn.execute("select %s::int", (i,))
                        one = conn.execute("select %s::int + 1", (i,)).fetchone()[0]
                    if one != i + 1:
                        raise AssertionError(f"client {n} transaction {i}: got {one}")
                    done += 2
    except Exception as e:  # reported by the main thread
        with lock:
            errors.append(f"{type(e).__name__}: {e}")
    with lock:
        counts.append(done)


def main():
    conninfo, clients, queries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    prepared_max = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    threads = [threading.Thread(target=client, args=(n, conninfo, queries, prepared_max)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        print(f"{len(errors)} clients failed; first: {errors[0]}")
        return 1
    print(f"ok {sum(counts)}")
    return 0


sys.exit(main())
