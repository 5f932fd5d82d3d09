"""asyncpg (its statement cache on: every query with arguments is a named prepared statement)
through pgmux: session state under one session_state policy, and the backend pid in session mode.

usage: asyncpg_session_state.py HOST PORT CHECK OTHER_ROLE
CHECK is one of:
  pin          (transaction mode, max_size 2) set_config('role', ..., false) through a prepared
               statement keeps its role for the client alone
  refuse       (transaction mode) the same statement, prepared, fails with 0A000 and runs nothing
  backend-pid  (session mode) get_server_pid() is the pid of the client's own server backend
Prints one "name: value" line per check and "ok" at the end; the first failed check is
printed as "FAILED name: got X, expected Y" with exit status 1.
"""
import asyncio
import sys

import asyncpg

host, port, check_name, other_role = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def check(name, got, expected):
    if got != expected:
        print(f"FAILED {name}: got {got!r}, expected {expected!r}", flush=True)
        sys.exit(1)
    print(f"{name}: {got}", flush=True)


async def connect():
    return await asyncpg.connect(host=host, port=port, user="pgmux_test", database="pgmux_test")


async def main():
    a, b = await connect(), await connect()
    try:
        if check_name == "pin":
            await a.fetchval("select set_config('role', $1, false)", other_role)
            check("the client keeps its role", await a.fetchval("select current_user"), other_role)
            check("another client has its own", await b.fetchval("select current_user"), "pgmux_test")
        elif check_name == "refuse":
            try:
                await a.fetchval("select set_config('role', $1, false)", other_role)
                check("prepared set_config refused", "ran", "0A000")
            except asyncpg.PostgresError as e:
                check("prepared set_config refused", e.sqlstate, "0A000")
            check("nothing ran", await a.fetchval("select current_user"), "pgmux_test")
            check("the other client", await b.fetchval("select current_user"), "pgmux_test")
        elif check_name == "backend-pid":
            check("get_server_pid is the backend's", a.get_server_pid(), await a.fetchval("select pg_backend_pid()"))
            check("for the other client too", b.get_server_pid(), await b.fetchval("select pg_backend_pid()"))
        else:
            sys.exit(f"unknown check {check_name}")
    finally:
        await a.close()
        await b.close()
    print("ok", flush=True)


asyncio.run(main())
