// Runs one SQL query in an in-memory DuckDB and prints its rows as a JSON
// array of objects (integers as strings, so that none loses digits).
// Usage: node duckdb-query.js SQL
"use strict";
const { DuckDBInstance } = require("@duckdb/node-api");

async function main() {
  const sql = process.argv[2];
  if (!sql) {
    console.error("usage: node duckdb-query.js SQL");
    process.exit(2);
  }
  const instance = await DuckDBInstance.create(":memory:");
  const conn = await instance.connect();
  const reader = await conn.runAndReadAll(sql);
  const rows = reader.getRowObjectsJson();
  process.stdout.write(JSON.stringify(rows) + "\n");
}

main().catch((err) => {
  console.error(err && err.message ? err.message : err);
  process.exit(1);
});
