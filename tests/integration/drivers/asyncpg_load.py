"""asyncpg through pgmux with its default statement cache: every query is a named prepared
statement, reused across transactions that land on different server connections.

usage: asyncpg_load.py HOST PORT USER DATABASE TASKS QUERIES
Prints "ok <queries run>" and exits 0 when every result was right, else prints the first
error and exits 1.
"""
import asyncio
import sys

import asyncpg

STATEMENTS = [
    ("select $1::int + $2::int", lambda a, b: a + b),
    ("select $1::int * $2::int", lambda a, b: a * b),
    ("select $1::int - $2::int", lambda a, b: a - b),
    ("select length(repeat('x', $1::int)) + $2::int", lambda a, b: a + b),
]


async def task(n, host, port, user, database, queries):
    conn = await asyncpg.connect(host=host, port=port, user=user, database=database)
    done = 0
    try:
        for i in range(queries):
            sql, expect = STATEMENTS[(n + i) % len(STATEMENTS)]
            a, b = n + 1, i % 17
            if i % 25 == 0:
                # A transaction with two statements: both must run on its one connection.
                async with conn.transaction():
                    got = await conn.fetchval(sql, a, b)
                    again = await conn.fetchval(sql, a, b)
                if got != expect(a, b) or again != got:
                    raise AssertionError(f"task {n} query {i}: {sql} gave {got}/{again}, expected {expect(a, b)}")
            else:
                got = await conn.fetchval(sql, a, b)
                if got != expect(a, b):
                    raise AssertionError(f"task {n} query {i}: {sql} gave {got}, expected {expect(a, b)}")
            done += 1
        # A row set with a parameter, through a prepared statement object.
        stmt = await conn.prepare("select g from generate_series(1, $1::int) g")
        rows = await stmt.fetch(5)
        if [r["g"] for r in rows] != [1, 2, 3, 4, 5]:
            raise AssertionError(f"task {n}: prepared fetch gave {rows}")
        done += 1
    finally:
        await conn.close()
    return done


async def main():
    host, port, user, database = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tasks, queries = int(sys.argv[5]), int(sys.argv[6])
    results = await asyncio.gather(*(task(n, host, port, user, database, queries) for n in range(tasks)),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"{len(errors)} of {tasks} tasks failed; first: {type(errors[0]).__name__}: {errors[0]}")
        return 1
    print(f"ok {sum(results)}")
    return 0


sys.exit(asyncio.run(asyncio.wait_for(main(), 120)))
