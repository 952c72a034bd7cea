// The command line's crash-test runner and the showcase (what `dioemu` with no arguments runs):
// the crash test of every built-in workload under every semantics, as a table; one O_DSYNC AIO
// write's life, traced under the seed patch and under legacy; and a short benchmark line.
import { Disk } from "./disk.js";
import { ioSetup } from "./aio.js";
import { mkfs, mount, SEMANTICS, type Semantics } from "./fs/filesystem.js";
import { O_CREAT, O_DIRECT, O_DSYNC, O_RDWR } from "./constants.js";
import { formatRecord, type TraceRecord } from "./trace.js";
import { crashTest, type CrashReport } from "./crash/crashtest.js";
import { WORKLOADS, type Workload } from "./crash/workloads.js";

export interface CrashRunOptions {
  workloads: readonly Workload[];
  semantics: readonly Semantics[];
  runs: number;
  seed: number;
  points: "random" | "every-flush";
  cut?: number;
  torn: boolean;
}

export interface CrashRow { workload: string; semantics: Semantics; report: CrashReport }

/** A progress display: a bar redrawn in place on a terminal, plain lines otherwise. */
export function progress(out: NodeJS.WriteStream): { update(label: string, done: number, total: number): void; end(): void } {
  const tty = out.isTTY === true;
  let lastLine = "";
  return {
    update(label, done, total) {
      if (tty) {
        const width = 30;
        const filled = Math.round((done / total) * width);
        out.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} ${label}`.padEnd(80));
      } else if (label !== lastLine) {
        out.write(`${label}\n`);
        lastLine = label;
      }
    },
    end() {
      if (tty) out.write(`\r${" ".repeat(80)}\r`);
    },
  };
}

/** Runs the crash tests, one (workload, semantics) pair at a time. */
export async function runCrashTests(opts: CrashRunOptions, onStep?: (label: string, done: number, total: number) => void): Promise<CrashRow[]> {
  const rows: CrashRow[] = [];
  const total = opts.workloads.length * opts.semantics.length;
  for (const workload of opts.workloads) {
    for (const semantics of opts.semantics) {
      const label = `${workload.name} under ${semantics}`;
      onStep?.(label, rows.length, total);
      const report = await crashTest({
        workload: workload.run, check: workload.check, semantics, runs: opts.runs, seed: opts.seed, points: opts.points, cut: opts.cut, torn: opts.torn,
      });
      rows.push({ workload: workload.name, semantics, report });
    }
  }
  onStep?.("done", total, total);
  return rows;
}

/** The table: semantics x workload -> runs, cut points, acknowledged writes, lost. */
export function formatTable(rows: CrashRow[]): string[] {
  const head = ["semantics", "workload", "runs", "cut points", "acknowledged writes", "lost", "workload errors"];
  const body = rows.map((r) => [r.semantics, r.workload, String(r.report.runs), String(r.report.cutPoints), String(r.report.acknowledgedWrites), String(r.report.lost), String(r.report.workloadErrors.length)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)];
}

/** The command that replays one violation exactly. */
export function replayCommand(row: CrashRow, seed: number, cutPoint: number, torn: boolean): string {
  return `dioemu crashtest --workload ${row.workload} --semantics ${row.semantics} --seed ${seed} --runs 1 --cut ${cutPoint}${torn ? " --torn" : ""}`;
}

/**
 * One 4 KiB O_DSYNC AIO overwrite, traced: the block layer's records interleaved with the
 * direct-IO completion steps and the event, on a device whose writes take 3 ticks and flushes 2.
 */
export async function lifeOfAWrite(semantics: Semantics): Promise<string[]> {
  const disk = await Disk.create({ size: 8 << 20, executor: "inline", seed: 3, latency: { writeMin: 3, writeMax: 3, flushMin: 2, flushMax: 2 } });
  await mkfs(disk, { blockSize: 4096, inodes: 8 });
  const fs = await mount(disk, { semantics });
  const fh = await fs.open("data", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  const buf = disk.alloc(4096);
  buf.fill(0x61);
  await fh.write(buf, 0, 4096, 0);
  await fs.sync();
  const trace = disk.startTrace();
  const records = trace.peek() as TraceRecord[];
  const lines: { at: number; text: string }[] = [];
  const note = (text: string) => lines.push({ at: records.length, text: `${" ".repeat(12)}${disk.device.now.toFixed(3).padStart(10)}  ${text}` });
  fs.onDioStep = (s) => {
    const text: Record<string, string> = {
      work_queued: `   dio: last bio completed; sync work queued on "${fs.dioQueue?.name}"`,
      sync_start: "   dio: worker runs generic_write_sync(): a cache flush, issued after the data completed",
      submit_sync: "   dio: io_submit returned -EIOCBQUEUED and the caller synced at once (the flush goes out before the data is done)",
      dio_end: "   dio: i_dio_count--",
      event: `   aio: event posted, res = ${s.res}`,
    };
    if (text[s.step] !== undefined) note(text[s.step]);
  };
  const ctx = ioSetup(1);
  note("   aio: io_submit(pwrite 4096 at 0, O_DIRECT|O_DSYNC)");
  ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }]);
  await ctx.getEvents(1, 1);
  await new Promise((resolve) => setImmediate(resolve));
  trace.stop();
  const merged: string[] = [];
  let next = 0;
  for (let i = 0; i <= records.length; i++) {
    while (next < lines.length && lines[next].at === i) merged.push(lines[next++].text);
    if (i < records.length) merged.push(formatRecord(records[i]));
  }
  await ctx.destroy();
  await fs.unmount();
  await disk.close();
  return merged;
}

/** 4 KiB random O_DSYNC AIO writes at depth 32 under `seed`, for about `ms`: IOPS and p99. */
export async function benchLine(ms: number): Promise<{ iops: number; p99: number; executor: string }> {
  const disk = await Disk.create({ size: 48 << 20, cacheBytes: 8 << 20, arenaBytes: 4 << 20, latency: { writeMin: 1, writeMax: 1, flushMin: 1, flushMax: 1 } });
  await mkfs(disk, { blockSize: 4096, inodes: 8 });
  const fs = await mount(disk, { semantics: "seed" });
  const fh = await fs.open("bench", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  const FILE = 16 << 20;
  const big = disk.alloc(1 << 20);
  for (let at = 0; at < FILE; at += 1 << 20) await fh.write(big, 0, big.length, at);
  disk.free(big);
  const depth = 32;
  const bufs = Array.from({ length: depth }, () => disk.alloc(4096));
  const ctx = ioSetup(depth);
  let state = 1;
  const started: number[] = [];
  const lat: number[] = [];
  const submit = (slot: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    started[slot] = performance.now();
    ctx.submit([{ opcode: "pwrite", fh, buf: bufs[slot], offset: (state % (FILE / 4096)) * 4096, data: slot }]);
  };
  const t0 = performance.now();
  for (let slot = 0; slot < depth; slot++) submit(slot);
  let done = 0;
  let inflight = depth;
  while (inflight > 0) {
    const events = await ctx.getEvents(1, depth);
    const now = performance.now();
    for (const e of events) {
      if (e.res !== 4096) throw new Error(`benchmark write failed: ${e.res}`);
      lat.push(now - started[e.data as number]);
      done++;
      if (now - t0 < ms) submit(e.data as number);
      else inflight--;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await ctx.destroy();
  await fs.unmount();
  await disk.close();
  lat.sort((a, b) => a - b);
  return { iops: done / seconds, p99: lat[Math.floor(lat.length * 0.99)] * 1000, executor: disk.executor };
}

/** The showcase: the main job of `dioemu` and `npm start`. */
export async function showcase(out: (line: string) => void, err: NodeJS.WriteStream): Promise<number> {
  out("dioemu: power cuts over four workloads, under the bug (legacy, Linux 3.7), the patch (seed),");
  out("and the kernel's later forms of the fix (merged = 3.11+, iomap = 6.x). Each run gets a fresh");
  out("in-memory disk with a volatile write cache and is cut at a random point; the durability oracle");
  out("then checks every write whose durability had been promised (an O_DSYNC/O_SYNC acknowledgement,");
  out("or a completed fsync/fdatasync) against what survived.");
  out("");
  const bar = progress(err);
  const rows = await runCrashTests({ workloads: WORKLOADS, semantics: SEMANTICS, runs: 40, seed: 1, points: "random", torn: false },
    (label, done, total) => bar.update(label, done, total));
  bar.end();
  const bySemantics = [...rows].sort((a, b) => SEMANTICS.indexOf(a.semantics) - SEMANTICS.indexOf(b.semantics));
  for (const line of formatTable(bySemantics)) out(line);
  out("");
  const legacyLost = rows.filter((r) => r.semantics === "legacy").reduce((sum, r) => sum + r.report.lost, 0);
  const fixedLost = rows.filter((r) => r.semantics !== "legacy").reduce((sum, r) => sum + r.report.lost, 0);
  out(`Acknowledged writes lost: ${legacyLost} under legacy (the bug), ${fixedLost} under seed, merged and iomap.`);
  const example = rows.find((r) => r.semantics === "legacy" && r.report.violations.length > 0);
  if (example !== undefined) {
    const v = example.report.violations[0];
    out(`For example: ${v.message}`);
    out(`  replay: ${replayCommand(example, v.seed, v.cutPoint, false)}`);
  }
  out("");
  out("One 4 KiB O_DSYNC AIO overwrite under the patch (seed): the event comes after a flush that was");
  out("issued once the data had completed (blkparse columns: dev, seq, time, action, RWBS, sector + count).");
  for (const line of await lifeOfAWrite("seed")) out(line);
  out("");
  out("The same write under legacy (3.7): the flush is dispatched before the data write completes,");
  out("so it does not cover it, and the event then reports success for data that is only in the cache.");
  for (const line of await lifeOfAWrite("legacy")) out(line);
  out("");
  const bench = await benchLine(1000);
  out(`Benchmark: 4 KiB random O_DSYNC AIO writes at depth 32 under seed (${bench.executor} executor): ${Math.round(bench.iops).toLocaleString("en-US")} IOPS, p99 ${bench.p99.toFixed(0)} us`);
  return fixedLost > 0 ? 1 : 0;
}
