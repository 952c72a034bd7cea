// The AIO context's contract (API.md, spec 7.1): what io_submit refuses, events with data/obj/res2
// (assertion 59), IO errors as res = -errno (assertion 60, misalignment), no FIFO by submission
// (61), the ring's room (EAGAIN), io_getevents' minimum and timeout, cancel, destroy, and
// per-iocb RWF_DSYNC making a write durable before its event.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { throwsDioError } from "./util/errors.js";
import { Disk, DioError, ioSetup, mkfs, mount, O_CREAT, O_DIRECT, O_DSYNC, O_RDONLY, O_RDWR, RWF_DSYNC, type Iocb, type Semantics } from "../host/index.js";

async function fresh(seed = 1, latency?: { writeMin: number; writeMax: number }) {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, seed, latency });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk);
  const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  return { disk, fs, fh };
}

const rejectsWith = throwsDioError;

test("io_setup refuses a context of no events", () => {
  rejectsWith(() => ioSetup(0), "EINVAL", "nrEvents 0");
  rejectsWith(() => ioSetup(-3), "EINVAL", "nrEvents -3");
  rejectsWith(() => ioSetup(1.5), "EINVAL", "nrEvents 1.5");
});

test("io_submit refuses a bad first iocb, and stops a batch at a bad later one", async () => {
  const { disk, fs, fh } = await fresh();
  const ctx = ioSetup(8);
  const buf = disk.alloc(4096);
  rejectsWith(() => ctx.submit([{ opcode: "pzap" as never, fh, buf }]), "EINVAL", "opcode pzap");
  rejectsWith(() => ctx.submit([{ opcode: "pwrite", fh }]), "EINVAL", "needs buf");
  rejectsWith(() => ctx.submit([{ opcode: "pwritev", fh, bufs: [buf, 7 as never] }]), "EINVAL", "needs bufs");
  rejectsWith(() => ctx.submit([{ opcode: "pwrite", fh, buf, offset: -4096 }]), "EINVAL", "offset -4096");
  rejectsWith(() => ctx.submit([{ opcode: "pwrite", fh, buf, rwFlags: 64 }]), "ENOTSUP", "rwFlags 64");
  const ro = await fs.open("f", O_RDONLY | O_DIRECT);
  rejectsWith(() => ctx.submit([{ opcode: "pwrite", fh: ro, buf }]), "EBADF", "not open for writing");
  const closed = await fs.open("f", O_RDWR | O_DIRECT);
  await closed.close();
  rejectsWith(() => ctx.submit([{ opcode: "pread", fh: closed, buf }]), "EBADF", "not open");
  // A later bad iocb ends the batch: the good ones before it run, it does not.
  buf.fill(9);
  const n = ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }, { opcode: "pwrite", fh: ro, buf, offset: 4096 }]);
  assert.is(n, 1);
  const events = await ctx.getEvents(1, 8);
  assert.is(events.length, 1);
  assert.is(events[0].res, 4096);
  assert.is((await fh.stat()).size, 4096, "the refused second write did not happen");
  await ctx.destroy();
  await disk.close();
});

test("events echo data and the iocb, res2 is 0, and they are not posted on io_submit's stack (59)", async () => {
  const { disk, fh } = await fresh();
  const ctx = ioSetup(4);
  const buf = disk.alloc(8192);
  buf.fill(0x3c);
  const iocb: Iocb = { opcode: "pwrite", fh, buf, offset: 0, data: { tag: "w1" } };
  assert.is(ctx.submit([iocb]), 1);
  assert.equal(await ctx.getEvents(0, 4, 0), [], "nothing completes before io_submit has returned");
  const [event] = await ctx.getEvents(1, 4);
  assert.is(event.obj, iocb);
  assert.equal(event.data, { tag: "w1" });
  assert.is(event.res, 8192);
  assert.is(event.res2, 0);
  const back = disk.alloc(8192);
  const readIocb: Iocb = { opcode: "preadv", fh, bufs: [back.subarray(0, 4096), back.subarray(4096)], offset: 0, data: 2 };
  ctx.submit([readIocb]);
  const [read] = await ctx.getEvents(1, 1);
  assert.is(read.res, 8192);
  assert.ok(back.every((x) => x === 0x3c));
  await ctx.destroy();
  await disk.close();
});

test("a misaligned O_DIRECT iocb is accepted and its event carries -EINVAL (60)", async () => {
  const { disk, fh } = await fresh();
  const ctx = ioSetup(4);
  const buf = disk.alloc(4096);
  assert.is(ctx.submit([{ opcode: "pwrite", fh, buf, offset: 100 }]), 1);
  const [event] = await ctx.getEvents(1, 1);
  assert.is(event.res, -22);
  assert.is((await fh.stat()).size, 0, "nothing was written");
  await ctx.destroy();
  await disk.close();
});

test("events come in completion order, not submission order (61)", async () => {
  let reordered = 0;
  for (let seed = 1; seed <= 40 && reordered === 0; seed++) {
    const { disk, fs, fh } = await fresh(seed, { writeMin: 1, writeMax: 20 });
    // Two files: until submission is asynchronous (issue 5), one file's direct writes hold its
    // inode lock until they complete.
    const other = await fs.open("g", O_RDWR | O_CREAT | O_DIRECT);
    const ctx = ioSetup(4);
    const a = disk.alloc(4096);
    const b = disk.alloc(4096);
    ctx.submit([{ opcode: "pwrite", fh, buf: a, offset: 0, data: "A" }]);
    ctx.submit([{ opcode: "pwrite", fh: other, buf: b, offset: 0, data: "B" }]);
    const events = await ctx.getEvents(2, 2);
    if (events[0].data === "B") reordered++;
    await ctx.destroy();
    await disk.close();
  }
  assert.ok(reordered > 0, "for some seed B's device IO finished first and its event came first");
});

test("a full ring refuses more with EAGAIN until events are reaped", async () => {
  const { disk, fh } = await fresh();
  const ctx = ioSetup(2);
  const buf = disk.alloc(4096);
  const iocbs: Iocb[] = [0, 1, 2].map((i) => ({ opcode: "pwrite", fh, buf, offset: i * 4096 }));
  assert.is(ctx.submit(iocbs), 2);
  rejectsWith(() => ctx.submit([iocbs[2]]), "EAGAIN", "room for 2 events");
  assert.is((await ctx.getEvents(2, 2)).length, 2);
  assert.is(ctx.submit([iocbs[2]]), 1);
  await ctx.getEvents(1, 1);
  await ctx.destroy();
  await disk.close();
});

test("io_getevents: bad bounds are EINVAL; a timeout returns what there is", async () => {
  const { disk } = await fresh();
  const ctx = ioSetup(2);
  try {
    await ctx.getEvents(3, 2);
    assert.unreachable("minNr > nr accepted");
  } catch (error) {
    assert.is((error as DioError).code, "EINVAL");
  }
  const started = Date.now();
  assert.equal(await ctx.getEvents(1, 2, 30), []);
  assert.ok(Date.now() - started >= 25, "it waited for the timeout");
  await ctx.destroy();
  await disk.close();
});

test("cancel is EINVAL; destroy waits for requests in flight and then takes no more", async () => {
  const { disk, fh } = await fresh();
  const ctx = ioSetup(8);
  const buf = disk.alloc(1 << 20);
  const iocb: Iocb = { opcode: "pwrite", fh, buf, offset: 0 };
  ctx.submit([iocb]);
  try {
    await ctx.cancel(iocb);
    assert.unreachable("cancel succeeded");
  } catch (error) {
    assert.is((error as DioError).code, "EINVAL");
  }
  await ctx.destroy();
  assert.is((await fh.stat()).size, 1 << 20, "the write finished before destroy returned");
  rejectsWith(() => ctx.submit([iocb]), "EINVAL", "destroyed");
  await disk.close();
});

test("a pwrite with RWF_DSYNC is durable when its event arrives; fdsync covers earlier writes", async () => {
  for (let seed = 1; seed <= 10; seed++) {
    const { disk, fh } = await fresh(seed);
    const ctx = ioSetup(4);
    const buf = disk.alloc(4096);
    buf.fill(0x5d);
    ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0, rwFlags: RWF_DSYNC }]);
    const [event] = await ctx.getEvents(1, 1);
    assert.is(event.res, 4096);
    const other = disk.alloc(4096);
    other.fill(0x6e);
    ctx.submit([{ opcode: "pwrite", fh, buf: other, offset: 4096 }]);
    await ctx.getEvents(1, 1);
    ctx.submit([{ opcode: "fdsync", fh }]);
    const [synced] = await ctx.getEvents(1, 1);
    assert.is(synced.res, 0);
    await disk.crash();
    const again = await mount(disk);
    const f = await again.open("f", O_RDWR | O_DIRECT);
    const back = disk.alloc(8192);
    assert.is((await f.read(back, 0, 8192, 0)).bytesRead, 8192, `seed ${seed}`);
    assert.ok(back.subarray(0, 4096).every((x) => x === 0x5d), `seed ${seed}`);
    assert.ok(back.subarray(4096).every((x) => x === 0x6e), `seed ${seed}`);
    await disk.close();
  }
});

/** A file with `blocks` 4 KiB blocks allocated (so writes inside it do not extend it). */
async function prefilled(blocks: number, seed = 1) {
  const env = await fresh(seed, { writeMin: 1, writeMax: 8 });
  const fill = env.disk.alloc(blocks * 4096);
  await env.fh.write(fill, 0, fill.length, 0);
  env.disk.free(fill);
  return env;
}

test("a non-extending AIO write is queued: the next one on the same file goes out while it is in flight (25)", async () => {
  const { disk, fh } = await prefilled(16);
  const ctx = ioSetup(4);
  const a = disk.alloc(8 * 4096);
  const b = disk.alloc(4096);
  const trace = disk.startTrace();
  ctx.submit([{ opcode: "pwrite", fh, buf: a, offset: 0, data: "A" }, { opcode: "pwrite", fh, buf: b, offset: 12 * 4096, data: "B" }]);
  const events = await ctx.getEvents(2, 2);
  const records = trace.stop();
  assert.equal(events.map((e) => e.res).sort(), [4096, 8 * 4096].sort());
  const firstC = records.findIndex((r) => r.action === "C" && r.op === "write");
  const dispatched = records.filter((r, i) => r.action === "D" && r.op === "write" && i < firstC).map((r) => r.sector);
  assert.ok(dispatched.length >= 2, `both writes' bios were out before the first completed (${JSON.stringify(dispatched)})`);
  assert.is(fh.inode.dioCount, 0);
  await ctx.destroy();
  await disk.close();
});

test("an extending AIO write runs synchronously: the next one waits for it, and i_size moves after the data (13)", async () => {
  const { disk, fh } = await fresh(2, { writeMin: 1, writeMax: 8 });
  const ctx = ioSetup(4);
  const a = disk.alloc(4096);
  const b = disk.alloc(4096);
  const trace = disk.startTrace();
  const sizes: number[] = [];
  const records = trace.peek() as unknown as { push(...items: { action: string; op: string; flags: string[] }[]): number };
  const push = records.push.bind(records);
  records.push = (...items) => {
    for (const r of items) if (r.action === "C" && r.op === "write" && r.flags.includes("SYNC")) sizes.push(fh.inode.size);
    return push(...items);
  };
  ctx.submit([{ opcode: "pwrite", fh, buf: a, offset: 0 }, { opcode: "pwrite", fh, buf: b, offset: 4096 }]);
  await ctx.getEvents(2, 2);
  const seen = trace.stop();
  const writes = seen.filter((r) => (r.action === "D" || r.action === "C") && r.op === "write" && r.flags.includes("SYNC")).map((r) => r.action);
  assert.equal(writes, ["D", "C", "D", "C"], "the second extending write's bio went out after the first completed");
  assert.equal(sizes, [0, 4096], "i_size was still the old size when each write's data completed");
  assert.is(fh.inode.size, 8192);
  await ctx.destroy();
  await disk.close();
});

test("an AIO read cut short by EOF is still queued, and its event carries the clamped count (26)", async () => {
  const { disk, fs, fh } = await prefilled(8);
  await fh.truncate(4 * 4096 - 1000);
  const g = await fs.open("f", O_RDWR | O_DIRECT);
  const ctx = ioSetup(4);
  const buf = disk.alloc(8 * 4096);
  const other = disk.alloc(4096);
  const trace = disk.startTrace();
  ctx.submit([{ opcode: "pread", fh: g, buf, offset: 0, data: "read" }, { opcode: "pwrite", fh, buf: other, offset: 0, data: "write" }]);
  const events = await ctx.getEvents(2, 2);
  const records = trace.stop();
  const read = events.find((e) => e.data === "read")!;
  assert.is(read.res, 4 * 4096 - 1000);
  // Queued: i_mutex was released once the read's bios were out, so the write's bio could follow
  // before the read completed.
  const readDone = records.findIndex((r) => r.action === "C" && r.op === "read");
  const writeOut = records.findIndex((r) => r.action === "D" && r.op === "write");
  assert.ok(writeOut >= 0 && writeOut < readDone, "the write went out while the short read was in flight");
  await ctx.destroy();
  await disk.close();
});

test("an AIO write that meets a hole inside i_size completes whole through the page cache (27)", async () => {
  const { disk, fh } = await fresh(3);
  const first = disk.alloc(4096);
  first.fill(1);
  await fh.write(first, 0, 4096, 0);
  await fh.truncate(3 * 4096); // blocks 1 and 2 are holes inside i_size
  const ctx = ioSetup(4);
  const buf = disk.alloc(3 * 4096);
  buf.fill(0x44);
  ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }]);
  const [event] = await ctx.getEvents(1, 1);
  assert.is(event.res, 3 * 4096);
  const back = disk.alloc(3 * 4096);
  await fh.read(back, 0, back.length, 0);
  assert.ok(back.every((x) => x === 0x44));
  await ctx.destroy();
  await disk.close();
});

test("when an AIO event is visible, i_dio_count has already dropped (30, 3.10+ order)", async () => {
  const { disk, fh } = await prefilled(4);
  const ctx = ioSetup(4);
  const buf = disk.alloc(4096);
  const counts: number[] = [];
  for (let i = 0; i < 5; i++) {
    ctx.submit([{ opcode: i % 2 === 0 ? "pwrite" : "pread", fh, buf, offset: 4096 }]);
    await ctx.getEvents(1, 1);
    counts.push(fh.inode.dioCount);
  }
  assert.equal(counts, [0, 0, 0, 0, 0]);
  await ctx.destroy();
  await disk.close();
});

test("a queued write that a truncate overtakes is carried out as the extending write it became", async () => {
  const { disk, fh } = await prefilled(2);
  const ctx = ioSetup(4);
  const w = disk.alloc(8192);
  w.fill(0x22);
  ctx.submit([{ opcode: "pwrite", fh, buf: w, offset: 0 }]);
  const truncated = fh.truncate(0);
  const [event] = await ctx.getEvents(1, 1);
  await truncated;
  assert.is(event.res, 8192);
  assert.is((await fh.stat()).size, 8192, "the write extended the truncated file");
  const back = disk.alloc(8192);
  await fh.read(back, 0, 8192, 0);
  assert.ok(back.every((x) => x === 0x22));
  await ctx.destroy();
  await disk.close();
});

test("an AIO accepted just before a power cut fails with EIO and never reaches the disk", async () => {
  for (let turns = 0; turns <= 6; turns++) {
    const { disk, fh } = await fresh(20);
    const old = disk.alloc(1 << 16);
    old.fill(0x11);
    await fh.write(old, 0, old.length, 0);
    await fh.sync();
    const ctx = ioSetup(4);
    ctx.submit([{ opcode: "pwrite", fh, buf: new Uint8Array(4096).fill(0x77), offset: 0 }]);
    for (let i = 0; i < turns; i++) await Promise.resolve();
    await disk.crash();
    const [event] = await ctx.getEvents(1, 1);
    await ctx.destroy();
    const again = await mount(disk);
    const f = await again.open("f", O_RDWR | O_DIRECT);
    const back = disk.alloc(4096);
    await f.read(back, 0, 4096, 0);
    if (event.res === -5) assert.is(back[0], 0x11, `after ${turns} turns: a failed write left no data`);
    else assert.unreachable(`after ${turns} turns the write was reported done (${event.res}) though the power was cut first`);
    await disk.close();
  }
});

test("getEvents serves every caller whose minimum is met, whoever came first", async () => {
  const { disk, fh } = await prefilled(1);
  const ctx = ioSetup(8);
  const waitingForThree = ctx.getEvents(3, 3, 200);
  ctx.submit([{ opcode: "pread", fh, buf: disk.alloc(4096), offset: 0 }]);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const started = Date.now();
  const now = await ctx.getEvents(1, 8, 1000);
  assert.is(now.length, 1);
  assert.ok(Date.now() - started < 500, "the caller needing one event did not wait behind the one needing three");
  assert.equal(await waitingForThree, []);
  await ctx.destroy();
  try {
    await ctx.getEvents(1, 1);
    assert.unreachable("getEvents on a destroyed, drained context waited");
  } catch (error) {
    assert.is((error as DioError).code, "EINVAL");
  }
  await disk.close();
});

test("the filesystem's end_io drops pages cached while the write was in flight: a buffered read sees the new data", async () => {
  for (const semantics of ["legacy", "seed", "merged", "iomap"] as Semantics[]) {
    const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor: "inline", latency: { writeMin: 6, writeMax: 6 } });
    await mkfs(disk, { blockSize: 4096, inodes: 16 });
    const fs = await mount(disk, { semantics });
    const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    const old = disk.alloc(4096);
    old.fill(0x11);
    await fh.write(old, 0, 4096, 0);
    const buffered = await fs.open("f", O_RDWR);
    const steps: string[] = [];
    fs.onDioStep = (s) => steps.push(s.step);
    const ctx = ioSetup(1);
    const next = disk.alloc(4096);
    next.fill(0x22);
    ctx.submit([{ opcode: "pwrite", fh, buf: next, offset: 0 }]);
    // While the direct write is in flight (its inode lock released), a buffered read caches the
    // page with the old contents.
    const during = new Uint8Array(4096);
    await buffered.read(during, 0, 4096, 0);
    assert.is(during[0], 0x11, `${semantics}: the read ran while the write was in flight`);
    const [event] = await ctx.getEvents(1, 1);
    assert.is(event.res, 4096);
    assert.ok(steps.includes("end_io"), `${semantics}: ${steps.join(" ")}`);
    const after = new Uint8Array(4096);
    await buffered.read(after, 0, 4096, 0);
    assert.is(after[0], 0x22, `${semantics}: the cached page went at completion`);
    await ctx.destroy();
    await disk.close();
  }
});

test("the inline executor reproduces a run exactly from its seed: the same trace, steps and events", async () => {
  const once = async (seed: number) => {
    const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor: "inline", seed, latency: { writeMin: 1, writeMax: 9, flushMin: 1, flushMax: 9 } });
    await mkfs(disk, { blockSize: 4096, inodes: 16 });
    let tick = 0;
    const fs = await mount(disk, { semantics: "seed", clock: () => ++tick });
    const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    const fill = disk.alloc(16 * 4096);
    await fh.write(fill, 0, fill.length, 0);
    const steps: string[] = [];
    fs.onDioStep = (s) => steps.push(`${s.step}@${s.time}:${s.offset ?? ""}`);
    const trace = disk.startTrace();
    const ctx = ioSetup(16);
    const bufs = Array.from({ length: 12 }, (_, i) => disk.alloc(4096).fill(i + 1));
    ctx.submit(bufs.map((buf, i) => ({ opcode: "pwrite" as const, fh, buf, offset: ((i * 5) % 16) * 4096, data: i })));
    const events = await ctx.getEvents(12, 12);
    const records = trace.stop().map((r) => `${r.action}${r.op}${r.sector}+${r.sectors}@${r.time}`);
    await ctx.destroy();
    await disk.close();
    return { order: events.map((e) => e.data), steps, records };
  };
  const a = await once(5);
  const b = await once(5);
  assert.equal(b, a);
  const c = await once(6);
  assert.not.equal(c.records, a.records, "another seed times the device differently");
});

test("io_getevents: a timeout beyond setTimeout's range, or Infinity, waits for the minimum (it does not end at once)", async () => {
  for (const timeoutMs of [Infinity, 2 ** 31, 30 * 24 * 3600 * 1000]) {
    const { disk, fh } = await fresh();
    const ctx = ioSetup(4);
    let settled = false;
    const waiting = ctx.getEvents(1, 1, timeoutMs).then((events) => { settled = true; return events; });
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.not.ok(settled, `timeout ${timeoutMs}: getEvents returned before any event and before its timeout`);
    ctx.submit([{ opcode: "pwrite", fh, buf: disk.alloc(4096), offset: 0, data: "late" }]);
    const events = await waiting;
    assert.equal(events.map((e) => [e.data, e.res]), [["late", 4096]], `timeout ${timeoutMs}`);
    await ctx.destroy();
    await disk.close();
  }
});

test("Disk.close() waits for the requests io_submit accepted: their events carry their results, not EIO (both executors)", async () => {
  for (const executor of ["worker", "inline"] as const) {
    for (const semantics of ["seed", "merged"] as Semantics[]) {
      const disk = await Disk.create({ size: 16 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor });
      await mkfs(disk, { blockSize: 4096, inodes: 16 });
      const fs = await mount(disk, { semantics });
      const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      const buf = disk.alloc(64 << 10).fill(7);
      await fh.write(buf, 0, buf.length, 0);
      const ctx = ioSetup(32);
      const n = ctx.submit(Array.from({ length: 16 }, (_, i): Iocb => ({ opcode: "pwrite", fh, buf: buf.subarray(i * 4096, (i + 1) * 4096), offset: i * 4096, data: i })));
      const closed = disk.close();
      const events = await ctx.getEvents(n, n);
      await closed;
      assert.equal([...new Set(events.map((e) => e.res))], [4096], `${executor}/${semantics}: ${events.map((e) => e.res).join(",")}`);
    }
  }
});

test("a mount clock that throws, or returns no finite number, fails no IO: sync and AIO writes complete, the times it would set keep their values, a warning says why", async () => {
  for (const semantics of ["legacy", "seed", "merged", "iomap"] as Semantics[]) {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => { warnings.push(w.message); };
    process.on("warning", onWarning);
    try {
      const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20, executor: "inline" });
      await mkfs(disk, { blockSize: 4096, inodes: 16 });
      let bad: "throw" | "nan" | null = null;
      const fs = await mount(disk, { semantics, clock: () => {
        const how = bad;
        bad = null;
        if (how === "throw") throw new Error("the clock broke");
        return how === "nan" ? NaN : 5000;
      } });
      const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
      const buf = disk.alloc(8192).fill(1);
      assert.is((await fh.write(buf, 0, 8192, 0)).bytesWritten, 8192);
      bad = "throw";
      assert.is((await fh.write(buf, 0, 4096, 0)).bytesWritten, 4096, `${semantics}: a synchronous write completes`);
      const ctx = ioSetup(4);
      bad = "nan";
      ctx.submit([{ opcode: "pwrite", fh, buf: buf.subarray(0, 4096), offset: 4096, data: "A" }]);
      const events = await ctx.getEvents(1, 1);
      assert.equal(events.map((e) => e.res), [4096], `${semantics}: the AIO write's event is posted`);
      assert.is(fh.inode.dioCount, 0, `${semantics}: i_dio_count dropped`);
      assert.is((await fh.stat()).mtimeMs, 5000, `${semantics}: the time kept its value`);
      await ctx.destroy();
      await fs.unmount();
      // Mounted again with a clock that never works: the file's times stay those it had.
      const again = await mount(disk, { semantics, clock: () => { throw new Error("the clock broke"); } });
      const fh2 = await again.open("f", O_RDWR | O_DIRECT);
      assert.is((await fh2.write(buf, 0, 4096, 0)).bytesWritten, 4096);
      assert.is((await fh2.stat()).mtimeMs, 5000, `${semantics}: a clock that never read leaves the times as they were`);
      await again.unmount();
      await disk.close();
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(warnings.some((w) => w.includes("the clock broke")), `${semantics}: ${warnings.join(" | ")}`);
      assert.ok(warnings.some((w) => w.includes("returned NaN")), `${semantics}: ${warnings.join(" | ")}`);
    } finally {
      process.off("warning", onWarning);
    }
  }
});

test("io_submit order holds across contexts: requests submitted in one tick start in submission order", async () => {
  const { disk, fh } = await fresh();
  await fh.write(disk.alloc(1 << 20), 0, 1 << 20, 0);
  const c1 = ioSetup(8);
  const c2 = ioSetup(8);
  const trace = disk.startTrace();
  const w = (offset: number, data: string): Iocb => ({ opcode: "pwrite", fh, buf: disk.alloc(4096), offset, data });
  c1.submit([w(0, "a")]);
  c2.submit([w(8192, "b")]);
  c1.submit([w(16384, "c")]);
  await c1.getEvents(2, 2);
  await c2.getEvents(1, 1);
  const queued = trace.stop().filter((r) => r.action === "Q" && r.op === "write").map((r) => r.sector);
  assert.is(queued.length, 3);
  assert.equal(queued.map((s) => (s - queued[0]) / 8), [0, 2, 4], `bios queued at sectors ${queued.join(" ")} (a, b, c expected)`);
  await disk.close();
});

test("Disk.close() called twice while a request is in flight: both calls return", async () => {
  const { disk, fh } = await fresh();
  const ctx = ioSetup(4);
  ctx.submit([{ opcode: "pwrite", fh, buf: disk.alloc(4096), offset: 0 }]);
  const first = disk.close().then(() => "closed");
  const second = disk.close().then(() => "closed");
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve("pending after 2 s"), 2000));
  assert.equal(await Promise.all([Promise.race([first, timeout]), Promise.race([second, timeout])]), ["closed", "closed"]);
  assert.equal((await ctx.getEvents(1, 1)).map((e) => e.res), [4096]);
});

test.run();
