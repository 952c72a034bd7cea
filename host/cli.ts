#!/usr/bin/env node
// The dioemu command line: `dioemu` alone runs the showcase (crash tests of every built-in
// workload under every semantics, one O_DSYNC AIO write traced, a benchmark line); `crashtest`
// runs crash tests; `demo` is the block layer's demonstration (a split 1 MiB write, a power cut).
import { Disk } from "./disk.js";
import { formatBlkparse } from "./trace.js";
import { DioError } from "./errors.js";
import { SEMANTICS, type Semantics } from "./fs/filesystem.js";
import { WORKLOADS, workloadNamed, type Workload } from "./crash/workloads.js";
import { formatTable, progress, replayCommand, runCrashTests, showcase } from "./showcase.js";
import { BENCH_HELP, BenchUsageError, benchCommand } from "./bench/command.js";

const HELP = `dioemu: an emulator of the Linux direct-IO path, down to a disk with a volatile write cache

usage:
  dioemu              the showcase (the same as \`npm start\`): crash tests of every built-in
                      workload under every semantics, one O_DSYNC AIO write traced, a benchmark
  dioemu crashtest [--workload W] [--semantics S|all] [--runs N] [--seed S]
                   [--points random|every-flush] [--cut K] [--torn] [--json]
                      power cuts over a workload, checked by the durability oracle
  dioemu bench [JOBFILE...] [--output-format normal|json] [--runtime S] [--seed N] [--wasm-suite]
                      fio job files on in-memory disks, printed like fio; or the WebAssembly suite
  dioemu demo         the block layer: a 1 MiB write split to the queue limits, then a power cut
  dioemu --help       this text

crashtest options:
  --workload W     one of ${WORKLOADS.map((w) => w.name).join(", ")}, or all (default all),
                   or a module of your own (my-workload.mjs: export default async function
                   ({ disk, fs, seed, random }) { ... }, and optionally export a check)
  --semantics S    one of ${SEMANTICS.join(", ")}, or all (default all)
  --runs N         runs per workload and semantics, each on a fresh disk (default 100)
  --seed S         the first run's seed; run i uses S + i (default 1)
  --points P       random: one cut per run at a random point (default); every-flush: a cut
                   before and after each flush completion, up to 64 per run
  --cut K          cut only at point K (replays a reported violation exactly)
  --torn           in-flight writes may be torn at sector granularity
  --json           print the reports as JSON (shape in README.md) instead of the table

bench options:
${BENCH_HELP.split("\n").slice(4).join("\n")}

Exit status: 0 on success; 1 when acknowledged writes were lost under seed, merged or iomap
(losses under legacy are the bug being shown, and are reported, not failed), when a crash-test
workload failed before the cut or never settled, or when a benchmark's
verify found a bad block; 2 for bad arguments (an unknown job-file option included).`;

async function demo(out: (line: string) => void): Promise<void> {
  const disk = await Disk.create({ size: 64 << 20, limits: { maxSectors: 256 }, seed: 7 });
  const l = disk.limits;
  out(`disk: 64 MiB in memory, logical block ${l.logicalBlockSize}, max_sectors ${l.maxSectors}, max_segments ${l.maxSegments}, max_segment_size ${l.maxSegmentSize}, write cache ${l.writeCache ? "on" : "off"}, FUA ${l.fua ? "on" : "off"}`);
  out("");
  out("1. One 1 MiB write bio of 256 page-sized segments at sector 0:");
  const pages = Array.from({ length: 256 }, (_, i) => {
    const buf = disk.alloc(4096);
    buf.fill(i & 0xff);
    return { buf };
  });
  const trace = disk.startTrace();
  const status = await disk.queue.submitBioWait({ op: "write", sector: 0, segments: pages, flags: ["SYNC"] });
  const records = trace.stop();
  out(formatBlkparse(records));
  const dispatched = records.filter((r) => r.action === "D");
  out(`   -> status ${status}; ${records.filter((r) => r.action === "X").length} splits, ${dispatched.length} requests of ${[...new Set(dispatched.map((r) => r.sectors))].join("/")} sectors`);
  for (const page of pages) disk.free(page.buf);

  out("");
  out("2. A power cut. Three 4 KiB writes, each filled with its own letter:");
  const block = (letter: string): Uint8Array => {
    const buf = disk.alloc(4096);
    buf.fill(letter.charCodeAt(0));
    return buf;
  };
  const writes = [
    { name: "A", sector: 4096, how: "written, then a flush completed", flags: [] as ("FUA" | "SYNC")[] },
    { name: "B", sector: 4104, how: "written with FUA", flags: ["FUA"] as ("FUA" | "SYNC")[] },
    { name: "C", sector: 4112, how: "written, completed, never flushed", flags: [] as ("FUA" | "SYNC")[] },
  ];
  const buffers = writes.map((w) => block(w.name));
  await disk.queue.submitBioWait({ op: "write", sector: writes[0].sector, segments: [{ buf: buffers[0] }] });
  await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
  await disk.queue.submitBioWait({ op: "write", sector: writes[1].sector, segments: [{ buf: buffers[1] }], flags: writes[1].flags });
  await disk.queue.submitBioWait({ op: "write", sector: writes[2].sector, segments: [{ buf: buffers[2] }] });
  out(`   before the cut: ${disk.stats().dirtyBytes} bytes in the volatile cache are not durable`);
  await disk.crash();
  for (const w of writes) {
    const after = await disk.readSectors(w.sector, 8);
    const survived = after.every((byte) => byte === w.name.charCodeAt(0));
    const lost = after.every((byte) => byte === 0);
    const verdict = survived ? "survived" : lost ? "lost" : "partly survived";
    const rule = w.name === "C" ? "(may be lost: it was only in the cache)" : "(must survive)";
    out(`   ${w.name} at sector ${w.sector}: ${w.how.padEnd(36)} -> ${verdict} ${rule}`);
  }
  out("");
  out("Run the same cut with other seeds (Disk.create({ seed })) and C survives in some and not others;");
  out("A and B survive in every one. `npm test` checks that over thousands of seeds.");
  await disk.close();
}

class UsageError extends Error {}

/** Parses crashtest's arguments; throws UsageError naming what is wrong. */
function parseCrashArgs(args: string[]) {
  const opts = { workload: "all", semantics: "all", runs: 100, seed: 1, points: "random" as "random" | "every-flush", cut: undefined as number | undefined, torn: false, json: false };
  const integer = (flag: string, value: string | undefined, min: number): number => {
    if (value === undefined || !/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
      throw new UsageError(`${flag} needs an integer of at least ${min}, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
    }
    return Number(value);
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[i + 1];
    switch (flag) {
      case "--workload":
        if (value === undefined || (value !== "all" && workloadNamed(value) === undefined && !/\.(m?js)$/.test(value))) {
          throw new UsageError(`--workload must be one of ${WORKLOADS.map((w) => w.name).join(", ")}, all, or a .js/.mjs module of your own, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        }
        opts.workload = value;
        i++;
        break;
      case "--semantics":
        if (value === undefined || (value !== "all" && !SEMANTICS.includes(value as Semantics))) {
          throw new UsageError(`--semantics must be one of ${SEMANTICS.join(", ")} or all, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        }
        opts.semantics = value;
        i++;
        break;
      case "--runs": opts.runs = integer(flag, value, 1); i++; break;
      case "--seed": opts.seed = integer(flag, value, 0); i++; break;
      case "--cut": opts.cut = integer(flag, value, 1); i++; break;
      case "--points":
        if (value !== "random" && value !== "every-flush") throw new UsageError(`--points must be random or every-flush, got ${value === undefined ? "nothing" : JSON.stringify(value)}`);
        opts.points = value;
        i++;
        break;
      case "--torn": opts.torn = true; break;
      case "--json": opts.json = true; break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(flag)}`);
    }
  }
  return opts;
}

/**
 * A workload of the user's: a module whose default export (or `workload` export) is an async
 * function of the crash-test context; an optional `check` export replaces the oracle's check.
 */
async function userWorkload(path: string): Promise<Workload> {
  const { pathToFileURL } = await import("node:url");
  const { resolve } = await import("node:path");
  let mod: { default?: unknown; workload?: unknown; check?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(path)).href) as typeof mod;
  } catch (error) {
    throw new UsageError(`cannot load the workload module ${path}: ${(error as Error).message}`);
  }
  const run = mod.workload ?? mod.default;
  if (typeof run !== "function") throw new UsageError(`the workload module ${path} exports no function (export default async function (ctx) { ... })`);
  if (mod.check !== undefined && typeof mod.check !== "function") throw new UsageError(`the workload module ${path} exports a check that is not a function`);
  return { name: path, description: `the workload in ${path}`, run: run as Workload["run"], check: mod.check as Workload["check"] };
}

async function crashtestCommand(args: string[]): Promise<number> {
  const opts = parseCrashArgs(args);
  const workloads = opts.workload === "all" ? WORKLOADS : [workloadNamed(opts.workload) ?? await userWorkload(opts.workload)];
  const semantics = opts.semantics === "all" ? SEMANTICS : [opts.semantics as Semantics];
  const bar = opts.json ? undefined : progress(process.stderr);
  const rows = await runCrashTests({ workloads, semantics, runs: opts.runs, seed: opts.seed, points: opts.points, cut: opts.cut, torn: opts.torn },
    (label, done, total) => bar?.update(label, done, total));
  bar?.end();
  // A workload that failed (before the cut, or never settled) is a bug too, under any semantics.
  const failed = rows.some((r) => (r.semantics !== "legacy" && (r.report.lost > 0 || r.report.violations.length > 0)) || r.report.workloadErrors.length > 0);
  if (opts.json) {
    const reports = rows.map((r) => ({
      workload: r.workload, semantics: r.semantics, runs: r.report.runs, cutPoints: r.report.cutPoints,
      acknowledgedWrites: r.report.acknowledgedWrites, lost: r.report.lost,
      violations: r.report.violations.map((v) => ({ ...v, replay: replayCommand(r, v.seed, v.cutPoint, opts.torn) })),
      workloadErrors: r.report.workloadErrors,
    }));
    console.log(JSON.stringify({ version: 1, seed: opts.seed, points: opts.points, torn: opts.torn, reports }, null, 2));
    return failed ? 1 : 0;
  }
  for (const line of formatTable(rows)) console.log(line);
  for (const row of rows) {
    const shown = row.report.violations.slice(0, 3);
    for (const v of shown) {
      console.log("");
      console.log(`${row.semantics}/${row.workload}, seed ${v.seed}, cut point ${v.cutPoint}: ${v.message}`);
      console.log(`  replay: ${replayCommand(row, v.seed, v.cutPoint, opts.torn)}`);
    }
    if (row.report.violations.length > shown.length) console.log(`  ... and ${row.report.violations.length - shown.length} more under ${row.semantics}/${row.workload} (--json lists all)`);
    for (const e of row.report.workloadErrors.slice(0, 3)) {
      console.log("");
      console.log(`${row.semantics}/${row.workload}, seed ${e.seed}: the workload failed before the cut: ${e.stack ?? e.message}`);
    }
  }
  if (rows.some((r) => r.semantics !== "legacy" && r.report.lost > 0)) console.log("\nAcknowledged writes were lost under a semantics that promises them: that is a bug in dioemu.");
  if (rows.some((r) => r.report.workloadErrors.length > 0)) console.log("\nA workload failed before the power cut or never settled: see above.");
  return failed ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") {
    console.log(HELP);
    return 0;
  }
  try {
    if (command === undefined) return await showcase((line) => console.log(line), process.stderr);
    if (command === "demo") {
      if (rest.length > 0) throw new UsageError(`demo: unexpected argument ${rest[0]}`);
      await demo((line) => console.log(line));
      return 0;
    }
    if ((command === "crashtest" || command === "bench") && (rest.includes("--help") || rest.includes("-h"))) {
      console.log(HELP);
      return 0;
    }
    if (command === "crashtest") return await crashtestCommand(rest);
    if (command === "bench") return await benchCommand(rest, (line) => console.log(line), process.stderr);
    throw new UsageError(`unknown command ${command}`);
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof BenchUsageError)) throw error;
    console.error(`dioemu: ${error.message}\n\n${HELP}`);
    return 2;
  }
}

// A reader that stops early (`dioemu | head`) is not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    if (error instanceof DioError) console.error(`dioemu: ${error.message}`);
    else console.error(error);
    process.exitCode = 1;
  },
);
