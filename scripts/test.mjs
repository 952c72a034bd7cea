#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) in its own process, two at a time,
// and ends with the line CI reads: "N passed, M failed". A file that crashes counts as a failure.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const testDir = join(root, "dist", "test");
const filter = process.argv[2];

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return findTests(path);
    return name.endsWith(".test.js") ? [path] : [];
  });
}

const files = findTests(testDir).filter((file) => !filter || file.includes(filter)).sort();
const strip = (text) => text.replace(/\x1b\[[0-9;]*m/g, "");

/** A test file still running after this long is killed and counts as failed (a process that
 *  does not exit is a bug the suite must report, not wait for). */
const FILE_TIMEOUT_MS = 300_000;

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [file], { env: { ...process.env, FORCE_COLOR: "0" } });
    let output = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, FILE_TIMEOUT_MS);
    child.stdout.on("data", (chunk) => { output += chunk; });
    child.stderr.on("data", (chunk) => { output += chunk; });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (timedOut) output += `\n(killed: still running after ${FILE_TIMEOUT_MS / 1000} s; did the process fail to exit?)\n`;
      const text = strip(output);
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      let result;
      if (Number.isNaN(total) || Number.isNaN(passed)) result = { passed: 0, failed: 1 };
      else result = { passed, failed: total - passed };
      if ((code !== 0 || timedOut) && result.failed === 0) result.failed = 1;
      resolve({ file, code, text, ms: Date.now() - started, ...result });
    });
  });
}

const results = [];
const queue = [...files];
const workers = Array.from({ length: 2 }, async () => {
  while (queue.length > 0) {
    const result = await runFile(queue.shift());
    results.push(result);
    const name = relative(testDir, result.file);
    const mark = result.failed === 0 ? "ok  " : "FAIL";
    console.log(`${mark} ${name}  ${result.passed} passed, ${result.failed} failed  (${(result.ms / 1000).toFixed(1)} s)`);
    if (result.failed !== 0) console.log(result.text.split("\n").map((line) => `     | ${line}`).join("\n"));
  }
});
await Promise.all(workers);

const passed = results.reduce((sum, r) => sum + r.passed, 0);
const failed = results.reduce((sum, r) => sum + r.failed, 0);
if (files.length === 0) {
  console.log("no test files found under dist/test");
  console.log("0 passed, 1 failed");
  process.exit(1);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
