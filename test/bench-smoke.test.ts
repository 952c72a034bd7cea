// The benchmarks' smoke mode runs inside the suite so they cannot rot: it must finish, validate
// its own results, and print the checksum of data it read back. No timing is asserted here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, "0");
}

test("core benchmark smoke run validates its data and prints the expected checksums", () => {
  const script = fileURLToPath(new URL("../bench/core.bench.js", import.meta.url));
  const result = spawnSync(process.execPath, [script, "--smoke"], { encoding: "utf8", timeout: 120000 });
  assert.is(result.status, 0, result.stderr);
  // The 1 MiB bio's pattern: byte i of the megabyte is (i * 31 + (i >> 12)) & 0xff.
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
  assert.ok(result.stdout.includes(`checksum ${fnv1a(big)}`), result.stdout);
  // The first 4 KiB bio's buffer: byte i is (i * 13 + (i >> 12)) & 0xff.
  const small = new Uint8Array(4096);
  for (let i = 0; i < small.length; i++) small[i] = (i * 13) & 0xff;
  assert.ok(result.stdout.includes(`checksums ${fnv1a(small)} ${fnv1a(small)}`), result.stdout);
  assert.match(result.stdout, /ratio write path \/ memory\.copy \(median of per-round ratios\):\s+\d+\.\d\d/);
});

test("filesystem benchmark smoke run validates its file and lookups", () => {
  const script = fileURLToPath(new URL("../bench/fs.bench.js", import.meta.url));
  const result = spawnSync(process.execPath, [script, "--smoke"], { encoding: "utf8", timeout: 120000 });
  assert.is(result.status, 0, result.stderr);
  // The smoke file is 8 MiB of the 1 MiB pattern (i * 7 + (i >> 12)) & 0xff, hashed in order.
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7 + (i >> 12)) & 0xff;
  let hash = 0x811c9dc5;
  for (let mib = 0; mib < 8; mib++) for (let i = 0; i < chunk.length; i++) hash = Math.imul(hash ^ chunk[i], 0x01000193);
  assert.ok(result.stdout.includes(`checksum ${(hash >>> 0).toString(16).padStart(8, "0")}`), result.stdout);
  assert.match(result.stdout, /get_block lookups on a file of 10000 extents: \d/);
});

test("direct-IO benchmark smoke run validates its reads and prints IOPS and latency", () => {
  const script = fileURLToPath(new URL("../bench/dio.bench.js", import.meta.url));
  const result = spawnSync(process.execPath, [script, "--smoke"], { encoding: "utf8", timeout: 120000 });
  assert.is(result.status, 0, result.stderr);
  // Numbers are printed with thousands separators (a slow machine's p99 may pass 1,000 us).
  for (const row of ["writes, one at a time, await write\\(\\)", "reads, one at a time, await read\\(\\)", "writes, one at a time, writeSync\\(\\)", "reads, one at a time, readSync\\(\\)"]) {
    assert.match(result.stdout, new RegExp(`4 KiB random O_DIRECT ${row}: +[\\d,]+ IOPS, p50 [\\d,.]+ us, p99 [\\d,.]+ us`));
  }
  assert.match(result.stdout, /1 MiB sequential O_DIRECT writes: [\d,]+ MiB\/s; memory\.copy [\d,]+ MiB\/s; ratio [\d,.]+/);
});

test("floor benchmark smoke run validates its last write through the real read path", () => {
  const script = fileURLToPath(new URL("../bench/floor.bench.js", import.meta.url));
  const result = spawnSync(process.execPath, [script, "--smoke"], { encoding: "utf8", timeout: 120000 });
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, /floor of a 4 KiB random O_DIRECT write \(core calls, one promise each\): [\d.]+ us, [\d,]+ IOPS/);
});

test("AIO benchmark: --destage other than background or inline is refused with exit 2, naming the value", () => {
  const script = fileURLToPath(new URL("../bench/aio.bench.js", import.meta.url));
  const result = spawnSync(process.execPath, [script, "--destage", "sometimes", "--no-fio"], { encoding: "utf8", timeout: 60000 });
  assert.is(result.status, 2, `${result.stdout}${result.stderr}`);
  assert.ok(result.stderr.includes("--destage sometimes"), result.stderr);
});

test("AIO benchmark: --ops that is not a positive integer is refused with exit 2, naming the value", () => {
  const script = fileURLToPath(new URL("../bench/aio.bench.js", import.meta.url));
  for (const bad of ["0", "-5", "1.5", "many"]) {
    const result = spawnSync(process.execPath, [script, "--ops", bad, "--no-fio"], { encoding: "utf8", timeout: 60000 });
    assert.is(result.status, 2, `--ops ${bad}: ${result.stdout}${result.stderr}`);
    assert.ok(result.stderr.includes(`--ops ${bad}`), result.stderr);
  }
});

test("AIO benchmark smoke run validates its writes under every semantics, on both executors", () => {
  const script = fileURLToPath(new URL("../bench/aio.bench.js", import.meta.url));
  for (const executor of ["inline", "worker"]) {
    const result = spawnSync(process.execPath, [script, "--smoke", "--executor", executor], { encoding: "utf8", timeout: 120000 });
    assert.is(result.status, 0, result.stderr);
    const rows = [...result.stdout.matchAll(/^(legacy|seed|merged|iomap)\s+(no|yes)\s+(\d+)\s+[\d,]+\s+[\d,.]+\s+[\d,.]+\s+[\d,.]+\s+(\d+)\s+([0-9a-f]{8})$/gm)];
    assert.is(rows.length, 16, result.stdout);
    // The same seeded writes land under every semantics and depth: one checksum of the file.
    assert.is(new Set(rows.map((r) => r[5])).size, 1, result.stdout);
    // An O_DSYNC row flushes (or, under iomap, writes through with FUA and flushes nothing);
    // a plain row never flushes.
    for (const r of rows) {
      if (r[2] === "no") assert.is(r[4], "0", `${r[0]}`);
      else if (r[1] !== "iomap") assert.ok(Number(r[4]) > 0, `${r[0]}`);
      else assert.is(r[4], "0", `${r[0]}`);
    }
  }
});

test.run();
