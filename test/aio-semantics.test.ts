// The O_(D)SYNC AIO direct-write contract per mount semantics (spec 2.12-2.15, 3, 4, 6, 7; DESIGN.md
// semantics table): where completion runs (submitter, bio completion, the superblock's queue), in
// which order end_io / i_dio_count / sync / event happen, when the flush goes out relative to the
// data, the seed's queue and sync-work record, iomap's FUA write-through, errors, unmount, and what a
// power cut after the event keeps (assertions 28, 30-42, 54, 57, 58, 62, 63).
//
// Timelines: a trace (Q/D/C records) and the completion steps (Filesystem.onDioStep) are both
// recorded synchronously, so each step is stamped with the trace's length at that moment (`at`): a
// trace record with index < at happened before the step.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { FLUSH_WORDS, type FlushWorker, type WorkQueue } from "../host/workqueue.js";
import {
  Disk, DioError, ioSetup, mkfs, mount, O_CREAT, O_DIRECT, O_DSYNC, O_RDONLY, O_RDWR, O_SYNC,
  type AioContext, type FileHandle, type Filesystem, type IoEvent, type QueueLimits, type Semantics, type Trace, type TraceRecord,
} from "../host/index.js";

const OLD = 0x11;
const NEW = 0x77;
const BLOCK = 4096;

interface Env { disk: Disk; fs: Filesystem; fh: FileHandle }
interface SetupOptions {
  semantics: Semantics;
  /** Flags of the handle under test, besides O_RDWR | O_DIRECT (default O_DSYNC). */
  flags?: number;
  seed?: number;
  executor?: "inline" | "worker";
  blocks?: number;
  fua?: boolean;
  sync?: boolean;
  legacyXfs?: boolean;
  latency?: { writeMin?: number; writeMax?: number; flushMin?: number; flushMax?: number };
  limits?: Partial<QueueLimits>;
  /** Commit the prefill (default true): its blocks' allocation is then durable metadata. */
  commit?: boolean;
  /** "turn" for a test that acts between device steps by awaiting event-loop turns. */
  completions?: "drain" | "turn";
}

/**
 * A file of `blocks` blocks holding OLD, written through a plain O_DIRECT handle (so that no dsync
 * write has touched the superblock's queue yet) and, by default, committed; then the handle under
 * test, so that writes inside the file overwrite without extending it.
 */
async function setup(o: SetupOptions): Promise<Env> {
  const disk = await Disk.create({
    size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, seed: o.seed ?? 1, executor: o.executor ?? "inline",
    fua: o.fua, latency: o.latency, limits: o.limits, completions: o.completions,
  });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: o.semantics, sync: o.sync, legacyXfs: o.legacyXfs });
  const plain = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const fill = disk.alloc((o.blocks ?? 8) * BLOCK);
  fill.fill(OLD);
  await plain.write(fill, 0, fill.length, 0);
  disk.free(fill);
  await plain.close();
  if (o.commit !== false) await fs.sync();
  const fh = await fs.open("f", O_RDWR | O_DIRECT | (o.flags ?? O_DSYNC));
  return { disk, fs, fh };
}

interface Seen { step: string; at: number; offset?: number; res?: number; dioCount: number }

/** Starts a trace and a step log stamped with the trace's length and the file's i_dio_count. */
function observe(env: Env): { trace: Trace; steps: Seen[] } {
  const trace = env.disk.startTrace();
  const steps: Seen[] = [];
  env.fs.onDioStep = (s) => steps.push({ step: s.step, at: trace.peek().length, offset: s.offset, res: s.res, dioCount: env.fh.inode.dioCount });
  return { trace, steps };
}

/** Records every generic_write_sync() call: count (3rd argument), datasync (4th), and whether it is
 *  the caller's own sync (it alone may wait for the inode lock: 7th). */
function spySync(fs: Filesystem): { count: number; datasync: boolean; caller: boolean }[] {
  const calls: { count: number; datasync: boolean; caller: boolean }[] = [];
  const orig = fs.syncRange.bind(fs);
  fs.syncRange = async (...a: Parameters<Filesystem["syncRange"]>) => {
    calls.push({ count: a[2], datasync: a[3], caller: a[6] === true });
    return orig(...a);
  };
  return calls;
}

/** The disk sector of file block `index` (from the Q record of a direct read of it). */
async function sectorOf(env: Env, index: number): Promise<number> {
  const t = env.disk.startTrace();
  const b = env.disk.alloc(BLOCK);
  await env.fh.read(b, 0, BLOCK, index * BLOCK);
  env.disk.free(b);
  const q = t.stop().find((r) => r.action === "Q" && r.op === "read");
  assert.ok(q !== undefined, "the read went to the device");
  return q.sector;
}

function buffer(env: Env, bytes: number, fill = NEW): Uint8Array {
  const b = env.disk.alloc(bytes);
  b.fill(fill);
  return b;
}

/** Submits one pwrite and waits for its event; `at` is the trace length when the event was reaped
 *  (the reaper runs in a microtask right after the post, before the device's next completion). */
async function aioWrite(env: Env, ctx: AioContext, trace: Trace | undefined, offset: number, bytes = BLOCK): Promise<{ ev: IoEvent; at: number }> {
  ctx.submit([{ opcode: "pwrite", fh: env.fh, buf: buffer(env, bytes), offset }]);
  const [ev] = await ctx.getEvents(1, 1);
  return { ev, at: trace?.peek().length ?? -1 };
}

const names = (steps: Seen[], offset?: number): string[] =>
  steps.filter((s) => offset === undefined || s.offset === offset).map((s) => s.step);
const count = (steps: Seen[], step: string): number => steps.filter((s) => s.step === step).length;
const isFlush = (r: TraceRecord): boolean => r.op === "flush";
const flushDs = (recs: readonly TraceRecord[]): number[] => recs.flatMap((r, i) => (r.action === "D" && isFlush(r) ? [i] : []));
const dataWrites = (recs: readonly TraceRecord[], action: "D" | "C", from: number, sectors: number): number[] =>
  recs.flatMap((r, i) => (r.action === action && r.op === "write" && r.sector >= from && r.sector < from + sectors ? [i] : []));

async function readBack(disk: Disk, semantics: Semantics, offset: number, bytes: number): Promise<Uint8Array> {
  const fs = await mount(disk, { semantics });
  const f = await fs.open("f", O_RDONLY | O_DIRECT);
  const back = disk.alloc(bytes);
  await f.read(back, 0, bytes, offset);
  return back;
}

// ---- seed patch specifics (31-36) --------------------------------------------------------------

test("(31) seed: an O_DSYNC AIO overwrite's event comes after a flush dispatched once every data write of the request completed", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    // maxSectors 8: the 16 KiB write goes out as four device writes that complete in any order.
    const env = await setup({ semantics: "seed", seed, limits: { maxSectors: 8 }, latency: { writeMin: 1, writeMax: 12 } });
    const from = await sectorOf(env, 2);
    const { trace, steps } = observe(env);
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, trace, 2 * BLOCK, 4 * BLOCK);
    const recs = trace.stop();
    assert.is(ev.res, 4 * BLOCK, `seed ${seed}`);
    const event = steps.find((s) => s.step === "event");
    assert.ok(event !== undefined, `seed ${seed}: the event was posted by the completion path`);
    const cs = dataWrites(recs, "C", from, 32);
    assert.is(dataWrites(recs, "D", from, 32).length, 4, `seed ${seed}: four data writes`);
    assert.is(cs.length, 4, `seed ${seed}`);
    const lastC = Math.max(...cs);
    assert.ok(lastC < event.at, `seed ${seed}: every data write completed before the event`);
    const flushD = flushDs(recs).find((i) => i > lastC && i < event.at);
    assert.ok(flushD !== undefined, `seed ${seed}: a flush was dispatched after the last data write completed and before the event`);
    const flushC = recs.findIndex((r, i) => i > flushD && i < event.at && r.action === "C" && isFlush(r) && r.error === undefined);
    assert.ok(flushC >= 0, `seed ${seed}: and it completed, successfully, before the event`);
    await ctx.destroy();
    await env.disk.close();
  }
});

for (const semantics of ["seed", "merged"] as const) {
  test(`(32) ${semantics}: the install race: eight first writers on a fresh superblock install exactly one queue, the rest are discarded, all writes go through it`, async () => {
    const env = await setup({ semantics, blocks: 8 });
    assert.is(env.fs.dioQueue, null, "no dsync write has needed the queue yet");
    const { steps } = observe(env);
    let installed: unknown = null;
    const log = env.fs.onDioStep!;
    env.fs.onDioStep = (s) => {
      if (s.step === "queue_installed") installed = env.fs.dioQueue;
      log(s);
    };
    const ctx = ioSetup(8);
    const bufs = Array.from({ length: 8 }, (_, i) => buffer(env, BLOCK, 0x40 + i));
    assert.is(ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite" as const, fh: env.fh, buf, offset: i * BLOCK }))), 8);
    const events = await ctx.getEvents(8, 8);
    assert.equal(events.map((e) => e.res), Array(8).fill(BLOCK));
    const st = env.fs.dioStats;
    assert.ok(st.queuesCreated >= 2, `the race was exercised: ${st.queuesCreated} queues allocated`);
    assert.is(count(steps, "queue_installed"), 1, "exactly one queue installed");
    assert.is(count(steps, "queue_created"), st.queuesCreated);
    assert.is(st.queuesDiscarded, st.queuesCreated - 1, "every other copy was discarded");
    assert.is(count(steps, "queue_discarded"), st.queuesDiscarded);
    const queue = env.fs.dioQueue!;
    assert.ok(queue !== null && queue === installed, "the superblock's queue is the one installed");
    assert.is(queue.name, semantics === "seed" ? "dio-sync" : `dio/${env.fs.id}`);
    assert.is(queue.maxActive, semantics === "seed" ? 1 : 256);
    assert.is(queue.stats.queued, 8, "all eight completions ran on the installed queue, none on a discarded one");
    const back = env.disk.alloc(8 * BLOCK);
    await env.fh.read(back, 0, back.length, 0);
    for (let i = 0; i < 8; i++) assert.ok(back.subarray(i * BLOCK, (i + 1) * BLOCK).every((x) => x === 0x40 + i), `block ${i}`);
    await ctx.destroy();
    await env.disk.close();
  });
}

test("(33) seed: a failed queue or sync-work allocation fails the O_DSYNC write with ENOMEM before any bio", async () => {
  for (const hook of ["failQueueAlloc", "failWorkAlloc"] as const) {
    const env = await setup({ semantics: "seed" });
    const { trace, steps } = observe(env);
    env.fs[hook] = 1;
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, trace, BLOCK);
    assert.is(ev.res, -12, `${hook}: the event carries -ENOMEM`);
    assert.ok(!trace.peek().some((r) => r.op === "write"), `${hook}: no write bio was queued`);
    assert.is(count(steps, "work_queued"), 0);
    assert.is(env.fh.inode.dioCount, 0, `${hook}: i_dio_count never went up`);
    // The synchronous path fails the same way.
    env.fs[hook] = 1;
    try {
      await env.fh.write(buffer(env, BLOCK), 0, BLOCK, 0);
      assert.unreachable(`${hook}: the synchronous write succeeded`);
    } catch (error) {
      assert.instance(error, DioError);
      assert.is((error as DioError).code, "ENOMEM");
    }
    assert.ok(!trace.stop().some((r) => r.op === "write"), `${hook}: still no write bio`);
    if (hook === "failQueueAlloc") assert.is(env.fs.dioQueue, null, "no queue was installed");
    const back = env.disk.alloc(2 * BLOCK);
    await env.fh.read(back, 0, back.length, 0);
    assert.ok(back.every((x) => x === OLD), `${hook}: nothing was written`);
    // The hook is used up: the next write goes through.
    assert.is((await aioWrite(env, ctx, undefined, BLOCK)).ev.res, BLOCK);
    await ctx.destroy();
    await env.disk.close();
  }
});

test("(34) seed: a synchronous O_DSYNC direct write allocates and frees a sync-work record without queueing it, and the caller syncs once", async () => {
  const env = await setup({ semantics: "seed" });
  const from = await sectorOf(env, 1);
  const { trace, steps } = observe(env);
  const calls = spySync(env.fs);
  const syncs = env.fs.dioStats.syncs;
  assert.is((await env.fh.write(buffer(env, BLOCK), 0, BLOCK, BLOCK)).bytesWritten, BLOCK);
  const recs = trace.stop();
  assert.is(count(steps, "work_alloc"), 1);
  assert.is(count(steps, "work_free"), 1);
  assert.ok(names(steps).indexOf("work_alloc") < names(steps).indexOf("work_free"));
  assert.is(count(steps, "work_queued"), 0, "the record was never queued");
  assert.is(env.fs.dioStats.syncs, syncs + 1, "exactly one sync");
  assert.equal(calls, [{ count: BLOCK, datasync: true, caller: true }], "the caller's own sync, over the write");
  const flushes = flushDs(recs);
  assert.is(flushes.length, 1, "one flush");
  assert.ok(flushes[0] > Math.max(...dataWrites(recs, "C", from, 8)), "after the data completed");
  await env.disk.close();
});

test("(35) seed: an O_DSYNC write that sets up 0 bytes (AIO and fh.write) runs no sync", async () => {
  const env = await setup({ semantics: "seed" });
  const { trace, steps } = observe(env);
  const syncs = env.fs.dioStats.syncs;
  const empty = env.disk.alloc(BLOCK).subarray(0, 0);
  const ctx = ioSetup(4);
  ctx.submit([{ opcode: "pwrite", fh: env.fh, buf: empty, offset: BLOCK }]);
  const [ev] = await ctx.getEvents(1, 1);
  assert.is(ev.res, 0);
  assert.is((await env.fh.write(empty, 0, 0, BLOCK)).bytesWritten, 0);
  const recs = trace.stop();
  assert.is(env.fs.dioStats.syncs, syncs, "no sync ran");
  assert.is(recs.filter(isFlush).length, 0, "no flush");
  assert.is(recs.length, 0, "no IO at all");
  assert.is(count(steps, "work_queued"), 0);
  assert.is(count(steps, "work_alloc"), count(steps, "work_free"), "every record allocated was freed");
  await ctx.destroy();
  await env.disk.close();
});

/** Four O_DSYNC AIO overwrites at once; the sync_start / sync_end / work_queued steps. */
async function fourSyncs(semantics: Semantics) {
  const env = await setup({ semantics, latency: { writeMin: 1, writeMax: 8, flushMin: 4, flushMax: 10 } });
  const { trace, steps } = observe(env);
  const ctx = ioSetup(8);
  ctx.submit([0, 1, 2, 3].map((i) => ({ opcode: "pwrite" as const, fh: env.fh, buf: buffer(env, BLOCK), offset: i * BLOCK })));
  const events = await ctx.getEvents(4, 4);
  assert.equal(events.map((e) => e.res), [BLOCK, BLOCK, BLOCK, BLOCK]);
  const recs = trace.stop();
  const queue = env.fs.dioQueue!;
  await ctx.destroy();
  await env.disk.close();
  return { steps, recs, queue };
}

test("(36) seed: O_DSYNC AIO completions on one superblock run their syncs one after the other (max_active 1)", async () => {
  const { steps, recs, queue } = await fourSyncs("seed");
  const syncSteps = steps.filter((s) => s.step === "sync_start" || s.step === "sync_end");
  assert.is(syncSteps.length, 8);
  for (let i = 0; i < syncSteps.length; i += 2) {
    assert.is(syncSteps[i].step, "sync_start", `sync ${i / 2} starts only after the previous one ended`);
    assert.is(syncSteps[i + 1].step, "sync_end");
    assert.is(syncSteps[i + 1].offset, syncSteps[i].offset, "and ends before another starts");
  }
  // Work was queued while a sync ran: the serialisation was the queue's, not the timing's.
  const first = steps.findIndex((s) => s.step === "sync_start");
  const firstEnd = steps.findIndex((s) => s.step === "sync_end");
  assert.ok(steps.slice(first, firstEnd).some((s) => s.step === "work_queued"), "another completion waited behind the first sync");
  // Each sync's flush went out inside its own start..end window, after the previous one ended.
  for (let i = 0; i < syncSteps.length; i += 2) {
    assert.ok(flushDs(recs).some((d) => d >= syncSteps[i].at && d < syncSteps[i + 1].at), `sync ${i / 2} issued its flush`);
  }
  assert.is(queue.name, "dio-sync");
  assert.is(queue.maxActive, 1);
  assert.is(queue.stats.maxRunning, 1);
});

test("(36, contrast) merged: several O_DSYNC AIO completions sync at once in the dio/<id> queue", async () => {
  const { steps, queue } = await fourSyncs("merged");
  assert.is(queue.maxActive, 256);
  let running = 0;
  let most = 0;
  for (const s of steps) {
    if (s.step === "sync_start") most = Math.max(most, ++running);
    if (s.step === "sync_end") running--;
  }
  // Deterministic with the inline executor and seed 1: the completions overlap.
  assert.ok(most > 1, `syncs overlapped (${most} at once)`);
  assert.ok(queue.stats.maxRunning > 1, `maxRunning ${queue.stats.maxRunning}`);
});

// ---- 3.11+ specifics (37-42) -------------------------------------------------------------------

test("(37) merged: an O_DSYNC AIO overwrite completes in the dio/<id> queue: end_io, dio_end, sync, then the event", async () => {
  const env = await setup({ semantics: "merged" });
  const from = await sectorOf(env, 3);
  const { trace, steps } = observe(env);
  const ctx = ioSetup(4);
  const { ev } = await aioWrite(env, ctx, trace, 3 * BLOCK);
  const recs = trace.stop();
  assert.is(ev.res, BLOCK);
  const queue = env.fs.dioQueue!;
  assert.is(queue.name, `dio/${env.fs.id}`);
  assert.is(queue.stats.queued, 1, "the completion ran on the superblock's queue");
  const mine = steps.filter((s) => s.offset === 3 * BLOCK);
  assert.equal(mine.map((s) => s.step), ["work_queued", "end_io", "dio_end", "sync_start", "sync_end", "event"]);
  const at = (step: string) => mine.find((s) => s.step === step)!;
  assert.is(at("event").dioCount, 0, "i_dio_count had dropped when the event was posted");
  assert.is(at("event").res, BLOCK);
  const lastC = Math.max(...dataWrites(recs, "C", from, 8));
  assert.ok(lastC < at("work_queued").at, "queued once the data completed");
  assert.ok(flushDs(recs).some((d) => d > lastC && d >= at("sync_start").at && d < at("sync_end").at), "the sync flushed after the data");
  await ctx.destroy();
  await env.disk.close();
});

test("(38) a synchronous dsync direct write is never deferred: the caller syncs once, after the data (merged, seed, iomap O_SYNC)", async () => {
  const cases: [Semantics, number][] = [["merged", O_DSYNC], ["seed", O_DSYNC], ["iomap", O_SYNC]];
  for (const [semantics, flags] of cases) {
    const env = await setup({ semantics, flags });
    const from = await sectorOf(env, 2);
    const { trace, steps } = observe(env);
    const calls = spySync(env.fs);
    const syncs = env.fs.dioStats.syncs;
    assert.is((await env.fh.write(buffer(env, BLOCK), 0, BLOCK, 2 * BLOCK)).bytesWritten, BLOCK);
    const recs = trace.stop();
    assert.is(count(steps, "work_queued"), 0, `${semantics}: no deferral`);
    assert.is(env.fs.dioStats.syncs, syncs + 1, `${semantics}: one sync`);
    assert.equal(calls.map((c) => [c.count, c.caller]), [[BLOCK, true]], `${semantics}: the caller's, with the count written`);
    const flushes = flushDs(recs);
    assert.is(flushes.length, 1, `${semantics}: one flush`);
    assert.ok(flushes[0] > Math.max(...dataWrites(recs, "C", from, 8)), `${semantics}: after the data completed`);
    assert.ok(!recs.some((r) => r.flags.includes("FUA") && r.sector === from), `${semantics}: no FUA data write`);
    await env.disk.close();
  }
});

test("(39) merged: an AIO overwrite without O_DSYNC completes inline, with no queue and no flush", async () => {
  const env = await setup({ semantics: "merged", flags: 0 });
  const { trace, steps } = observe(env);
  const ctx = ioSetup(4);
  const { ev } = await aioWrite(env, ctx, trace, BLOCK);
  assert.is(ev.res, BLOCK);
  assert.is(count(steps, "work_queued"), 0);
  assert.equal(names(steps, BLOCK), ["end_io", "dio_end", "event"]);
  assert.is(trace.stop().filter(isFlush).length, 0, "no flush");
  assert.is(env.fs.dioQueue, null, "no queue was even created");
  await ctx.destroy();
  await env.disk.close();
});

test("(39) iomap: an AIO write on a file with cached pages is deferred to the queue; without them it completes inline", async () => {
  for (const cached of [false, true]) {
    const env = await setup({ semantics: "iomap", flags: 0 });
    if (cached) {
      // A buffered read of block 5 leaves a page in the cache (outside the range written below,
      // whose pages the direct write invalidates before it is submitted).
      const buffered = await env.fs.open("f", O_RDONLY);
      await buffered.read(new Uint8Array(BLOCK), 0, BLOCK, 5 * BLOCK);
      assert.ok(env.fs.pages.pagesOf(env.fh.inode.ino).length > 0, "a page is cached");
    }
    const { trace, steps } = observe(env);
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, trace, BLOCK);
    assert.is(ev.res, BLOCK);
    assert.equal(names(steps, BLOCK), cached ? ["work_queued", "end_io", "dio_end", "event"] : ["end_io", "dio_end", "event"], `cached ${cached}`);
    assert.is(trace.stop().filter(isFlush).length, 0, `cached ${cached}: no sync, so no flush`);
    await ctx.destroy();
    await env.disk.close();
  }
});

test("(39) iomap: pages cached while the AIO write is in flight make its completion deferred (4.14 checks nrpages at completion)", async () => {
  // Stepping per event-loop turn: the buffered read below runs while the write is in flight.
  const env = await setup({ semantics: "iomap", flags: 0, latency: { writeMin: 60, writeMax: 60 }, completions: "turn" });
  const { trace, steps } = observe(env);
  const ctx = ioSetup(4);
  ctx.submit([{ opcode: "pwrite", fh: env.fh, buf: buffer(env, BLOCK), offset: BLOCK }]);
  // Once the write's bio is out (the inode lock released), a buffered read caches block 5.
  while (!trace.peek().some((r) => r.action === "D" && r.op === "write")) await new Promise((r) => setImmediate(r));
  const buffered = await env.fs.open("f", O_RDONLY);
  await buffered.read(new Uint8Array(BLOCK), 0, BLOCK, 5 * BLOCK);
  assert.ok(!trace.peek().some((r) => r.action === "C" && r.op === "write"), "the write is still in flight");
  assert.ok(env.fs.pages.pagesOf(env.fh.inode.ino).length > 0, "the file has a cached page");
  const [ev] = await ctx.getEvents(1, 1);
  assert.is(ev.res, BLOCK);
  assert.equal(names(steps, BLOCK), ["work_queued", "end_io", "dio_end", "event"],
    "the file had cached pages when the write completed: its completion (the page invalidation) belongs in the queue");
  await ctx.destroy();
  await env.disk.close();
});

test("(40) a queued AIO never makes the caller sync: no submit_sync, no generic_write_sync with a negative count (seed, merged, iomap; legacy as the contrast)", async () => {
  const cases: [Semantics, number][] = [["seed", O_DSYNC], ["merged", O_DSYNC], ["iomap", O_SYNC], ["legacy", O_DSYNC]];
  for (const [semantics, flags] of cases) {
    const env = await setup({ semantics, flags });
    const { steps } = observe(env);
    const calls = spySync(env.fs);
    const ctx = ioSetup(8);
    ctx.submit([0, 2, 4].map((i) => ({ opcode: "pwrite" as const, fh: env.fh, buf: buffer(env, BLOCK), offset: i * BLOCK })));
    const events = await ctx.getEvents(3, 3);
    assert.equal(events.map((e) => e.res), [BLOCK, BLOCK, BLOCK], semantics);
    if (semantics === "legacy") {
      assert.is(count(steps, "submit_sync"), 3, "legacy: the caller synced each queued write at submission");
      assert.equal(calls.map((c) => c.count), [-529, -529, -529], "legacy: with count -EIOCBQUEUED");
    } else {
      assert.is(count(steps, "submit_sync"), 0, semantics);
      assert.ok(calls.every((c) => c.count > 0 && !c.caller), `${semantics}: only the queue's syncs, each over the write (${JSON.stringify(calls)})`);
      assert.is(calls.length, 3, `${semantics}: one per write`);
    }
    await ctx.destroy();
    await env.disk.close();
  }
});

for (const semantics of ["seed", "merged"] as const) {
  test(`(41) ${semantics}: a failing flush turns a successful O_DSYNC AIO write's event into the flush error; a failed write keeps its own -EIO`, async () => {
    const run = async (faults: { write?: boolean; flushErrno?: number }) => {
      const env = await setup({ semantics });
      const sector = await sectorOf(env, 1);
      const { trace } = observe(env);
      if (faults.write === true) env.disk.injectFault({ op: "write", sector, sectors: 8 });
      if (faults.flushErrno !== undefined) env.disk.injectFault({ op: "flush", errno: faults.flushErrno });
      const ctx = ioSetup(4);
      const { ev } = await aioWrite(env, ctx, trace, BLOCK);
      const recs = trace.stop();
      await ctx.destroy();
      await env.disk.close();
      return { res: ev.res, flushErrors: recs.filter((r) => r.action === "C" && isFlush(r) && r.error !== undefined).map((r) => r.error) };
    };
    const clean = await run({});
    assert.is(clean.res, BLOCK);
    const flushFails = await run({ flushErrno: 5 });
    assert.equal(flushFails, { res: -5, flushErrors: [-5] }, "the sync's -EIO replaced the count");
    const flushFailsOther = await run({ flushErrno: 28 });
    assert.equal(flushFailsOther, { res: -28, flushErrors: [-28] }, "the sync's own error replaced the count");
    const writeFails = await run({ write: true });
    assert.is(writeFails.res, -5, "a failed data write is -EIO");
    const both = await run({ write: true, flushErrno: 28 });
    assert.equal(both, { res: -5, flushErrors: [-28] }, "the flush failed too (-ENOSPC), but the write's -EIO stands");
  });
}

test("(41) seed, merged: after a failed queued O_DSYNC write the worker's generic_write_sync gets the bytes transferred, not the error", async () => {
  // 3.11 dio_complete(): generic_write_sync(file, offset, transferred) whatever ret is (spec 2.14.5,
  // 4); the seed's generic_dio_end_io() stores len = bytes (transferred), ret separately (spec 3.3).
  const counts: Record<string, number[]> = {};
  for (const semantics of ["seed", "merged"] as const) {
    const env = await setup({ semantics });
    env.disk.injectFault({ op: "write", sector: await sectorOf(env, 1), sectors: 8 });
    const calls = spySync(env.fs);
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, undefined, BLOCK);
    assert.is(ev.res, -5, semantics);
    counts[semantics] = calls.map((c) => c.count);
    await ctx.destroy();
    await env.disk.close();
  }
  assert.equal(counts, { seed: [BLOCK], merged: [BLOCK] }, "the count given to the queue's sync, per semantics");
});

/**
 * The flush thread of a queue (worker executor), as soon as the queue starts one: `get()` returns
 * it even after destroy_workqueue() dropped the queue's own pointer.
 */
function trackFlusher(queue: WorkQueue): { get(): Promise<FlushWorker> | null } {
  let seen: Promise<FlushWorker> | null = queue.flusher;
  const flush = queue.flush.bind(queue);
  queue.flush = () => {
    const status = flush();
    seen = queue.flusher ?? seen;
    return status;
  };
  return { get: () => seen };
}

/**
 * Waits up to 1 s for a stopping flush thread to exit. If it has not, wakes it the way stop() meant
 * to (so that this file does not hang on the bug: the thread is ref'd while it stops) and returns
 * true: the thread missed its stop.
 */
async function threadHung(start: Promise<FlushWorker> | null): Promise<boolean> {
  if (start === null) return false;
  const thread = (await start) as unknown as { exited: Promise<void>; words: Int32Array };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = await Promise.race([thread.exited.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), 1000); })]);
  clearTimeout(timer);
  if (hung) {
    Atomics.add(thread.words, FLUSH_WORDS.DOORBELL, 1);
    Atomics.notify(thread.words, FLUSH_WORDS.DOORBELL);
    await thread.exited;
  }
  return hung;
}

const HUNG = "the flush thread missed its stop (STOP set and notified while it was not yet in Atomics.wait) and never exits";

for (const executor of ["inline", "worker"] as const) {
  test(`(42) unmount (${executor} executor): evict_inodes, then the queue is drained and destroyed, then put_super; the pointer reads null`, async () => {
    const hangs: string[] = [];
    for (const semantics of ["seed", "merged"] as const) {
      // Unmount while completions are still to come (the queue must drain them first), or right
      // after the last event was reaped.
      for (const when of ["pending", "reaped"] as const) {
        for (let seed = 1; seed <= (executor === "worker" ? 3 : 1) && hangs.length === 0; seed++) {
          const label = `${semantics}, ${when}, seed ${seed}`;
          // Stepping per event-loop turn: the test polls by turns for the writes in flight.
          const env = await setup({ semantics, executor, seed, completions: "turn" });
          const { steps } = observe(env);
          const ctx = ioSetup(8);
          ctx.submit([0, 1, 2, 3].map((i) => ({ opcode: "pwrite" as const, fh: env.fh, buf: buffer(env, BLOCK), offset: i * BLOCK })));
          while (env.fh.inode.dioCount === 0) await new Promise((r) => setImmediate(r));
          const queue = env.fs.dioQueue!;
          assert.ok(queue !== null, label);
          const flusher = trackFlusher(queue);
          const early = when === "reaped" ? await ctx.getEvents(4, 4) : [];
          const unmounted = env.fs.unmount();
          if (executor === "worker") {
            // destroy_workqueue() stops the thread once the queue drained; wait for that.
            while (env.fs.dioQueue !== null || queue.busy > 0) await new Promise((r) => setImmediate(r));
            if (await threadHung(flusher.get())) hangs.push(label);
          }
          await unmounted;
          const order = names(steps).filter((s) => ["evict_inodes", "queue_destroyed", "put_super"].includes(s));
          assert.equal(order, ["evict_inodes", "queue_destroyed", "put_super"], label);
          const events = [...early, ...(await ctx.getEvents(4 - early.length, 4, 1000))];
          assert.equal(events.map((e) => e.res), [BLOCK, BLOCK, BLOCK, BLOCK], `${label}: every write completed`);
          const lastEvent = names(steps).lastIndexOf("event");
          assert.ok(lastEvent >= 0 && lastEvent < names(steps).indexOf("queue_destroyed"), `${label}: every event was posted before the queue went`);
          assert.is(env.fs.dioQueue, null, `${label}: the pointer reads null`);
          assert.is(queue.busy, 0);
          if (executor === "worker") {
            assert.ok(flusher.get() !== null, `${label}: the flushes ran on the Worker thread`);
            assert.is(queue.flusher, null, `${label}: the flush thread was stopped`);
          }
          await ctx.destroy();
          await env.disk.close();
        }
      }
    }
    assert.equal(hangs, [], `unmount hung in destroy_workqueue: ${HUNG}`);
  });
}

/** The script a child process runs: O_DSYNC AIO with the worker executor, unmount, close. */
function childScript(semantics: string, esm: boolean): string {
  const index = JSON.stringify(new URL("../host/index.js", import.meta.url).href);
  const body = `
    const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor: "worker" });
    await mkfs(disk, { blockSize: 4096, inodes: 16 });
    const fs = await mount(disk, { semantics: ${JSON.stringify(semantics)} });
    const plain = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
    const buf = disk.alloc(4 * 4096);
    await plain.write(buf, 0, buf.length, 0);
    await fs.sync();
    const fh = await fs.open("f", O_RDWR | O_DIRECT | O_DSYNC);
    const ctx = ioSetup(8);
    buf.fill(7);
    ctx.submit([0, 1, 2, 3].map((i) => ({ opcode: "pwrite", fh, buf: buf.subarray(i * 4096, (i + 1) * 4096), offset: i * 4096 })));
    const events = await ctx.getEvents(4, 4);
    if (events.some((e) => e.res !== 4096)) { console.log("bad events " + events.map((e) => e.res)); process.exit(3); }
    const flusher = fs.dioQueue.flusher;
    if (flusher === null || (await flusher).flushes === 0) { console.log("the worker flushed nothing"); process.exit(4); }
    await ctx.destroy();
    // A watchdog for unmount alone (cleared once it returns): the exit itself is left to Node.
    const watchdog = setTimeout(() => { console.log("unmount did not return in 3 s"); process.exit(5); }, 3000);
    await fs.unmount();
    clearTimeout(watchdog);
    await disk.close();
    console.log("unmounted");`;
  const names = "{ Disk, mkfs, mount, ioSetup, O_CREAT, O_DIRECT, O_DSYNC, O_RDWR }";
  return esm ? `import ${names} from ${index};\n${body}` : `import(${index}).then(async (${names}) => {${body}\n});`;
}

function runChild(args: string[], label: string): void {
  const started = Date.now();
  const child = spawnSync(process.execPath, args, { timeout: 20000, encoding: "utf8" });
  const took = Date.now() - started;
  assert.is(child.signal, null, `${label}: killed by ${child.signal} after ${took} ms (still running at the timeout) ${child.stdout} ${child.stderr}`);
  assert.is(child.status, 0, `${label}: exit ${child.status}: ${child.stdout} ${child.stderr}`);
  assert.ok(child.stdout.includes("unmounted"), child.stdout);
  assert.ok(took < 10000, `${label}: exited in ${took} ms`);
}

test("(42) with the worker executor, a `node -e` process that did O_DSYNC AIO and unmounted exits on its own", () => {
  for (const semantics of ["seed", "merged"]) runChild(["-e", childScript(semantics, false)], semantics);
});

test("worker executor (regression): under `node --input-type=module -e` the flush thread starts (it does not inherit --input-type) and O_DSYNC AIO writes succeed", () => {
  runChild(["--input-type=module", "-e", childScript("seed", true)], "seed, --input-type=module");
});

test("worker executor (regression): destroying the queue right after its last flush was served stops the flush thread (the stop must not be a lost wake-up)", async () => {
  let hung = 0;
  let tries = 0;
  for (; tries < 10 && hung === 0; tries++) {
    const env = await setup({ semantics: "merged", executor: "worker", seed: tries + 1 });
    const queue = await env.fs.initDioQueue("test");
    assert.is(await queue.flush(), 0);
    const flusher = queue.flusher;
    assert.ok(flusher !== null, "the flush ran on the Worker thread");
    // What unmount does once the queue drained, right after the last item's flush completed.
    env.fs.dioQueue = null;
    const destroyed = queue.destroy();
    if (await threadHung(flusher)) hung++;
    await destroyed;
    await env.disk.close();
  }
  assert.is(hung, 0, `try ${tries}: ${HUNG}`);
});

// ---- ordering of event and i_dio_count, the submitter's completion (28, 30) -----------------------

test("(30) event vs i_dio_count drop of a queued AIO write: legacy and seed post first (3.7 order), merged and iomap drop first", async () => {
  const cases: [Semantics, number, boolean][] = [
    ["legacy", O_DSYNC, true], ["seed", O_DSYNC, true], ["seed", 0, true], ["merged", O_DSYNC, false], ["merged", 0, false],
    ["iomap", O_SYNC, false], ["iomap", O_DSYNC, false],
  ];
  for (const [semantics, flags, eventFirst] of cases) {
    const env = await setup({ semantics, flags });
    const { trace, steps } = observe(env);
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, trace, BLOCK);
    assert.is(ev.res, BLOCK);
    const mine = names(steps, BLOCK);
    const label = `${semantics} ${flags === 0 ? "plain" : flags === O_SYNC ? "O_SYNC" : "O_DSYNC"}`;
    assert.ok(mine.includes("event") && mine.includes("dio_end"), `${label}: ${mine}`);
    assert.is(mine.indexOf("event") < mine.indexOf("dio_end"), eventFirst, `${label}: ${mine}`);
    assert.is(steps.find((s) => s.step === "event")!.dioCount, eventFirst ? 1 : 0, `${label}: i_dio_count when the event was posted`);
    assert.is(env.fh.inode.dioCount, 0);
    await ctx.destroy();
    await env.disk.close();
  }
});

test("(28) when every bio completes before the submitter lets go, the submitter completes the AIO: one event with the count; seed O_DSYNC: no work queued, the caller syncs, then the event", async () => {
  const cases: [Semantics, number][] = [["legacy", 0], ["merged", 0], ["seed", O_DSYNC], ["merged", O_DSYNC]];
  for (const [semantics, flags] of cases) {
    const env = await setup({ semantics, flags });
    const from = await sectorOf(env, 1);
    const { trace, steps } = observe(env);
    const calls = spySync(env.fs);
    const syncs = env.fs.dioStats.syncs;
    let completedBeforeDrop = -1;
    env.fh.beforeSubmitterDrop = async () => {
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      completedBeforeDrop = dataWrites(trace.peek(), "C", from, 16).length;
    };
    const ctx = ioSetup(4);
    const { ev, at } = await aioWrite(env, ctx, trace, BLOCK, 2 * BLOCK);
    const label = `${semantics}${flags === 0 ? "" : " O_DSYNC"}`;
    assert.ok(completedBeforeDrop >= 1 && completedBeforeDrop === dataWrites(trace.peek(), "D", from, 16).length, `${label}: every bio had completed before the drop`);
    assert.is(ev.res, 2 * BLOCK, label);
    assert.equal(await ctx.getEvents(0, 4, 30), [], `${label}: no second event`);
    assert.is(count(steps, "event"), 0, `${label}: the bio completion path posted nothing`);
    assert.is(count(steps, "work_queued"), 0, `${label}: nothing deferred`);
    const recs = trace.stop();
    if (flags === O_DSYNC) {
      assert.is(env.fs.dioStats.syncs, syncs + 1, `${label}: one sync`);
      assert.equal(calls.map((c) => [c.count, c.caller]), [[2 * BLOCK, true]], `${label}: the caller's`);
      // Dispatched after the data completed, so completed in a later device batch than the data:
      // `at` (taken in the reaper's microtask) then orders it against the post exactly.
      const lastC = Math.max(...dataWrites(recs, "C", from, 16));
      const flushD = flushDs(recs).find((d) => d > lastC);
      const flushC = recs.findIndex((r, i) => flushD !== undefined && i > flushD && r.action === "C" && isFlush(r));
      assert.ok(flushD !== undefined && flushC > flushD && flushC < at, `${label}: a flush dispatched after the data completed, and completed before the event`);
    } else {
      assert.is(calls.length, 0, label);
    }
    if (semantics === "seed") assert.equal([count(steps, "work_alloc"), count(steps, "work_free")], [1, 1], "the record was freed by the submitter");
    assert.is(env.fh.inode.dioCount, 0);
    await ctx.destroy();
    await env.disk.close();
  }
});

// ---- durability (54, 57, 58) -------------------------------------------------------------------

test("(54) the sync's datasync argument: O_DSYNC true, O_SYNC false, an IS_SYNC inode without flags true (AIO and fh.write)", async () => {
  const cases: [string, number, boolean, boolean][] = [["O_DSYNC", O_DSYNC, false, true], ["O_SYNC", O_SYNC, false, false], ["IS_SYNC", 0, true, true]];
  for (const semantics of ["seed", "merged"] as const) {
    for (const [label, flags, sync, datasync] of cases) {
      const env = await setup({ semantics, flags, sync });
      const calls = spySync(env.fs);
      const ctx = ioSetup(4);
      assert.is((await aioWrite(env, ctx, undefined, BLOCK)).ev.res, BLOCK);
      assert.is((await env.fh.write(buffer(env, BLOCK), 0, BLOCK, 2 * BLOCK)).bytesWritten, BLOCK);
      assert.equal(calls.map((c) => c.datasync), [datasync, datasync], `${semantics} ${label}: ${JSON.stringify(calls)}`);
      await ctx.destroy();
      await env.disk.close();
    }
  }
});

test("(57) iomap: an O_DSYNC pure overwrite on a FUA-capable cached device goes out FUA with no flush; O_SYNC, or a device without FUA, flushes instead", async () => {
  const cases: [string, number, boolean | undefined, boolean][] = [["O_DSYNC", O_DSYNC, undefined, true], ["O_SYNC", O_SYNC, undefined, false], ["O_DSYNC, fua: false", O_DSYNC, false, false]];
  for (const [label, flags, fua, writeThrough] of cases) {
    const env = await setup({ semantics: "iomap", flags, fua });
    const from = await sectorOf(env, 4);
    const { trace, steps } = observe(env);
    const fuaWrites = env.disk.stats().fuaWrites;
    const ctx = ioSetup(4);
    const { ev } = await aioWrite(env, ctx, trace, 4 * BLOCK);
    const recs = trace.stop();
    assert.is(ev.res, BLOCK, label);
    const ds = dataWrites(recs, "D", from, 8).map((i) => recs[i]);
    assert.ok(ds.length >= 1, label);
    assert.ok(ds.every((r) => r.flags.includes("FUA") === writeThrough), `${label}: FUA ${writeThrough} on every data write`);
    // (A commit's superblock write is FUA too: only the write-through case is checked here.)
    if (writeThrough) assert.ok(env.disk.stats().fuaWrites >= fuaWrites + ds.length, `${label}: the device wrote them FUA`);
    const event = steps.find((s) => s.step === "event")!;
    if (writeThrough) {
      assert.is(recs.filter(isFlush).length, 0, `${label}: no flush`);
      assert.is(count(steps, "sync_start"), 0, `${label}: no sync`);
    } else {
      const lastC = Math.max(...dataWrites(recs, "C", from, 8));
      assert.ok(flushDs(recs).some((d) => d > lastC && d < event.at), `${label}: a flush after the data, before the event`);
    }
    await ctx.destroy();
    await env.disk.close();
  }
});

test("(58) iomap: an O_DSYNC write that allocates (extending), or overwrites an allocation not yet committed, uses no FUA and syncs before the event", async () => {
  for (const kind of ["extending", "uncommitted"] as const) {
    const env = await setup({ semantics: "iomap", commit: kind === "extending" });
    const { trace } = observe(env);
    const ctx = ioSetup(4);
    const offset = kind === "extending" ? 8 * BLOCK : 2 * BLOCK;
    const { ev, at } = await aioWrite(env, ctx, trace, offset, 2 * BLOCK);
    const recs = trace.stop();
    assert.is(ev.res, 2 * BLOCK, kind);
    const writes = recs.filter((r) => r.action === "D" && r.op === "write" && r.flags.includes("SYNC"));
    assert.ok(writes.length >= 1 && writes.every((r) => !r.flags.includes("FUA")), `${kind}: no FUA data write`);
    const lastDataC = recs.reduce((last, r, i) => (r.action === "C" && r.op === "write" && r.flags.includes("SYNC") ? i : last), -1);
    const flushD = flushDs(recs).find((d) => d > lastDataC);
    const flushC = recs.findIndex((r, i) => flushD !== undefined && i > flushD && r.action === "C" && isFlush(r));
    assert.ok(flushD !== undefined && flushC > flushD && flushC < at, `${kind}: a flush (a commit's PREFLUSH or a plain one) dispatched after the data completed, and completed before the event`);
    await ctx.destroy();
    await env.disk.crash();
    const back = await readBack(env.disk, "iomap", offset, 2 * BLOCK);
    assert.ok(back.every((x) => x === NEW), `${kind}: the acknowledged data and its allocation survive a power cut`);
    await env.disk.close();
  }
});

// ---- the bug and the fix under a power cut (62, 63) ---------------------------------------------

/** O_DSYNC AIO overwrite of block 1, event reaped, power cut, remount: did the data survive? */
async function crashAfterEvent(semantics: Semantics, seed: number, legacyXfs?: boolean) {
  const env = await setup({ semantics, seed, legacyXfs });
  const from = await sectorOf(env, 1);
  const { trace } = observe(env);
  const ctx = ioSetup(4);
  const { ev } = await aioWrite(env, ctx, trace, BLOCK);
  const recs = trace.stop();
  await env.disk.crash();
  const back = await readBack(env.disk, semantics, BLOCK, BLOCK);
  await env.disk.close();
  return { res: ev.res, kept: back.every((x) => x === NEW), recs, dataC: Math.max(...dataWrites(recs, "C", from, 8)) };
}

test("(62) legacy: the submission-time flush goes out before the data completes, and a power cut after the event loses acknowledged data for some seed", async () => {
  const lost: number[] = [];
  for (let seed = 1; seed <= 40; seed++) {
    const { res, kept, recs, dataC } = await crashAfterEvent("legacy", seed);
    assert.is(res, BLOCK, `seed ${seed}`);
    const flushes = flushDs(recs);
    assert.is(flushes.length, 1, `seed ${seed}: one flush`);
    assert.ok(flushes[0] < dataC, `seed ${seed}: dispatched before the data write completed`);
    if (!kept) lost.push(seed);
  }
  assert.ok(lost.length > 0, "some seed lost the acknowledged write");
});

test("(62) legacy XFS: a queued O_DSYNC AIO write is never synced: no flush at all, and acknowledged data can be lost", async () => {
  let lost = 0;
  for (let seed = 1; seed <= 10; seed++) {
    const { res, kept, recs } = await crashAfterEvent("legacy", seed, true);
    assert.is(res, BLOCK, `seed ${seed}`);
    assert.is(recs.filter(isFlush).length, 0, `seed ${seed}: no flush`);
    if (!kept) lost++;
  }
  assert.ok(lost > 0, "some seed lost the acknowledged write");
});

for (const semantics of ["seed", "merged", "iomap"] as const) {
  test(`(63) ${semantics}: an O_DSYNC AIO overwrite acknowledged by its event survives a power cut (seeds 1..40)`, async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const { res, kept } = await crashAfterEvent(semantics, seed);
      assert.is(res, BLOCK, `seed ${seed}`);
      assert.ok(kept, `${semantics} seed ${seed}: the acknowledged write was lost`);
    }
  });
}

// ---- the worker executor ----------------------------------------------------------------------

test("worker executor: a seed O_DSYNC AIO burst is durable when its events arrive, the flushes ran on the Worker thread, and a failing worker flush is the event's -EIO", async () => {
  const hangs: string[] = [];
  for (let seed = 1; seed <= 4; seed++) {
    const env = await setup({ semantics: "seed", seed, executor: "worker" });
    const flushes = env.disk.stats().flushes;
    const ctx = ioSetup(8);
    const bufs = [0, 1, 2, 3].map((i) => buffer(env, BLOCK, 0x60 + i));
    ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite" as const, fh: env.fh, buf, offset: i * 2 * BLOCK })));
    const events = await ctx.getEvents(4, 4);
    assert.equal(events.map((e) => e.res), [BLOCK, BLOCK, BLOCK, BLOCK], `seed ${seed}`);
    assert.is(env.fs.dioQueue!.executor, "worker");
    const flusher = env.fs.dioQueue!.flusher;
    assert.ok(flusher !== null && (await flusher).flushes > 0, `seed ${seed}: the Worker thread flushed`);
    assert.ok(env.disk.stats().flushes > flushes, `seed ${seed}: the disk counted them`);
    await ctx.destroy();
    // The power cut destroys the queue, which stops the thread (not awaited by crash()).
    await env.disk.crash();
    if (await threadHung(flusher)) hangs.push(`seed ${seed}, after the power cut`);
    const back = await readBack(env.disk, "seed", 0, 8 * BLOCK);
    for (let i = 0; i < 4; i++) {
      assert.ok(back.subarray(i * 2 * BLOCK, (i * 2 + 1) * BLOCK).every((x) => x === 0x60 + i), `seed ${seed}: write ${i} lost`);
    }
    await env.disk.close();
  }
  const env = await setup({ semantics: "seed", executor: "worker" });
  env.disk.injectFault({ op: "flush" });
  const ctx = ioSetup(4);
  assert.is((await aioWrite(env, ctx, undefined, BLOCK)).ev.res, -5);
  assert.is((await aioWrite(env, ctx, undefined, BLOCK)).ev.res, BLOCK, "the fault was used up");
  await ctx.destroy();
  const flusher = env.fs.dioQueue!.flusher;
  const unmounted = env.fs.unmount();
  while (env.fs.dioQueue !== null) await new Promise((r) => setImmediate(r));
  if (await threadHung(flusher)) hangs.push("at unmount");
  await unmounted;
  await env.disk.close();
  assert.equal(hangs, [], HUNG);
});

// ---- regressions from a review -------------------------------------------------------------------

test("(57, regression) iomap: an O_DSYNC write that moves i_size is not written through: it syncs, and the size survives a power cut", async () => {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor: "inline", seed: 1 });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: "iomap" });
  const small = await fs.open("f", O_RDWR | O_CREAT);
  await small.write(new Uint8Array(100).fill(1), 0, 100, 0);
  await small.sync(); // block 0 allocated and durable, i_size 100
  const fh = await fs.open("f", O_RDWR | O_DIRECT | O_DSYNC);
  const buf = disk.alloc(BLOCK);
  buf.fill(NEW);
  const before = disk.stats();
  const ctx = ioSetup(1);
  ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }]);
  const [event] = await ctx.getEvents(1, 1);
  assert.is(event.res, BLOCK);
  const after = disk.stats();
  assert.ok(after.flushes > before.flushes || after.fuaWrites - before.fuaWrites > 0, "a sync ran");
  await disk.crash();
  const again = await mount(disk, { semantics: "iomap" });
  assert.is((await again.stat("f")).size, BLOCK, "the i_size the O_DSYNC event promised survived");
  await disk.close();
});

test("(36) seed, worker executor: every O_DSYNC AIO write of a burst gets its own flush, counted once each, though the thread serves a run with one commit, and the data is durable at its event", async () => {
  const env = await setup({ semantics: "seed", executor: "worker", blocks: 8 });
  const bufs = Array.from({ length: 8 }, (_, i) => {
    const b = env.disk.alloc(BLOCK);
    b.fill(0x70 + i);
    return b;
  });
  const ctx = ioSetup(8);
  // A first write starts the flush thread; then a burst of 8 at once.
  ctx.submit([{ opcode: "pwrite", fh: env.fh, buf: bufs[0], offset: 0 }]);
  assert.is((await ctx.getEvents(1, 1))[0].res, BLOCK);
  const queue = env.fs.dioQueue!;
  const flusher = await queue.flusher!;
  const deviceBefore = env.disk.stats().flushes;
  const threadBefore = flusher.flushes;
  ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite" as const, fh: env.fh, buf, offset: i * BLOCK, data: i })));
  const events: IoEvent[] = [];
  while (events.length < 8) events.push(...(await ctx.getEvents(1, 8)));
  assert.ok(events.every((e) => e.res === BLOCK), "every write succeeded");
  assert.is(flusher.flushes - threadBefore, 8, "the thread counts one flush per request");
  assert.is(env.disk.stats().flushes - deviceBefore, 8, "the device counts one flush per request");
  await ctx.destroy();
  // Every event came after a flush that covered its write: a power cut now keeps all of them.
  await env.disk.crash();
  const again = await mount(env.disk, { semantics: "seed" });
  const fh = await again.open("f", O_RDONLY | O_DIRECT);
  const back = env.disk.alloc(8 * BLOCK);
  await fh.read(back, 0, back.length, 0);
  for (let i = 0; i < 8; i++) assert.ok(back.subarray(i * BLOCK, (i + 1) * BLOCK).every((x) => x === 0x70 + i), `write ${i} survived the cut`);
  await env.disk.close();
});

test("(regression) closing a disk with a filesystem still mounted stops its flush thread", async () => {
  const { disk, fs, fh } = await setup({ semantics: "seed", executor: "worker" });
  const ctx = ioSetup(2);
  const buf = disk.alloc(BLOCK);
  ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }]);
  assert.is((await ctx.getEvents(1, 1))[0].res, BLOCK);
  const start = fs.dioQueue!.flusher!;
  const thread = (await start) as unknown as { exited: Promise<void> };
  await ctx.destroy();
  await disk.close(); // no unmount
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([thread.exited.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), 3000); })]);
  clearTimeout(timer);
  assert.ok(exited, "the flush thread exited when the disk closed");
});

test("(regression) a sync that straddles a power cut reports EIO, never success: nothing of a dead filesystem reaches the device", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const { disk, fs } = await setup({ semantics: "seed", seed });
    const d = await fs.open("f", O_RDWR | O_DIRECT);
    const b = await fs.open("f", O_RDWR);
    const blk = disk.alloc(BLOCK);
    blk.fill(NEW);
    await d.write(blk, 0, BLOCK, 0); // acknowledged, only in the device's cache
    // A buffered partial write must read its block first, holding the inode lock across that read;
    // fdatasync waits for the lock. The power goes before the read completes.
    const w = b.write(new Uint8Array(100).fill(1), 0, 100, BLOCK + 10).then(() => 0, (e: DioError) => e.errno);
    const synced = d.datasync().then(() => 0, (e: DioError) => e.errno);
    const trace = disk.startTrace();
    let n = 0;
    disk.device.beforeCompletion = () => { if (++n === 1) void disk.crash(); };
    const [writeRes, syncRes] = [await w, await synced];
    disk.device.beforeCompletion = undefined;
    const records = trace.stop();
    const cut = records.findIndex((r) => r.action === "C" && r.error === -5);
    const late = records.slice(cut + 1).filter((r) => r.action === "D" || r.action === "Q");
    assert.equal(late, [], `seed ${seed}: requests after the cut ${JSON.stringify(late)}`);
    assert.is(writeRes, -5, `seed ${seed}`);
    assert.is(syncRes, -5, `seed ${seed}: fdatasync across the cut must fail, not report 0`);
    await disk.close();
  }
});

test("worker executor (regression): a power cut while the flush thread starts fails the flush asked for before it: no event acknowledges data the cut lost", async () => {
  for (const semantics of ["seed", "merged"] as Semantics[]) {
    let acknowledgedLost = 0;
    let failed = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const disk = await Disk.create({ size: 16 << 20, seed, executor: "worker" });
      await mkfs(disk, { blockSize: 4096 });
      let fs = await mount(disk, { semantics });
      const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      await fh.write(disk.alloc(4096).fill(0x11), 0, 4096, 0); // allocated and durable
      const ctx = ioSetup(4);
      ctx.submit([{ opcode: "pwrite", fh, buf: disk.alloc(4096).fill(0x22), offset: 0 }]);
      // The data completed and its queued sync asked for the flush thread, which is starting.
      while (fs.dioQueue === null || fs.dioQueue.flusher === null) await new Promise((resolve) => setImmediate(resolve));
      const starting = fs.dioQueue.flusher;
      await disk.crash();
      const [event] = await ctx.getEvents(1, 1);
      await starting;
      fs = await mount(disk, { semantics });
      const back = disk.alloc(4096);
      await (await fs.open("f", O_RDWR | O_DIRECT)).read(back, 0, 4096, 0);
      if (event.res === 4096 && back[0] !== 0x22) acknowledgedLost++;
      if (event.res === -5) failed++;
      await fs.unmount();
      await disk.close();
    }
    assert.is(acknowledgedLost, 0, `${semantics}: events of 4096 for writes the power cut lost`);
    assert.is(failed, 12, `${semantics}: the flush in flight at the cut fails every event with EIO`);
  }
});

test("worker executor (regression): a process that leaves a filesystem mounted, its flush thread started, exits on its own (README's example)", () => {
  const index = JSON.stringify(new URL("../host/index.js", import.meta.url).href);
  const script = `
    const { Disk, mkfs, mount, O_RDWR, O_CREAT, O_DIRECT, O_DSYNC, ioSetup } = await import(${index});
    const disk = await Disk.create({ size: 64 << 20 });
    await mkfs(disk, { blockSize: 4096 });
    const fs = await mount(disk);
    const f = await fs.open("/data", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    const buf = disk.alloc(1 << 20);
    await f.write(buf, 0, buf.length, 0);
    const ctx = ioSetup(32);
    const bufs = Array.from({ length: 8 }, (_, i) => disk.alloc(4096).fill(i));
    ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite", fh: f, buf, offset: i * 8192, data: i })));
    const events = await ctx.getEvents(8, 8);
    await ctx.destroy();
    console.log("flush thread " + (fs.dioQueue.flusher === null ? "not started" : "started") + ", events " + events.map((e) => e.res).join(","));`;
  const started = Date.now();
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 20000, encoding: "utf8" });
  assert.is(child.signal, null, `killed after ${Date.now() - started} ms (the process did not exit): ${child.stdout} ${child.stderr}`);
  assert.is(child.status, 0, child.stderr);
  assert.ok(child.stdout.includes("flush thread started, events 4096,4096,4096,4096,4096,4096,4096,4096"), child.stdout);
});

test.run();
