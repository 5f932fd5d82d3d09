"""psycopg 3 through a transaction-mode pgmux pool with one session_state policy: what a client's
session state (SET ROLE, set_config, a temporary table, a session advisory lock) does to it and to
the next client of the same server connection.

usage: psycopg_session_state.py CONNINFO POLICY OTHER_ROLE [METRICS_PORT]
POLICY is pin, reset or refuse; the pool has max_size 2 for pin (the pinned client keeps one
connection) and max_size 1 otherwise (every client shares the one connection). With pin, the
pinned client is also looked for in pgmux's metrics (pgmux_pinned_clients) at METRICS_PORT.
Prints one "name: value" line per check and "ok" at the end; the first failed check is
printed as "FAILED name: got X, expected Y" with exit status 1.
"""
import re
import sys
import time
import urllib.request

import psycopg

conninfo, policy, other_role = sys.argv[1:4]
metrics_port = sys.argv[4] if len(sys.argv) > 4 else None


def pinned_clients(reason):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        body = r.read().decode()
    m = re.search(r'^pgmux_pinned_clients\{database="pgmux_test",user="pgmux_test",reason="' + reason + r'"\} (\S+)$',
                  body, re.M)
    return float(m.group(1)) if m else None


def pinned_clients_become(reason, value):
    """The gauge once it shows `value` (a client's exit is seen by pgmux a moment later), or
    what it shows after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        got = pinned_clients(reason)
        if got == value or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def check(name, got, expected):
    if got != expected:
        print(f"FAILED {name}: got {got!r}, expected {expected!r}", flush=True)
        sys.exit(1)
    print(f"{name}: {got}", flush=True)


def connect():
    return psycopg.connect(conninfo, autocommit=True)


def current_user(conn, prepare=None):
    return conn.execute("select current_user", prepare=prepare).fetchone()[0]


def sqlstate(conn, sql, prepare=None):
    try:
        conn.execute(sql, prepare=prepare)
        return "ok"
    except psycopg.Error as e:
        return e.sqlstate


user = None
with connect() as probe:
    user = current_user(probe)

if policy == "pin":
    with connect() as a, connect() as b:
        a.execute(f"set role {other_role}")
        check("pinned client keeps its role", current_user(a), other_role)
        check("pinned client keeps it in a prepared query", current_user(a, prepare=True), other_role)
        check("other client has its own role", current_user(b), user)
        a.execute("create temp table it_pinned_temp (id int)")
        a.execute("insert into it_pinned_temp values (1)")
        check("pinned client keeps its temp table", a.execute("select count(*) from it_pinned_temp").fetchone()[0], 1)
        check("other client sees no temp table", sqlstate(b, "select * from it_pinned_temp"), "42P01")
        check("pinned for its role (metrics)", pinned_clients("role"), 1.0)
        # Counted by what pinned it: later state on a pinned connection changes nothing.
        check("not counted again for its temp table (metrics)", pinned_clients("temp_table"), 0.0)
        check("not pinned for LISTEN (metrics)", pinned_clients("listen"), 0.0)
    # Both server connections in use at once: neither may carry the pinned client's state.
    with connect() as c, connect() as d:
        check("no pinned client left (metrics)", pinned_clients_become("role", 0.0), 0.0)
        c.execute("begin")
        d.execute("begin")
        check("next client on one connection", current_user(c), user)
        check("next client on the other connection", current_user(d), user)
        check("no temp table on one connection", sqlstate(c, "select * from it_pinned_temp"), "42P01")
        c.execute("rollback")
        check("no temp table on the other connection", sqlstate(d, "select * from it_pinned_temp"), "42P01")
elif policy == "reset":
    with connect() as a, connect() as b:
        a.execute("select %s::int", (1,), prepare=True)  # pgmux prepares it on the one connection
        a.execute(f"set role {other_role}")
        check("role ends with its transaction", current_user(a), user)
        check("pgmux's prepared statements survive the reset",
              b.execute("select count(*) > 0 from pg_prepared_statements where name like 'pgmux%'").fetchone()[0], True)
        check("next client's role", current_user(b), user)
        a.execute(f"select set_config('role', '{other_role}', false)")
        check("set_config role ends with its transaction", current_user(b, prepare=True), user)
        a.execute("begin")
        a.execute(f"set role {other_role}")
        check("role inside the transaction", current_user(a), other_role)
        a.execute("commit")
        check("role after commit", current_user(b), user)
        a.execute("select pg_advisory_lock(4242)")
        check("advisory lock released with the transaction",
              b.execute("select pg_try_advisory_lock(4242)").fetchone()[0], True)
        b.execute("select pg_advisory_unlock(4242)")  # ends as the reset would anyway
        a.execute("create temp table it_reset_temp (id int)")
        check("temp table gone after its transaction", sqlstate(a, "select * from it_reset_temp"), "42P01")
elif policy == "refuse":
    with connect() as a, connect() as b:
        check("SET ROLE refused", sqlstate(a, f"set role {other_role}"), "0A000")
        check("SET ROLE refused when prepared", sqlstate(a, f"set role {other_role}", prepare=True), "0A000")
        check("set_config refused", sqlstate(a, f"select set_config('role', '{other_role}', false)"), "0A000")
        check("nothing ran", current_user(a), user)
        check("multi-statement string refused whole",
              sqlstate(a, f"select 1; set role {other_role}; create table it_refused (id int)"), "0A000")
        check("its other statements did not run", sqlstate(a, "select * from it_refused"), "42P01")
        check("temp table refused", sqlstate(a, "create temp table it_refused_temp (id int)"), "0A000")
        with a.transaction():
            a.execute(f"set local role {other_role}")
            check("SET LOCAL ROLE allowed in a transaction", current_user(a), other_role)
        check("after the transaction", current_user(a), user)
        check("the other client", current_user(b), user)
else:
    sys.exit(f"unknown policy {policy}")
print("ok", flush=True)
