"""psycopg 3 through pgmux: what a client sees of the server, compared with a direct connection.

usage: psycopg_transparency.py CHECK PGMUX_CONNINFO DIRECT_CONNINFO ADMIN_CONNINFO
CHECK is one of:
  parameters   login ParameterStatus in the server's spelling (client_encoding=utf8, DateStyle=iso,
               TimeZone=utc) and application_name '' when the client sets none: as direct
  backend-pid  (a session-mode pool) the backend pid the client was given is its server's own
  terminated   a backend the server terminates mid-transaction: the client's next statement raises
               what it raises on a direct connection (the server's message, no error of pgmux's)
  reset        RESET name, RESET ALL and SET name TO DEFAULT go back to the values the client's
               startup packet set (options='-c DateStyle=... -c work_mem=...'), alone and inside
               multi-statement queries: what SHOW and ParameterStatus say, as direct
  result-type  (a pool of exactly 2 server connections) a prepared statement whose table changes
               its columns fails with 0A000 at every later execution, whichever server
               connection runs it (one that held it, one that never did), runs again once the
               columns are back as they were, while a client that prepares it afresh gets the
               new rows: as on a direct connection
Prints one "name: value" line per check and "ok" at the end; the first failed check is
printed as "FAILED name: got X, expected Y" with exit status 1.
"""
import sys
import time

import psycopg

check_name, via_pgmux, direct, admin = sys.argv[1:5]


def check(name, got, expected):
    if got != expected:
        print(f"FAILED {name}: got {got!r}, expected {expected!r}", flush=True)
        sys.exit(1)
    print(f"{name}: {got}", flush=True)


if check_name == "parameters":
    options = dict(client_encoding="utf8", options="-c DateStyle=iso -c TimeZone=utc")
    with psycopg.connect(direct, **options) as d, psycopg.connect(via_pgmux, **options) as p:
        for name in ("client_encoding", "DateStyle", "TimeZone"):
            check(f"{name} as the server spells it", p.info.parameter_status(name), d.info.parameter_status(name))
    with psycopg.connect(direct) as d, psycopg.connect(via_pgmux) as p:
        check("application_name reported when none is set", p.info.parameter_status("application_name"),
              d.info.parameter_status("application_name"))
        check("application_name shown when none is set", p.execute("show application_name").fetchone()[0], "")
elif check_name == "backend-pid":
    with psycopg.connect(via_pgmux, autocommit=True) as p:
        pid = p.execute("select pg_backend_pid()").fetchone()[0]
        check("backend pid the client was given", p.info.backend_pid, pid)
        with psycopg.connect(admin, autocommit=True) as a:
            user = a.execute("select usename from pg_stat_activity where pid = %s", (pid,)).fetchone()
            check("that backend is the client's server connection", user, ("pgmux_test",))
elif check_name == "terminated":
    def terminated_error(conninfo):
        """What the client's next statement raises after its backend was terminated mid-transaction."""
        with psycopg.connect(conninfo) as p, psycopg.connect(admin, autocommit=True) as a:
            pid = p.execute("select pg_backend_pid()").fetchone()[0]  # psycopg opened a transaction
            a.execute("select pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 10
            while a.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone()[0] != 0:
                if time.monotonic() > deadline:
                    check("backend gone after pg_terminate_backend", "still there", "gone")
                time.sleep(0.02)
            try:
                p.execute("select 1")
                return ("no error",)
            except psycopg.Error as e:
                return (type(e).__name__, e.sqlstate, str(e))

    expected = terminated_error(direct)
    print(f"direct: {expected!r}", flush=True)
    check("error after termination, as on a direct connection", terminated_error(via_pgmux), expected)
elif check_name == "reset":
    options = dict(options="-c DateStyle=Postgres,MDY -c work_mem=5MB", application_name="it-reset", autocommit=True)

    def after_resets(conninfo):
        """What SHOW and ParameterStatus say after each way of resetting, from a changed value."""
        seen = []
        with psycopg.connect(conninfo, **options) as c:
            def show(label, query="show datestyle"):
                seen.append((label, c.execute(query).fetchone()[0], c.info.parameter_status("DateStyle")))

            show("at login")
            for reset in ("reset datestyle", "reset all", "set datestyle to default", "set datestyle = default",
                          "/* comment */ RESET DateStyle -- trailing comment"):
                c.execute("set datestyle = 'SQL, DMY'")
                c.execute(reset)
                show(reset)
            c.execute("set datestyle = 'SQL, DMY'")
            cur = c.execute("reset datestyle; select current_setting('datestyle'), 2")
            cur.nextset()  # the second statement's rows: the statement pgmux adds stays unseen
            seen.append(("in one query", cur.fetchone()))
            c.execute("set work_mem = '7MB'")
            c.execute("reset work_mem")
            show("reset work_mem", "show work_mem")
            c.execute("set work_mem = '7MB'; set application_name = 'other'")
            c.execute("reset all")
            show("reset all: work_mem", "show work_mem")
            show("reset all: application_name", "show application_name")
            # Inside a transaction that rolls back, as on PostgreSQL.
            c.execute("set datestyle = 'SQL, DMY'")
            with c.transaction(force_rollback=True):
                c.execute("reset datestyle")
            show("after a rolled back reset")
            # A reset that fails changes nothing.
            try:
                c.execute("reset datestyle; select 1/0")
            except psycopg.errors.DivisionByZero:
                pass
            show("after a failed query with a reset")
        return seen

    expected = after_resets(direct)
    print(f"direct: {expected!r}", flush=True)
    check("startup values back after each reset, as on a direct connection", after_resets(via_pgmux), expected)
elif check_name == "result-type":
    table = "it_result_type"
    query = f"select * from {table}"

    def outcome(conn):
        """The rows of the prepared query, or the SQLSTATE it fails with."""
        try:
            return conn.execute(query, prepare=True).fetchall()
        except psycopg.Error as e:
            return e.sqlstate

    class Placement:
        """Runs a client's next transaction on a chosen server connection of a pool of two: two
        holders take both connections, and the one on the chosen connection lets it go."""

        def __init__(self, conninfo):
            self.holders = [psycopg.connect(conninfo) for _ in range(2)]

        def pids(self):
            pids = [h.execute("select pg_backend_pid()").fetchone()[0] for h in self.holders]
            for h in self.holders:
                h.commit()
            return pids

        def on(self, pid, action):
            held = {h: h.execute("select pg_backend_pid()").fetchone()[0] for h in self.holders}
            if pid not in held.values():
                check("holders hold both server connections", sorted(held.values()), "one of them is " + str(pid))
            for h, p in held.items():
                if p == pid:
                    h.commit()
            result = action()
            for h in self.holders:
                h.commit()
            return result

    def scenario(conninfo, placement):
        """Outcomes of one client's prepared query across an ALTER TABLE, and of a new client's."""
        with psycopg.connect(direct, autocommit=True) as d:
            d.execute(f"drop table if exists {table}")
            d.execute(f"create table {table} (a int)")
            d.execute(f"insert into {table} values (1)")
        first, second = placement.pids() if placement else (None, None)
        run = (lambda pid, action: placement.on(pid, action)) if placement else (lambda pid, action: action())
        got = []
        with psycopg.connect(conninfo, autocommit=True) as old:
            got.append(run(first, lambda: outcome(old)))  # prepared, described and run on `first`
            with psycopg.connect(direct, autocommit=True) as d:
                d.execute(f"alter table {table} add column b int default 7")
            got.append(run(second, lambda: outcome(old)))  # never held it: prepared there afresh
            got.append(run(first, lambda: outcome(old)))  # holds it with the old type
            got.append(run(first, lambda: outcome(old)))
            got.append(run(second, lambda: outcome(old)))
            with psycopg.connect(direct, autocommit=True) as d:
                d.execute(f"alter table {table} drop column b")
            got.append(run(second, lambda: outcome(old)))  # the type is back: it runs again
            got.append(run(first, lambda: outcome(old)))
            with psycopg.connect(direct, autocommit=True) as d:
                d.execute(f"alter table {table} add column b int default 7")
        with psycopg.connect(conninfo, autocommit=True) as new:
            got.append(run(first, lambda: outcome(new)))
            got.append(run(second, lambda: outcome(new)))
        return got

    expected = scenario(direct, None)
    print(f"direct: {expected!r}", flush=True)
    check("direct connection: rows, 0A000 after the change, new rows for a new client", expected,
          [[(1,)], "0A000", "0A000", "0A000", "0A000", [(1,)], [(1,)], [(1, 7)], [(1, 7)]])
    placement = Placement(via_pgmux)
    check("through pgmux, on both server connections", scenario(via_pgmux, placement), expected)
else:
    sys.exit(f"unknown check {check_name}")
print("ok", flush=True)
