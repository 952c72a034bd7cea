// Crash testing as a product: the durability oracle against hand-built histories (what a power cut
// may take and what it may not), crashTest() over the built-in and user workloads (the bug found
// under legacy, nothing under seed/merged/iomap, exact replay by seed and cut point, every-flush
// and torn cuts, workload errors, user checks, bad options), and the `dioemu crashtest` command
// line and the showcase (exit codes, the table, --json and its replay commands).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  crashTest, DioError, Disk, DurabilityOracle, ioSetup, mkfs, mount, WORKLOADS, workloadNamed,
  O_APPEND, O_CREAT, O_DIRECT, O_DSYNC, O_RDONLY, O_RDWR,
  type CrashReport, type CrashTestContext, type CrashTestOptions, type Semantics,
} from "../host/index.js";

// ---- helpers ---------------------------------------------------------------------------------

/** `length` bytes of a pattern that names `id` (never all zeros). */
function pattern(id: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (id * 37 + i * 3 + 1 + (i >> 9)) & 0xff || 0x5a;
  return out;
}

/** A file's content: `size` zero bytes with `parts` laid over them in order. */
function content(size: number, ...parts: [number, Uint8Array][]): Uint8Array {
  const out = new Uint8Array(size);
  for (const [at, bytes] of parts) out.set(bytes.subarray(0, Math.max(0, Math.min(bytes.length, size - at))), at);
  return out;
}

/** A read function for DurabilityOracle.check over fixed contents (missing name: no such file). */
function reader(files: Record<string, Uint8Array | null>): (file: string) => Promise<Uint8Array | null> {
  return async (file) => files[file] ?? null;
}

function messages(v: { message: string }[]): string {
  return v.map((x) => x.message).join("\n");
}

async function rejectsWith(fn: () => Promise<unknown>, code: string, words: string): Promise<void> {
  try {
    await fn();
  } catch (error) {
    assert.instance(error, DioError, String(error));
    assert.is((error as DioError).code, code, (error as DioError).message);
    assert.ok((error as DioError).message.includes(words), `"${(error as DioError).message}" should name ${words}`);
    return;
  }
  assert.unreachable(`expected ${code} naming ${words}`);
}

function assertClean(report: CrashReport, what: string): void {
  assert.is(report.lost, 0, `${what}: lost\n${messages(report.violations)}`);
  assert.equal(report.violations, [], `${what}: violations\n${messages(report.violations)}`);
  assert.equal(report.workloadErrors, [], `${what}: workload errors\n${report.workloadErrors.map((e) => e.stack ?? e.message).join("\n")}`);
}

/** `promise`, or a rejection after `ms` (so that a hang fails the test instead of ending the process). */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} still running after ${ms} ms`)), ms); });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const aioDsync = workloadNamed("aio-dsync")!;

// ---- 1. the oracle against hand-built histories ------------------------------------------------

test("oracle: an acknowledged write, then a completed fsync of its file started after the ack, must survive", async () => {
  const oracle = new DurabilityOracle();
  const data = pattern(1, 4096);
  oracle.writeStart("f", 8192, [data.subarray(0, 1000), data.subarray(1000)], "pwrite returned")(4096, false);
  const write = oracle.writes[0];
  assert.is(oracle.promiseOf(write), undefined, "acknowledged, not yet synced: no promise");
  const syncDone = oracle.syncStart("f", "fsync");
  assert.is(oracle.promiseOf(write), undefined, "a sync still running promises nothing");
  syncDone(true);
  assert.ok(oracle.promiseOf(write)?.includes("fsync"), oracle.promiseOf(write));
  assert.equal(oracle.durableWrites(), [write]);

  const lost = await oracle.check(reader({ f: content(12288) }));
  assert.is(lost.length, 1, messages(lost));
  const v = lost[0];
  assert.is(v.file, "f");
  assert.is(v.offset, 8192);
  assert.is(v.length, 4096);
  assert.is(v.write, write);
  assert.ok(v.promise.includes("fsync"), v.promise);
  for (const words of ["f:", "bytes 8192..12287", "write #1", "4096 bytes at 8192", "pwrite returned", "fsync"]) {
    assert.ok(v.message.includes(words), `"${v.message}" should include ${words}`);
  }

  assert.equal(await oracle.check(reader({ f: content(12288, [8192, data]) })), [], "the data survived");
});

test("oracle: a completed whole-filesystem sync (null) started after the ack covers every file; another file's fsync does not", async () => {
  const oracle = new DurabilityOracle();
  const a = pattern(2, 512);
  const b = pattern(3, 1024);
  oracle.writeStart("a", 0, [a], "pwrite returned")(512, false);
  oracle.writeStart("b", 1024, [b], "pwrite returned")(1024, false);
  oracle.syncStart("other", "fsync")(true);
  assert.equal(oracle.durableWrites(), [], "an fsync of another file covers neither");
  assert.equal(await oracle.check(reader({})), [], "nothing promised: the files may be gone");
  oracle.syncStart(null, "sync")(true);
  assert.is(oracle.durableWrites().length, 2);

  const lost = await oracle.check(reader({ a: content(512), b: content(2048) }));
  assert.is(lost.length, 2, messages(lost));
  assert.equal(lost.map((v) => [v.file, v.offset, v.length]).sort(), [["a", 0, 512], ["b", 1024, 1024]]);
  assert.equal(await oracle.check(reader({ a: a, b: content(2048, [1024, b]) })), []);
});

test("oracle: a sync that failed or never finished promises nothing", async () => {
  const oracle = new DurabilityOracle();
  oracle.writeStart("f", 0, [pattern(4, 4096)], "pwrite returned")(4096, false);
  oracle.syncStart("f", "fsync")(false);
  oracle.syncStart("f", "fdatasync"); // still running at the cut
  assert.equal(oracle.durableWrites(), []);
  assert.equal(await oracle.check(reader({ f: content(4096) })), []);
});

test("oracle: an acknowledged write without a flush or sync, not dsync, may be lost", async () => {
  const oracle = new DurabilityOracle();
  const data = pattern(5, 4096);
  oracle.writeStart("f", 0, [data], "pwrite returned")(4096, false);
  assert.is(oracle.promiseOf(oracle.writes[0]), undefined);
  assert.equal(oracle.durableWrites(), []);
  assert.equal(await oracle.check(reader({ f: content(4096) })), [], "lost: allowed");
  assert.equal(await oracle.check(reader({ f: null })), [], "file gone: allowed");
  assert.equal(await oracle.check(reader({ f: data })), [], "kept: allowed");
});

test("oracle: a sync that started before the write was acknowledged does not cover it", async () => {
  const oracle = new DurabilityOracle();
  const ack = oracle.writeStart("f", 0, [pattern(6, 4096)], "io_getevents event");
  const syncDone = oracle.syncStart("f", "fsync"); // started while the write was in flight
  ack(4096, false);
  syncDone(true);
  assert.is(oracle.promiseOf(oracle.writes[0]), undefined);
  assert.equal(await oracle.check(reader({ f: content(4096) })), []);
  // One started before the write was even submitted does not cover it either.
  const early = new DurabilityOracle();
  const earlySync = early.syncStart(null, "sync");
  early.writeStart("f", 0, [pattern(6, 4096)], "pwrite returned")(4096, false);
  earlySync(true);
  assert.equal(early.durableWrites(), []);
});

test("oracle: a dsync acknowledgement (O_DSYNC, FUA) promises durability by itself", async () => {
  const oracle = new DurabilityOracle();
  const data = pattern(7, 4096);
  oracle.writeStart("f", 4096, [data], "io_getevents event of iocb data=1")(4096, true);
  const write = oracle.writes[0];
  assert.ok(oracle.promiseOf(write)?.includes("a sync write's acknowledgement"), oracle.promiseOf(write));
  const lost = await oracle.check(reader({ f: content(8192) }));
  assert.is(lost.length, 1, messages(lost));
  assert.equal([lost[0].file, lost[0].offset, lost[0].length, lost[0].write.id], ["f", 4096, 4096, 1]);
  assert.ok(lost[0].message.includes("other data is there"), lost[0].message);
  assert.equal(await oracle.check(reader({ f: content(8192, [4096, data]) })), []);
});

test("oracle: a torn in-flight write may keep or drop whole sectors, never mix bytes within one", async () => {
  const oracle = new DurabilityOracle();
  const d = pattern(8, 4096);
  const w = pattern(9, 4096);
  oracle.writeStart("f", 0, [d], "pwrite returned")(4096, true); // durable old data, 8 sectors
  oracle.writeStart("f", 0, [w], "io_submit"); // in flight at the cut
  const alternating = new Uint8Array(4096);
  for (let s = 0; s < 8; s++) alternating.set((s % 2 === 0 ? d : w).subarray(s * 512, (s + 1) * 512), s * 512);
  assert.equal(await oracle.check(reader({ f: alternating })), [], "sector-wise D/W/D/W...");
  assert.equal(await oracle.check(reader({ f: w })), [], "all of W landed");
  assert.equal(await oracle.check(reader({ f: d })), [], "none of W landed");

  const mixed = d.slice();
  for (let i = 3 * 512; i < 4 * 512; i += 2) mixed[i] = w[i]; // sector 3: bytes of D and W interleaved
  const lost = await oracle.check(reader({ f: mixed }));
  assert.is(lost.length, 1, messages(lost));
  assert.equal([lost[0].offset, lost[0].length, lost[0].write.id], [1536, 512, 1]);
  const half = d.slice();
  half.set(w.subarray(512 + 256, 1024), 512 + 256); // sector 1: first half D, second half W
  assert.equal((await oracle.check(reader({ f: half }))).map((v) => [v.offset, v.length]), [[512, 512]]);
});

test("oracle: a later overlapping write acknowledged after the durable one (not durable itself) may be there instead", async () => {
  const oracle = new DurabilityOracle();
  const d = pattern(10, 4096);
  const later = pattern(11, 2048);
  oracle.writeStart("f", 0, [d], "pwrite returned")(4096, true);
  oracle.writeStart("f", 1024, [later], "pwrite returned")(2048, false); // after d's ack; never synced
  assert.equal(oracle.durableWrites().map((x) => x.id), [1]);
  assert.equal(await oracle.check(reader({ f: content(4096, [0, d], [1024, later]) })), [], "the later write landed");
  assert.equal(await oracle.check(reader({ f: d })), [], "the later write was lost");
  // A write submitted before d was acknowledged but acknowledged after d was submitted raced it.
  const racing = new DurabilityOracle();
  const ackOther = racing.writeStart("f", 0, [later], "io_getevents event of iocb data=2");
  racing.writeStart("f", 0, [d], "io_getevents event of iocb data=1")(4096, true);
  ackOther(2048, false);
  assert.equal(await racing.check(reader({ f: content(4096, [0, d], [0, later]) })), []);
});

test("oracle: a write acknowledged before the durable one was submitted is not allowed in its place", async () => {
  const oracle = new DurabilityOracle();
  const old = pattern(12, 4096);
  const d = pattern(13, 4096);
  oracle.writeStart("f", 0, [old], "pwrite returned")(4096, false); // acknowledged ...
  oracle.writeStart("f", 0, [d], "pwrite returned")(4096, true); // ... before this was submitted
  const lost = await oracle.check(reader({ f: old }));
  assert.is(lost.length, 1, messages(lost));
  assert.equal([lost[0].offset, lost[0].length, lost[0].write.id], [0, 4096, 2]);
  assert.equal(await oracle.check(reader({ f: d })), []);
  // Even when the older write was itself promised durable: the newer promise wins.
  const both = new DurabilityOracle();
  both.writeStart("f", 0, [old], "pwrite returned")(4096, true);
  both.writeStart("f", 0, [d], "pwrite returned")(4096, false);
  both.syncStart("f", "fdatasync")(true);
  const lostBoth = await both.check(reader({ f: old }));
  assert.equal(lostBoth.map((v) => [v.offset, v.length, v.write.id]), [[0, 4096, 2]], messages(lostBoth));
  assert.equal(await both.check(reader({ f: d })), []);
});

test("oracle: a missing file loses every durable write; a shorter file is reported where it ends", async () => {
  const oracle = new DurabilityOracle();
  const d = pattern(14, 4096);
  const e = pattern(15, 1024);
  oracle.writeStart("f", 0, [d], "pwrite returned")(4096, false);
  oracle.writeStart("f", 8192, [e], "pwrite returned")(1024, false);
  oracle.syncStart("f", "fsync")(true);
  const gone = await oracle.check(reader({ f: null }));
  assert.equal(gone.map((v) => [v.offset, v.length, v.write.id]).sort(), [[0, 4096, 1], [8192, 1024, 2]], messages(gone));
  for (const v of gone) assert.ok(v.message.includes("the file is gone"), v.message);

  const short = await oracle.check(reader({ f: content(2048, [0, d]) }));
  const first = short.find((v) => v.write.id === 1);
  assert.ok(first !== undefined, messages(short));
  assert.equal([first!.offset, first!.length], [2048, 2048]);
  assert.ok(first!.message.includes("the file ends at byte 2048"), first!.message);
  assert.ok(first!.message.includes("bytes 2048..4095"), first!.message);
  assert.ok(short.some((v) => v.write.id === 2 && v.offset === 8192 && v.length === 1024), messages(short));
});

test("oracle: a short write promises only the prefix it reported", async () => {
  const oracle = new DurabilityOracle();
  const d = pattern(16, 4096);
  oracle.writeStart("f", 0, [d], "pwrite returned")(1024, true);
  assert.is(oracle.writes[0].data.length, 1024);
  assert.equal(await oracle.check(reader({ f: content(1024, [0, d]) })), [], "the prefix survived, the file ends after it");
  assert.equal(await oracle.check(reader({ f: content(4096, [0, d.subarray(0, 1024)]) })), [], "beyond the prefix: anything");
  const broken = content(1024, [0, d]);
  broken[700] ^= 0xff;
  const lost = await oracle.check(reader({ f: broken }));
  assert.equal(lost.map((v) => [v.offset, v.length]), [[512, 512]], messages(lost));
  assert.ok(lost[0].message.includes("1024 bytes at 0"), lost[0].message);
});

test("oracle: a failed write (res < 0) promises nothing, even with a sync after it", async () => {
  const oracle = new DurabilityOracle();
  oracle.writeStart("f", 0, [pattern(17, 4096)], "io_getevents event")(-5, true);
  oracle.writeStart("f", 4096, [pattern(18, 4096)], "pwrite returned")(0, false);
  oracle.syncStart("f", "fsync")(true);
  assert.is(oracle.writes[0].acked, undefined);
  assert.equal(oracle.durableWrites(), []);
  assert.equal(await oracle.check(reader({ f: null })), []);
  assert.equal(await oracle.check(reader({ f: content(8192) })), []);
});

// ---- the recorder: what the filesystem tells the oracle ------------------------------------------

async function recordedFs() {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, seed: 1, executor: "inline" });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: "seed" });
  const oracle = new DurabilityOracle();
  fs.recorder = oracle;
  return { disk, fs, oracle };
}

test("recorder: sequential writes, appends and AIO writes are recorded where they land", async () => {
  const { disk, fs, oracle } = await recordedFs();
  const log = await fs.open("log", O_RDWR | O_CREAT | O_APPEND);
  await log.write(new Uint8Array(1000).fill(1));
  await log.write(new Uint8Array(500).fill(2), 0, 500, 0); // O_APPEND: the position is ignored
  await log.datasync();
  const direct = await fs.open("direct", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  const buf = disk.alloc(4096);
  buf.fill(3);
  await direct.write(buf, 0, 4096, 8192);
  const ctx = ioSetup(1);
  ctx.submit([{ opcode: "pwrite", fh: direct, buf, offset: 4096, data: 1 }]);
  const [event] = await ctx.getEvents(1, 1);
  assert.is(event.res, 4096);
  await ctx.destroy();
  assert.equal(oracle.writes.map((w) => [w.file, w.offset, w.data.length, w.dsync]), [
    ["log", 0, 1000, false], ["log", 1000, 500, false], ["direct", 8192, 4096, true], ["direct", 4096, 4096, true],
  ]);
  assert.is(oracle.durableWrites().length, 4, "the fdatasync covers the appends, O_DSYNC the direct writes");
  await fs.unmount();
  await disk.close();
});

// Regression: the oracle once took a write's offset when the call started (inode.size for O_APPEND,
// the file position without one), before the inode lock; the write takes its offset under the lock.
// Concurrent appends (or position-less writes on one handle) were all recorded at the same old end
// of file. The recorder now places such a write when it takes its offset.
test("recorder (regression): concurrent O_APPEND writes are recorded at the offsets they land at", async () => {
  const { disk, fs, oracle } = await recordedFs();
  const fh = await fs.open("log", O_RDWR | O_CREAT | O_APPEND);
  const r1 = new Uint8Array(1000).fill(1);
  const r2 = new Uint8Array(1000).fill(2);
  await Promise.all([fh.write(r1), fh.write(r2)]);
  await fh.datasync();
  assert.is((await fh.stat()).size, 2000, "both appends landed, one after the other");
  const back = new Uint8Array(2000);
  await fh.read(back, 0, 2000, 0);
  const firstAt0 = back[0];
  assert.ok((firstAt0 === 1 && back[1000] === 2) || (firstAt0 === 2 && back[1000] === 1), "each record whole, at 0 and 1000");
  // What the oracle was told:
  assert.equal(oracle.writes.map((w) => w.offset).sort((a, b) => a - b), [0, 1000], "recorded offsets");
  // And its consequence: with the record at 1000..1999 gone, a violation must be reported.
  const lost = await oracle.check(async () => back.slice(0, 1000));
  assert.ok(lost.length > 0, "a durable record lost after fdatasync must be reported");
  await fs.unmount();
  await disk.close();
});

test("recorder (regression): concurrent O_APPEND O_DIRECT AIO writes are recorded at the offsets they land at", async () => {
  const { disk, fs, oracle } = await recordedFs();
  const fh = await fs.open("alog", O_RDWR | O_CREAT | O_APPEND | O_DIRECT | O_DSYNC);
  const ctx = ioSetup(4);
  const bufs = [1, 2, 3].map((i) => {
    const b = disk.alloc(4096);
    b.fill(i);
    return b;
  });
  ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite" as const, fh, buf, offset: 0, data: i })));
  let got = 0;
  while (got < 3) {
    for (const e of await ctx.getEvents(1, 3)) {
      assert.is(e.res, 4096);
      got++;
    }
  }
  await ctx.destroy();
  assert.is((await fh.stat()).size, 12288, "three appends of 4 KiB");
  assert.equal(oracle.writes.map((w) => w.offset).sort((a, b) => a - b), [0, 4096, 8192], "recorded offsets");
  await fs.unmount();
  await disk.close();
});

test("recorder (regression): concurrent position-less writes on one handle are recorded at the offsets they land at", async () => {
  const { disk, fs, oracle } = await recordedFs();
  const fh = await fs.open("seq", O_RDWR | O_CREAT);
  await Promise.all([fh.write(new Uint8Array(1000).fill(1)), fh.write(new Uint8Array(1000).fill(2))]);
  await fh.sync();
  assert.is((await fh.stat()).size, 2000, "the second write went on from where the first ended");
  assert.equal(oracle.writes.map((w) => w.offset).sort((a, b) => a - b), [0, 1000], "recorded offsets");
  await fs.unmount();
  await disk.close();
});

// ---- 2. crashTest ----------------------------------------------------------------------------

const legacyRuns: { report?: CrashReport } = {};

test("crashTest: finds the lost O_DSYNC AIO writes under legacy, and nothing under seed, merged, iomap", async () => {
  const legacy = await crashTest({ workload: aioDsync.run, semantics: "legacy", runs: 40, seed: 1 });
  legacyRuns.report = legacy;
  assert.is(legacy.semantics, "legacy");
  assert.is(legacy.runs, 40);
  assert.is(legacy.cutPoints, 40);
  assert.ok(legacy.acknowledgedWrites > 0);
  assert.ok(legacy.lost > 0, "the bug is found");
  assert.ok(legacy.lost <= legacy.acknowledgedWrites);
  assert.ok(legacy.violations.length >= legacy.lost);
  for (const v of legacy.violations) {
    assert.ok(v.seed >= 1 && v.seed <= 40 && Number.isInteger(v.cutPoint) && v.cutPoint >= 1, JSON.stringify(v));
    assert.is(v.file, "data");
    assert.ok(v.offset! % 512 === 0 && v.length! > 0 && v.offset! + v.length! <= 64 * 4096, JSON.stringify(v));
  }
  for (const semantics of ["seed", "merged", "iomap"] as Semantics[]) {
    const report = await crashTest({ workload: aioDsync.run, semantics, runs: 40, seed: 1 });
    assert.is(report.semantics, semantics);
    assert.is(report.runs, 40);
    assert.ok(report.acknowledgedWrites > 0, `${semantics}: something was promised`);
    assertClean(report, semantics);
  }
});

test("crashTest: a failing run replays from its seed and cut point to the same violations", async () => {
  const legacy = legacyRuns.report ?? (await crashTest({ workload: aioDsync.run, semantics: "legacy", runs: 40, seed: 1 }));
  assert.ok(legacy.violations.length > 0);
  const picks = [legacy.violations[0], legacy.violations[legacy.violations.length - 1]];
  for (const v of picks) {
    const expected = legacy.violations.filter((x) => x.seed === v.seed && x.cutPoint === v.cutPoint);
    const replay = await crashTest({ workload: aioDsync.run, semantics: "legacy", seed: v.seed, runs: 1, cut: v.cutPoint });
    assert.is(replay.runs, 1);
    assert.is(replay.cutPoints, 1);
    assert.equal(replay.violations.map((x) => x.message), expected.map((x) => x.message));
    assert.equal(replay.violations.map((x) => [x.seed, x.cutPoint]), expected.map((x) => [x.seed, x.cutPoint]));
    assert.is(replay.lost, new Set(expected.map((x) => /write #(\d+)/.exec(x.message)?.[1])).size);
  }
});

test("crashTest: every-flush cuts several times per run and finds nothing under seed, for every built-in workload", async () => {
  assert.equal(WORKLOADS.map((w) => w.name), ["aio-dsync", "osync-append", "wal", "buffered-fsync"]);
  for (const workload of WORKLOADS) {
    const report = await crashTest({ workload: workload.run, semantics: "seed", runs: 2, seed: 5, points: "every-flush" });
    assert.is(report.runs, 2, workload.name);
    assert.ok(report.cutPoints > report.runs, `${workload.name}: ${report.cutPoints} cut points over ${report.runs} runs`);
    assert.ok(report.acknowledgedWrites > 0, `${workload.name}: something was promised`);
    assertClean(report, `every-flush ${workload.name}`);
  }
});

test("crashTest: torn in-flight writes lose nothing under seed (aio-dsync, wal)", async () => {
  for (const name of ["aio-dsync", "wal"]) {
    const report = await crashTest({ workload: workloadNamed(name)!.run, semantics: "seed", runs: 20, seed: 3, torn: true });
    assert.is(report.cutPoints, 20);
    assert.ok(report.acknowledgedWrites > 0, name);
    assertClean(report, `torn ${name}`);
  }
});

test("crashTest: a workload that throws before the cut is a workload error with its stack, not a loss", async () => {
  async function explodingWorkload({ disk, fs }: CrashTestContext): Promise<void> {
    const fh = await fs.open("x", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    const buf = disk.alloc(4096);
    buf.fill(1);
    await fh.write(buf, 0, 4096, 0);
    throw new Error("the workload blew up");
  }
  const report = await crashTest({ workload: explodingWorkload, runs: 3, seed: 11 });
  assert.is(report.runs, 3);
  assert.is(report.lost, 0);
  assert.equal(report.violations, []);
  assert.is(report.workloadErrors.length, 3);
  assert.equal(report.workloadErrors.map((e) => e.seed), [11, 12, 13]);
  for (const e of report.workloadErrors) {
    assert.is(e.message, "the workload blew up");
    assert.ok(e.stack?.includes("explodingWorkload"), e.stack);
  }
  // With a cut point past its end, the failure happens before the cut, and is kept with the point.
  const replay = await crashTest({ workload: explodingWorkload, runs: 1, seed: 11, cut: 1000 });
  assert.equal(replay.workloadErrors.map((e) => [e.seed, e.cutPoint, e.message]), [[11, 1000, "the workload blew up"]]);
  assert.equal(replay.violations, []);
  assert.is(replay.lost, 0);
});

async function smallDsyncWorkload({ disk, fs }: CrashTestContext): Promise<void> {
  const fh = await fs.open("small", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  const buf = disk.alloc(4096);
  for (let i = 0; i < 4; i++) {
    buf.fill(i + 1);
    await fh.write(buf, 0, 4096, i * 4096);
  }
  disk.free(buf);
}

test("crashTest: a user check that throws is a violation carrying its message", async () => {
  const report = await crashTest({
    workload: smallDsyncWorkload, runs: 3, seed: 2,
    check: async () => { throw new Error("the user check disagrees"); },
  });
  assert.is(report.cutPoints, 3);
  assert.is(report.violations.length, 3);
  assert.equal(report.violations.map((v) => v.seed), [2, 3, 4]);
  for (const v of report.violations) assert.ok(v.message.includes("the user check disagrees"), v.message);
  assert.equal(report.workloadErrors, []);
  // A check that passes reports nothing: the violations above came from the check.
  const fine = await crashTest({ workload: smallDsyncWorkload, runs: 3, seed: 2, check: async () => undefined });
  assert.equal(fine.violations, []);
});

test("crashTest: a check that never returns is cut off by timeoutMs and reported", async () => {
  const started = Date.now();
  const report = await bounded(crashTest({
    workload: smallDsyncWorkload, runs: 2, seed: 2, timeoutMs: 200,
    check: () => new Promise<void>(() => undefined),
  }), 10000, "crashTest with a check that never returns");
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
  assert.is(report.violations.length, 2);
  for (const v of report.violations) assert.ok(/did not finish within 200 ms/.test(v.message), v.message);
});

test("crashTest: a workload that never settles is cut off by timeoutMs and reported as a workload error", async () => {
  const report = await bounded(crashTest({ workload: () => new Promise<void>(() => undefined), runs: 2, seed: 9, timeoutMs: 200 }), 10000, "crashTest with a hanging workload");
  assert.is(report.runs, 2);
  assert.equal(report.violations, []);
  assert.is(report.lost, 0);
  assert.equal(report.workloadErrors.map((e) => e.seed), [9, 10]);
  for (const e of report.workloadErrors) assert.ok(/did not finish within 200 ms/.test(e.message), e.message);
});

/** The disk's last 8 KiB (crashTest's disks are 16 MiB), past anything the filesystem uses. */
const END_SECTOR = (16 << 20) / 512 - 16;

/** A workload of three device requests, by hand: write A (0xaa), flush, write B (0xbb) at
 *  END_SECTOR: completions 1, 2, 3, and the end is 4. It stops at the first failed request, as a
 *  program would once the power is gone, and counts the requests that succeeded. */
function threeRequests(progress: { completed: number }) {
  return async ({ disk }: CrashTestContext): Promise<void> => {
    progress.completed = 0;
    const a = disk.alloc(4096);
    const b = disk.alloc(4096);
    a.fill(0xaa);
    b.fill(0xbb);
    const steps = [
      { op: "write" as const, sector: END_SECTOR, segments: [{ buf: a }] },
      { op: "flush" as const, sector: 0, segments: [] },
      { op: "write" as const, sector: END_SECTOR + 8, segments: [{ buf: b }] },
    ];
    for (const bio of steps) {
      const status = await disk.queue.submitBioWait(bio);
      if (status !== 0) throw new Error(`${bio.op} failed with ${status}`);
      progress.completed++;
    }
  };
}

test("crashTest: every-flush cuts just before and just after each flush completion, and at the end", async () => {
  const progress = { completed: 0 };
  const seen: { seed: number; completed: number; a: number; b: number }[] = [];
  const check = async ({ disk, seed }: CrashTestContext) => {
    const after = await disk.readSectors(END_SECTOR, 16);
    seen.push({ seed, completed: progress.completed, a: after[0], b: after[4096] });
  };
  const report = await crashTest({ runs: 2, seed: 21, points: "every-flush", workload: threeRequests(progress), check });
  assert.equal(report.workloadErrors, []);
  assert.equal(report.violations, []);
  assert.is(report.cutPoints, 6, "cuts 2 (before the flush's completion), 3 (after it) and 4 (the end), per run");
  assert.equal(seen.map((x) => [x.seed, x.completed]), [[21, 1], [21, 2], [21, 3], [22, 1], [22, 2], [22, 3]], "requests that succeeded before each cut");
  for (const x of seen) {
    assert.ok(x.a === 0 || x.a === 0xaa, JSON.stringify(x));
    if (x.completed >= 2) assert.is(x.a, 0xaa, `A was flushed before the cut: ${JSON.stringify(x)}`);
    if (x.completed < 2) assert.is(x.b, 0, `B was never written: ${JSON.stringify(x)}`);
  }
  // The budget caps the cuts of one run, always keeping the end.
  seen.length = 0;
  const capped = await crashTest({ runs: 2, seed: 21, points: "every-flush", budget: 2, workload: threeRequests(progress), check });
  assert.is(capped.cutPoints, 4);
  assert.equal(seen.map((x) => x.completed), [1, 3, 1, 3], "the first cut and the end");
  const wal = await crashTest({ workload: workloadNamed("wal")!.run, runs: 2, points: "every-flush", budget: 3 });
  assert.is(wal.cutPoints, 6);
});

test("crashTest: a cut point is exact: cut k comes just before the k-th completion, in every run", async () => {
  const progress = { completed: 0 };
  for (const cut of [1, 2, 3, 4, 9]) {
    const seen: number[] = [];
    const report = await crashTest({
      runs: 3, seed: 5, cut, workload: threeRequests(progress),
      check: async () => { seen.push(progress.completed); },
    });
    assert.equal(report.workloadErrors, [], `cut ${cut}`);
    assert.equal(seen, [1, 2, 3].map(() => Math.min(cut - 1, 3)), `cut ${cut}: requests that succeeded before it`);
  }
});

// Regression: the device once carried out a whole batch (a flush's commit included) before the
// crash test's cut point, so a cut "before the flush" came after it had taken effect. A request now
// stays in flight until it takes effect, and the cut comes before that.
test("cut points (regression): a cut just before a flush's completion may come before the flush took effect", async () => {
  const progress = { completed: 0 };
  const survived: boolean[] = [];
  const check = async ({ disk }: CrashTestContext) => { survived.push((await disk.readSectors(END_SECTOR, 8))[0] === 0xaa); };
  await crashTest({ runs: 32, seed: 1, cut: 1, workload: threeRequests(progress), check });
  assert.ok(survived.includes(false) && survived.includes(true), "cut 1 (before A's completion): A kept in some runs, lost in others");
  survived.length = 0;
  await crashTest({ runs: 32, seed: 1, cut: 2, workload: threeRequests(progress), check });
  assert.ok(survived.includes(false), `cut 2 (before the flush's completion): A kept in ${survived.filter(Boolean).length} of 32 runs, lost in none`);
});

test("crashTest: torn: true tears a cached write by sector; without it the write survives whole or not at all", async () => {
  const SIZE = 16384;
  const workload = async ({ disk, fs }: CrashTestContext): Promise<void> => {
    const buf = disk.alloc(SIZE);
    buf.fill(0xaa);
    const durable = await fs.open("t", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    await durable.write(buf, 0, SIZE, 0);
    buf.fill(0xbb);
    const cached = await fs.open("t", O_RDWR | O_DIRECT);
    await cached.write(buf, 0, SIZE, 0); // completed, in the volatile cache at the cut
  };
  for (const torn of [false, true]) {
    const kinds = { old: 0, new: 0, mixed: 0, broken: 0 };
    const report = await crashTest({
      workload, torn, runs: 16, seed: 1, cut: 1_000_000, // past the end: the cut comes after the workload
      check: async ({ fs }) => {
        const fh = await fs.open("t", O_RDONLY);
        const out = new Uint8Array(SIZE);
        await fh.read(out, 0, SIZE, 0);
        await fh.close();
        const firsts = Array.from({ length: SIZE / 512 }, (_, s) => out[s * 512]);
        const whole = out.every((byte, i) => byte === firsts[i >> 9] && (byte === 0xaa || byte === 0xbb));
        if (!whole) kinds.broken++;
        else if (firsts.every((b) => b === 0xaa)) kinds.old++;
        else if (firsts.every((b) => b === 0xbb)) kinds.new++;
        else kinds.mixed++;
      },
    });
    assert.equal(report.violations, [], `torn ${torn}`);
    assert.equal(report.workloadErrors, [], `torn ${torn}`);
    assert.is(kinds.broken, 0, `torn ${torn}: a sector mixed bytes ${JSON.stringify(kinds)}`);
    if (torn) assert.ok(kinds.mixed > 0, `torn: some runs keep part of the write ${JSON.stringify(kinds)}`);
    else assert.ok(kinds.mixed === 0 && kinds.old > 0 && kinds.new > 0, `not torn: all or nothing ${JSON.stringify(kinds)}`);
  }
  // The same with the power cut in the middle of the workload: old data written and flushed, then
  // a 16 KiB overwrite whose completion the cut (point 3) comes just before.
  const REGION = (16 << 20) / 512 - 64;
  for (const torn of [false, true]) {
    const kinds = { old: 0, new: 0, mixed: 0, broken: 0 };
    const report = await crashTest({
      torn, runs: 16, seed: 1, cut: 3,
      workload: async ({ disk }) => {
        const buf = disk.alloc(SIZE);
        buf.fill(0xaa);
        for (const bio of [{ op: "write" as const, sector: REGION, segments: [{ buf }] }, { op: "flush" as const, sector: 0, segments: [] }]) {
          if ((await disk.queue.submitBioWait(bio)) !== 0) throw new Error(`${bio.op} failed`);
        }
        const next = disk.alloc(SIZE);
        next.fill(0xbb);
        await disk.queue.submitBioWait({ op: "write", sector: REGION, segments: [{ buf: next }] });
      },
      check: async ({ disk }) => {
        const out = await disk.readSectors(REGION, SIZE / 512);
        const firsts = Array.from({ length: SIZE / 512 }, (_, s) => out[s * 512]);
        const whole = out.every((byte, i) => byte === firsts[i >> 9] && (byte === 0xaa || byte === 0xbb));
        if (!whole) kinds.broken++;
        else if (firsts.every((b) => b === 0xaa)) kinds.old++;
        else if (firsts.every((b) => b === 0xbb)) kinds.new++;
        else kinds.mixed++;
      },
    });
    assert.equal(report.workloadErrors, [], `mid-run, torn ${torn}`);
    assert.is(kinds.broken, 0, `mid-run, torn ${torn}: ${JSON.stringify(kinds)}`);
    if (torn) assert.ok(kinds.mixed > 0, `mid-run, torn: some runs keep part of the write ${JSON.stringify(kinds)}`);
    else assert.ok(kinds.mixed === 0 && kinds.old > 0 && kinds.new > 0, `mid-run, not torn: all or nothing ${JSON.stringify(kinds)}`);
  }
});

test("crashTest: bad options are EINVAL naming the option", async () => {
  const ok: CrashTestOptions = { workload: smallDsyncWorkload };
  await rejectsWith(() => crashTest({ ...ok, runs: 0 }), "EINVAL", "runs");
  await rejectsWith(() => crashTest({ ...ok, runs: 2.5 }), "EINVAL", "runs");
  await rejectsWith(() => crashTest({ ...ok, semantics: "ext9" as Semantics }), "EINVAL", "semantics ext9");
  await rejectsWith(() => crashTest({ ...ok, points: "sometimes" as "random" }), "EINVAL", "points sometimes");
  await rejectsWith(() => crashTest({ workload: "aio-dsync" as never }), "EINVAL", "workload");
  await rejectsWith(() => crashTest({ ...ok, cut: 0 }), "EINVAL", "cut");
  await rejectsWith(() => crashTest({ ...ok, timeoutMs: -1 }), "EINVAL", "timeoutMs");
});

test("crashTest: a user workload of O_DSYNC writes loses nothing under seed; one that never syncs is promised nothing", async () => {
  const report = await crashTest({ workload: smallDsyncWorkload, semantics: "seed", runs: 10, seed: 7 });
  assert.is(report.cutPoints, 10);
  assert.ok(report.acknowledgedWrites > 0, "O_DSYNC returns are promises");
  assertClean(report, "O_DSYNC pwrite");

  const unsynced = await crashTest({
    workload: async ({ disk, fs }) => {
      const direct = await fs.open("direct", O_RDWR | O_CREAT | O_DIRECT);
      const buffered = await fs.open("buffered", O_RDWR | O_CREAT);
      const buf = disk.alloc(4096);
      for (let i = 0; i < 4; i++) {
        buf.fill(i + 1);
        await direct.write(buf, 0, 4096, i * 4096);
        await buffered.write(buf, 0, 4096, i * 4096);
      }
    },
    semantics: "seed", runs: 10, seed: 7,
  });
  assert.is(unsynced.cutPoints, 10);
  assert.is(unsynced.acknowledgedWrites, 0, "nothing was promised");
  assertClean(unsynced, "no sync");
});

// ---- 3. the command line ---------------------------------------------------------------------

const cliPath = fileURLToPath(new URL("../host/cli.js", import.meta.url));

function cli(args: string[], timeout = 60000) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout });
  assert.is(result.error, undefined, String(result.error));
  return result;
}

interface JsonViolation { seed: number; cutPoint: number; file: string; offset: number; length: number; message: string; replay: string }
interface JsonReport {
  workload: string; semantics: string; runs: number; cutPoints: number; acknowledgedWrites: number; lost: number;
  violations: JsonViolation[]; workloadErrors: { seed: number; cutPoint?: number; message: string; stack?: string }[];
}
interface JsonOutput { version: number; seed: number; points: string; torn: boolean; reports: JsonReport[] }

function parseJson(stdout: string): JsonOutput {
  let out: JsonOutput;
  try {
    out = JSON.parse(stdout) as JsonOutput;
  } catch (error) {
    assert.unreachable(`--json output is not JSON: ${(error as Error).message}\n${stdout.slice(0, 2000)}`);
    throw error;
  }
  return out;
}

function checkReportShape(r: JsonReport): void {
  const where = `${r.semantics}/${r.workload}`;
  assert.is(typeof r.workload, "string", where);
  assert.ok(["legacy", "seed", "merged", "iomap"].includes(r.semantics), where);
  for (const key of ["runs", "cutPoints", "acknowledgedWrites", "lost"] as const) {
    assert.ok(Number.isInteger(r[key]) && r[key] >= 0, `${where}: ${key} ${r[key]}`);
  }
  assert.ok(Array.isArray(r.violations) && Array.isArray(r.workloadErrors), where);
  for (const v of r.violations) {
    assert.ok(Number.isInteger(v.seed) && Number.isInteger(v.cutPoint), JSON.stringify(v));
    assert.is(typeof v.file, "string", JSON.stringify(v));
    assert.ok(Number.isInteger(v.offset) && Number.isInteger(v.length), JSON.stringify(v));
    assert.is(typeof v.message, "string");
    assert.is(typeof v.replay, "string");
    assert.ok(v.replay.startsWith("dioemu crashtest "), v.replay);
  }
}

/** Table rows: [semantics, workload, runs, cut points, acknowledged writes, lost, workload errors]. */
function tableRows(stdout: string): string[][] {
  return [...stdout.matchAll(/^(legacy|seed|merged|iomap)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/gm)].map((m) => m.slice(1));
}

const HEADER = /^semantics\s+workload\s+runs\s+cut points\s+acknowledged writes\s+lost\s+workload errors\s*$/m;

test("cli: bad arguments exit 2 with a message naming them", () => {
  const cases: [string[], string][] = [
    [["crashtest", "--runs", "0"], "--runs"],
    [["crashtest", "--runs"], "--runs"],
    [["crashtest", "--workload", "bogus-workload"], "bogus-workload"],
    [["crashtest", "--semantics", "ext9"], "--semantics"],
    [["crashtest", "--points", "sometimes"], "--points"],
    [["crashtest", "--frobnicate"], "--frobnicate"],
    [["frobnicate"], "frobnicate"],
  ];
  for (const [args, words] of cases) {
    const result = cli(args);
    assert.is(result.status, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.ok(result.stderr.includes(words), `${args.join(" ")}: stderr should name ${words}:\n${result.stderr}`);
    assert.ok(!HEADER.test(result.stdout), "no table for bad arguments");
  }
});

test("cli: losses under legacy are reported with exit 0; seed exits 0 with none", () => {
  const legacy = cli(["crashtest", "--workload", "aio-dsync", "--semantics", "legacy", "--runs", "20"]);
  assert.is(legacy.status, 0, legacy.stderr);
  assert.match(legacy.stdout, HEADER);
  const rows = tableRows(legacy.stdout);
  assert.is(rows.length, 1, legacy.stdout);
  assert.equal(rows[0].slice(0, 4), ["legacy", "aio-dsync", "20", "20"]);
  assert.ok(Number(rows[0][5]) > 0, `lost in ${rows[0].join(" ")}`);
  assert.ok(legacy.stdout.includes("replay: dioemu crashtest --workload aio-dsync --semantics legacy --seed "), legacy.stdout);

  const seed = cli(["crashtest", "--workload", "aio-dsync", "--semantics", "seed", "--runs", "20"]);
  assert.is(seed.status, 0, seed.stderr);
  const seedRows = tableRows(seed.stdout);
  assert.is(seedRows.length, 1, seed.stdout);
  assert.equal(seedRows[0].slice(0, 4), ["seed", "aio-dsync", "20", "20"]);
  assert.ok(Number(seedRows[0][4]) > 0, "acknowledged writes");
  assert.is(seedRows[0][5], "0", "lost");
  assert.is(seedRows[0][6], "0", "workload errors");
});

/** Checks the table's layout: the dashes under each header, cells left-aligned under the first
 *  two and right-aligned under the others. */
function checkTableLayout(stdout: string): void {
  const lines = stdout.split("\n");
  const at = lines.findIndex((l) => HEADER.test(l));
  assert.ok(at >= 0, stdout);
  const header = lines[at];
  const columns = [...lines[at + 1].matchAll(/-+/g)].map((m) => [m.index!, m.index! + m[0].length]);
  const names = ["semantics", "workload", "runs", "cut points", "acknowledged writes", "lost", "workload errors"];
  assert.is(columns.length, names.length, lines[at + 1]);
  columns.forEach(([from, to], i) => assert.is(header.slice(from, to).trim(), names[i], header));
  const rows = lines.filter((l) => /^(legacy|seed|merged|iomap)\s+\S+\s+\d/.test(l));
  assert.ok(rows.length > 0, stdout);
  for (const row of rows) {
    columns.forEach(([from, to], i) => {
      const cell = row.slice(from, to);
      assert.ok(cell.trim().length > 0, `column ${names[i]} of "${row}"`);
      if (i < 2) assert.ok(cell[0] !== " ", `${names[i]} left-aligned in "${row}"`);
      else assert.ok(cell[cell.length - 1] !== " " && cell.length === to - from, `${names[i]} right-aligned in "${row}"`);
      if (i > 0) assert.is(row.slice(columns[i - 1][1], from).trim(), "", `gap before ${names[i]} in "${row}"`);
    });
  }
}

test("cli: the table has its header and one row per (semantics, workload)", () => {
  const result = cli(["crashtest", "--runs", "2"]);
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, HEADER);
  checkTableLayout(result.stdout);
  const rows = tableRows(result.stdout);
  const pairs = rows.map((r) => `${r[0]}/${r[1]}`);
  assert.is(rows.length, 16, result.stdout);
  assert.is(new Set(pairs).size, 16, pairs.join(" "));
  for (const s of ["legacy", "seed", "merged", "iomap"]) {
    for (const w of ["aio-dsync", "osync-append", "wal", "buffered-fsync"]) assert.ok(pairs.includes(`${s}/${w}`), `${s}/${w}`);
  }
  for (const r of rows) assert.equal(r.slice(2, 4), ["2", "2"], r.join(" "));
});

test("cli: --json reports every (workload, semantics) with typed fields, and its replay commands reproduce the violation", () => {
  const all = cli(["crashtest", "--runs", "2", "--json"]);
  assert.is(all.status, 0, all.stderr);
  const allOut = parseJson(all.stdout);
  assert.is(allOut.version, 1);
  assert.is(allOut.seed, 1);
  assert.is(allOut.points, "random");
  assert.is(allOut.torn, false);
  assert.is(allOut.reports.length, 16);
  for (const w of WORKLOADS) {
    const mine = allOut.reports.filter((r) => r.workload === w.name);
    assert.equal(mine.map((r) => r.semantics).sort(), ["iomap", "legacy", "merged", "seed"], w.name);
  }
  for (const r of allOut.reports) {
    checkReportShape(r);
    assert.equal([r.runs, r.cutPoints], [2, 2], `${r.semantics}/${r.workload}`);
  }

  const legacy = cli(["crashtest", "--workload", "aio-dsync", "--semantics", "all", "--runs", "20", "--seed", "4", "--json"]);
  assert.is(legacy.status, 0, legacy.stderr);
  const out = parseJson(legacy.stdout);
  assert.is(out.seed, 4);
  assert.equal(out.reports.map((r) => r.semantics), ["legacy", "seed", "merged", "iomap"]);
  for (const r of out.reports) checkReportShape(r);
  const bug = out.reports[0];
  assert.ok(bug.lost > 0 && bug.violations.length > 0, JSON.stringify(bug).slice(0, 500));
  for (const r of out.reports.slice(1)) assert.is(r.lost, 0, r.semantics);
  const v = bug.violations[bug.violations.length - 1];
  assert.is(v.replay, `dioemu crashtest --workload aio-dsync --semantics legacy --seed ${v.seed} --runs 1 --cut ${v.cutPoint}`);
  const replay = cli([...v.replay.replace(/^dioemu /, "").split(" "), "--json"]);
  assert.is(replay.status, 0, replay.stderr);
  const again = parseJson(replay.stdout);
  assert.is(again.reports.length, 1);
  assert.equal([again.reports[0].runs, again.reports[0].cutPoints], [1, 1]);
  const expected = bug.violations.filter((x) => x.seed === v.seed && x.cutPoint === v.cutPoint).map((x) => x.message);
  assert.ok(again.reports[0].violations.some((x) => x.message === v.message), JSON.stringify(again.reports[0].violations.map((x) => x.message)));
  assert.equal(again.reports[0].violations.map((x) => x.message), expected);
});

test("cli: --torn --json replay commands keep --torn", () => {
  const result = cli(["crashtest", "--workload", "aio-dsync", "--semantics", "legacy", "--runs", "10", "--torn", "--json"]);
  assert.is(result.status, 0, result.stderr);
  const out = parseJson(result.stdout);
  assert.is(out.torn, true);
  assert.ok(out.reports[0].violations.length > 0, "the bug shows with torn writes too");
  for (const v of out.reports[0].violations) assert.ok(v.replay.endsWith(` --cut ${v.cutPoint} --torn`), v.replay);
});

test("cli: the showcase (no arguments) exits 0 within 60 s with the table and the losses line", () => {
  const started = Date.now();
  const result = cli([], 60000);
  assert.ok(Date.now() - started < 60000);
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, HEADER);
  checkTableLayout(result.stdout);
  assert.is(tableRows(result.stdout).length, 16, result.stdout);
  const line = /Acknowledged writes lost: (\d+) under legacy \(the bug\), (\d+) under seed, merged and iomap\./.exec(result.stdout);
  assert.ok(line !== null, result.stdout);
  assert.ok(Number(line![1]) > 0, line![0]);
  assert.is(line![2], "0", line![0]);
  assert.ok(result.stdout.includes("0 under seed, merged and iomap"));
});

// ---- regressions from a review -------------------------------------------------------------------

test("oracle (regression): a write that failed before a durable write was submitted is not allowed in its place", async () => {
  const oracle = new DurabilityOracle();
  const failed = oracle.writeStart("f", 0, [pattern(1, 512)], "pwrite");
  failed(-5, false);
  const durable = oracle.writeStart("f", 0, [pattern(2, 512)], "pwrite");
  durable(512, true);
  const lost = await oracle.check(async () => pattern(1, 512));
  assert.is(lost.length, 1, "the failed write's bytes cannot stand for the durable one");
  assert.equal(await oracle.check(async () => pattern(2, 512)), []);
  // One still in flight when the durable write was submitted may have landed after it.
  const racing = new DurabilityOracle();
  const slow = racing.writeStart("f", 0, [pattern(1, 512)], "pwrite");
  racing.writeStart("f", 0, [pattern(2, 512)], "pwrite")(512, true);
  slow(-5, false);
  assert.equal(await racing.check(async () => pattern(1, 512)), []);
});

test("crashTest (regression): truncate and unlink take back what the writes before them promised", async () => {
  const report = await crashTest({
    runs: 6, seed: 3, semantics: "seed",
    async workload({ disk, fs }) {
      const fh = await fs.open("t", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      const buf = disk.alloc(8192);
      buf.fill(0x42);
      await fh.write(buf, 0, 8192, 0);
      await fh.truncate(4096);
      await fh.sync();
      const gone = await fs.open("u", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      await gone.write(buf, 0, 4096, 0);
      await gone.close();
      await fs.unlink("u");
      await fs.sync();
    },
  });
  assert.equal(report.workloadErrors, []);
  assert.equal(report.violations, []);
  assert.ok(report.acknowledgedWrites > 0);
});

test("crashTest (regression): a workload that never settles after the cut is reported, not passed over", async () => {
  const report = await crashTest({
    runs: 1, seed: 1, cut: 1, timeoutMs: 300,
    async workload({ disk }) {
      await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
      await new Promise(() => undefined); // waits for something that never comes
    },
  });
  assert.is(report.workloadErrors.length, 1);
  assert.match(report.workloadErrors[0].message, /did not finish within 300 ms after the power cut/);
});

test("crashTest (regression): a mixed workload (AIO O_SYNC, RWF_*SYNC, buffered writes, fdatasync, fdsync iocbs) loses nothing under seed, merged, iomap", async () => {
  const { RWF_DSYNC, RWF_SYNC, O_SYNC } = await import("../host/index.js");
  const workload = async ({ disk, fs, random }: CrashTestContext): Promise<void> => {
    const d = await fs.open("d", O_RDWR | O_CREAT | O_DIRECT);
    const ds = await fs.open("d", O_RDWR | O_DIRECT | O_SYNC);
    const b = await fs.open("d", O_RDWR);
    const init = disk.alloc(32 * 4096);
    init.fill(0);
    await d.write(init, 0, init.length, 0);
    await d.datasync();
    const ctx = ioSetup(16);
    let inflight = 0;
    for (let step = 0; step < 30; step++) {
      const r = random();
      const off = Math.floor(random() * 40) * 4096; // some extend the file
      const buf = disk.alloc(4096);
      buf.set(pattern(step + 2, 4096));
      if (r < 0.35) { ctx.submit([{ opcode: "pwrite", fh: ds, buf, offset: off }]); inflight++; }
      else if (r < 0.55) { ctx.submit([{ opcode: "pwrite", fh: d, buf, offset: off, rwFlags: random() < 0.5 ? RWF_DSYNC : RWF_SYNC }]); inflight++; }
      else if (r < 0.7) { ctx.submit([{ opcode: "pwrite", fh: d, buf, offset: off }]); inflight++; }
      else if (r < 0.85) await b.write(pattern(step + 100, 1000), 0, 1000, Math.floor(random() * 150000));
      else if (r < 0.92) await b.datasync();
      else { ctx.submit([{ opcode: "fdsync", fh: d }]); inflight++; }
      if (inflight >= 8) inflight -= (await ctx.getEvents(1, 16)).length;
    }
    while (inflight > 0) inflight -= (await ctx.getEvents(1, 16)).length;
    await ctx.destroy();
  };
  for (const semantics of ["seed", "merged", "iomap"] as Semantics[]) {
    const report = await crashTest({ workload, semantics, runs: 4, seed: 11, points: "every-flush", budget: 16 });
    assert.equal(report.workloadErrors, [], semantics);
    assert.equal(report.violations.slice(0, 2), [], semantics);
    assert.ok(report.acknowledgedWrites > 0, semantics);
  }
});

test("dioemu crashtest --workload takes a module of the user's, with its own check", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const dir = mkdtempSync("/tmp/dioemu-workload-");
  try {
    const index = JSON.stringify(new URL("../host/index.js", import.meta.url).href);
    const module = `${dir}/mine.mjs`;
    writeFileSync(module, `import { O_RDWR, O_CREAT, O_DIRECT, O_DSYNC, ioSetup } from ${index};
export default async function ({ disk, fs, random }) {
  const fh = await fs.open("db", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  await fh.write(disk.alloc(65536), 0, 65536, 0);
  const ctx = ioSetup(4);
  const buf = disk.alloc(4096).fill(7);
  ctx.submit([{ opcode: "pwrite", fh, buf, offset: Math.floor(random() * 16) * 4096 }]);
  await ctx.getEvents(1, 1);
  await ctx.destroy();
}
`);
    const run = spawnSync(process.execPath, [cliPath, "crashtest", "--workload", module, "--semantics", "all", "--runs", "30", "--json"], { encoding: "utf8", timeout: 60000 });
    assert.is(run.status, 0, run.stderr);
    const { reports } = JSON.parse(run.stdout) as { reports: { workload: string; semantics: string; lost: number; acknowledgedWrites: number }[] };
    assert.equal(reports.map((r) => r.workload), [module, module, module, module]);
    assert.ok(reports.find((r) => r.semantics === "legacy")!.lost > 0, "the user's workload shows the bug under legacy");
    for (const r of reports.filter((x) => x.semantics !== "legacy")) assert.is(r.lost, 0, r.semantics);
    // A check of the user's replaces the oracle's: one that always throws is a violation per cut.
    writeFileSync(`${dir}/checked.mjs`, `export { default } from ${JSON.stringify(`file://${module}`)};
export async function check() { throw new Error("the user's check saw a problem"); }
`);
    const checked = spawnSync(process.execPath, [cliPath, "crashtest", "--workload", `${dir}/checked.mjs`, "--semantics", "seed", "--runs", "2", "--json"], { encoding: "utf8", timeout: 60000 });
    assert.is(checked.status, 1, "a violation under seed fails the run");
    const report = (JSON.parse(checked.stdout) as { reports: { violations: { message: string }[] }[] }).reports[0];
    assert.is(report.violations.length, 2);
    assert.match(report.violations[0].message, /the user's check saw a problem/);
    const missing = spawnSync(process.execPath, [cliPath, "crashtest", "--workload", `${dir}/absent.mjs`], { encoding: "utf8" });
    assert.is(missing.status, 2);
    assert.match(missing.stderr, /cannot load the workload module/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
