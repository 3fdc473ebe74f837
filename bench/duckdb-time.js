// Times one DuckDB query: a first run to warm the caches, then RUNS more;
// prints the median wall-clock seconds and the first run's row count.
// Usage: NODE_PATH=tests/s3/node_modules node bench/duckdb-time.js RUNS SQL
"use strict";
const { DuckDBInstance } = require("@duckdb/node-api");

async function main() {
  const runs = parseInt(process.argv[2], 10);
  const sql = process.argv[3];
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  const first = await conn.runAndReadAll(sql);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await conn.runAndReadAll(sql);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  process.stdout.write(`${median.toFixed(4)} ${first.getRowObjectsJson().length}\n`);
}

main().catch((err) => {
  console.error(err && err.message ? err.message : err);
  process.exit(1);
});
