// postgres.js (3.4) through pgmux, compared with a direct connection where it matters.
//
// usage: node postgresjs_check.cjs CHECK HOST PORT DIRECT_CONNINFO
// CHECK is one of:
//   subscribe    (a pool allowing replication; table it_pgjs in publication it_pgjs_pub)
//                sql.subscribe() on a logical replication connection through pgmux receives the
//                rows another client inserts through pgmux
//   result-type  (a pool of exactly 2 server connections) a statement postgres.js prepared and
//                cached, whose table then changes its columns, returns the new rows on either
//                server connection: postgres.js prepares it again on PostgreSQL's own 0A000, as
//                on a direct connection
// Prints one "name: value" line per check and "ok" at the end; the first failed check is
// printed as "FAILED name: got X, expected Y" with exit status 1.
'use strict'
const postgres = require('postgres')

const [check, host, port, directConninfo] = process.argv.slice(2)
// libpq's key=value form (no value holds a space here).
const directArgs = Object.fromEntries(directConninfo.split(/\s+/).map(kv => kv.split(/=(.*)/s).slice(0, 2)))
const direct = () => postgres({ host: directArgs.host, port: Number(directArgs.port), user: directArgs.user,
                                password: directArgs.password, database: directArgs.dbname, onnotice: () => {} })
const viaPgmux = (options = {}) => postgres({ host, port: Number(port), user: 'pgmux_test', database: 'pgmux_test',
                                              onnotice: () => {}, ...options })

function expect(name, got, expected) {
  const g = JSON.stringify(got), e = JSON.stringify(expected)
  if (g !== e) {
    console.log(`FAILED ${name}: got ${g}, expected ${e}`)
    process.exit(1)
  }
  console.log(`${name}: ${g}`)
}

function within(ms, promise, what) {
  let timer
  return Promise.race([promise, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms) })])
    .finally(() => clearTimeout(timer))
}

async function subscribe() {
  const sql = viaPgmux({ max: 1, publications: 'it_pgjs_pub' })
  const rows = []
  let arrived
  const both = new Promise(resolve => { arrived = resolve })
  const { unsubscribe } = await within(20000, sql.subscribe('insert:it_pgjs', row => {
    rows.push(row.a)
    if (rows.length === 2) arrived()
  }, async () => { await sql`insert into it_pgjs values (1), (2)` }), 'subscribe')
  await within(20000, both, 'the inserted rows')
  expect('rows the subscription received', rows.sort(), [1, 2])
  await unsubscribe()
  await sql.end()
}

// Runs `action` on a chosen server connection of a pool of two: two holders take both in
// transactions, and the one on the chosen connection lets it go.
async function on(holders, pid, action) {
  const held = []
  for (const h of holders) {
    const r = await h.reserve()
    await r`begin`
    held.push({ r, pid: (await r`select pg_backend_pid() as pid`)[0].pid })
  }
  if (pid !== undefined && !held.some(h => h.pid === pid)) expect('holders hold both server connections', held.map(h => h.pid), pid)
  const release = async h => { await h.r`rollback`; h.r.release() }
  for (const h of held) if (h.pid === pid) await release(h)
  const result = pid === undefined ? held.map(h => h.pid) : await action()
  for (const h of held) if (h.pid !== pid) await release(h)
  return result
}

async function resultType() {
  const d = direct()
  await d`drop table if exists it_pgjs_rt`
  await d`create table it_pgjs_rt (a int)`
  await d`insert into it_pgjs_rt values (1)`
  async function scenario(sql, holders) {
    const run = (pid, action) => holders ? on(holders, pid, action) : action()
    const [first, second] = holders ? await on(holders, undefined) : []
    const outcome = async () => {
      try { return (await sql`select * from it_pgjs_rt where a = ${1}`).map(r => Object.values(r)) }
      catch (e) { return `${e.code} ${e.message}` }
    }
    const got = [await run(first, outcome)]
    await d`alter table it_pgjs_rt add column b int default 7`
    got.push(await run(second, outcome))  // never held it: prepared there afresh
    got.push(await run(first, outcome))
    got.push(await run(second, outcome))
    await d`alter table it_pgjs_rt drop column b`
    return got
  }
  const directSql = direct()
  const expected = await scenario(directSql, null)
  await directSql.end()
  console.log(`direct: ${JSON.stringify(expected)}`)
  expect('direct connection: prepared again, new rows', expected, [[[1]], [[1, 7]], [[1, 7]], [[1, 7]]])
  const sql = viaPgmux({ max: 1 })
  const holders = [viaPgmux({ max: 1 }), viaPgmux({ max: 1 })]
  expect('through pgmux, on both server connections', await scenario(sql, holders), expected)
  for (const s of [sql, ...holders, d]) await s.end()
}

const checks = { subscribe, 'result-type': resultType }
if (!checks[check]) { console.log(`unknown check ${check}`); process.exit(2) }
checks[check]().then(() => { console.log('ok'); process.exit(0) },
                     e => { console.log(`FAILED ${check}: ${e.stack || e}`); process.exit(1) })
