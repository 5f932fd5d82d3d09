"""asyncpg with its statement cache through pgmux (a pool of exactly 2 server connections): a
cached statement whose table changes its columns. asyncpg tells PostgreSQL's 0A000 "cached plan
must not change result type" by its routine (RevalidateCachedQuery), prepares the statement
again and returns the new rows. Through pgmux it must do the same whichever server connection
the query lands on: one that held the statement, one that never did.

usage: asyncpg_result_type.py HOST PORT DIRECT_DSN
DIRECT_DSN reaches the server without pgmux (for the ALTER TABLE and the comparison).
Prints the outcomes and "ok" at the end; a mismatch is printed as "FAILED ..." with exit status 1.
"""
import asyncio
import sys

import asyncpg

host, port = sys.argv[1], int(sys.argv[2])
# libpq's key=value form (no value holds a space here) as asyncpg's arguments.
direct_args = dict(item.split("=", 1) for item in sys.argv[3].split())
direct_args["database"] = direct_args.pop("dbname")
direct_args.pop("connect_timeout", None)
direct_args["port"] = int(direct_args["port"])
table = "it_result_type_asyncpg"
query = f"select * from {table} where a = $1"


def check(name, got, expected):
    if got != expected:
        print(f"FAILED {name}: got {got!r}, expected {expected!r}", flush=True)
        sys.exit(1)
    print(f"{name}: {got}", flush=True)


async def outcome(conn):
    """The rows of the cached query, or the error it raised."""
    try:
        return [tuple(r) for r in await conn.fetch(query, 1)]
    except asyncpg.PostgresError as e:
        return f"{type(e).__name__} {e.sqlstate}"


class Placement:
    """Runs a client's next query on a chosen server connection of a pool of two: two holders
    take both connections in transactions, and the one on the chosen connection lets it go."""

    def __init__(self, holders):
        self.holders = holders

    async def hold(self):
        held = []
        for h in self.holders:
            tr = h.transaction()
            await tr.start()
            held.append((tr, await h.fetchval("select pg_backend_pid()")))
        return held

    async def pids(self):
        held = await self.hold()
        for tr, _ in held:
            await tr.rollback()
        return [pid for _, pid in held]

    async def on(self, pid, action):
        held = await self.hold()
        if pid not in [p for _, p in held]:
            check("holders hold both server connections", sorted(p for _, p in held), f"one of them is {pid}")
        for tr, p in held:
            if p == pid:
                await tr.rollback()
        result = await action()
        for tr, p in held:
            if p != pid:
                await tr.rollback()
        return result


async def scenario(conn, placement):
    d = await asyncpg.connect(**direct_args)
    await d.execute(f"drop table if exists {table}; create table {table} (a int); insert into {table} values (1)")
    first, second = await placement.pids() if placement else (None, None)

    async def run(pid, action):
        return await (placement.on(pid, action) if placement else action())

    got = [await run(first, lambda: outcome(conn))]  # prepared, described and run on `first`
    await d.execute(f"alter table {table} add column b int default 7")
    got.append(await run(second, lambda: outcome(conn)))  # never held it: prepared there afresh
    got.append(await run(first, lambda: outcome(conn)))
    got.append(await run(second, lambda: outcome(conn)))
    await d.close()
    return got


async def main():
    direct_conn = await asyncpg.connect(**direct_args)
    expected = await scenario(direct_conn, None)
    await direct_conn.close()
    print(f"direct: {expected!r}", flush=True)
    check("direct connection: the cached statement is prepared again, new rows", expected,
          [[(1,)], [(1, 7)], [(1, 7)], [(1, 7)]])
    via = lambda: asyncpg.connect(host=host, port=port, user="pgmux_test", database="pgmux_test")
    conn = await via()
    holders = [await via(), await via()]
    check("through pgmux, on both server connections", await scenario(conn, Placement(holders)), expected)
    for c in [conn, *holders]:
        await c.close()
    print("ok", flush=True)


asyncio.run(main())
