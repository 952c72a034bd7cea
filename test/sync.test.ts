// The synchronous calls (FileHandle readSync/writeSync/readvSync/writevSync/syncSync/datasyncSync,
// on files and on the raw block device): the same engine as the promise calls, waited for by
// polling the device. Each test states what the rules say (the promise call's behaviour, spec
// sections 2 and 6, RWF_NOWAIT's EAGAIN before anything changes) and checks it from outside:
// returned counts, bytes read back (after a remount where durability is the point), the trace.
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  Disk, DioError, crashTest, ioSetup, mkfs, mount, O_APPEND, O_CREAT, O_DIRECT, O_DSYNC, O_RDONLY, O_RDWR, O_SYNC,
  type DiskOptions, type FileHandle, type Filesystem, type Semantics, type TraceRecord,
} from "../host/index.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const BLOCK = 4096;
const SEMANTICS: Semantics[] = ["legacy", "seed", "merged", "iomap"];

async function world(opts: Partial<DiskOptions> = {}, semantics: Semantics = "seed"): Promise<{ disk: Disk; fs: Filesystem }> {
  const disk = await Disk.create({ size: 16 * MIB, arenaBytes: 4 * MIB, cacheBytes: 1 * MIB, seed: 7, executor: "inline", ...opts });
  await mkfs(disk, { blockSize: BLOCK, inodes: 32 });
  const fs = await mount(disk, { semantics });
  return { disk, fs };
}

/** `bytes` bytes of a pattern that differs per `seed` and per byte. */
function patternBytes(bytes: number, seed: number): Uint8Array {
  const buf = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) buf[i] = (i * 13 + seed * 101 + (i >> 10)) & 0xff;
  return buf;
}

/** patternBytes() in a buffer of the disk's arena (zero-copy for O_DIRECT). */
function pattern(disk: Disk, bytes: number, seed: number): Uint8Array {
  const buf = disk.alloc(bytes);
  buf.set(patternBytes(bytes, seed));
  return buf;
}

/** The code of the DioError `fn` throws (fails the test if it does not throw one). */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof DioError) return error.code;
    throw error;
  }
  assert.unreachable("the call did not throw");
  return "";
}

async function asyncCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    if (error instanceof DioError) return error.code;
    throw error;
  }
  assert.unreachable("the call did not reject");
  return "";
}

/** What the trace shows, minus the sequence numbers. */
function shape(records: readonly TraceRecord[]): string[] {
  return records.map((r) => `${r.action} ${r.op} ${r.sector}+${r.sectors} [${r.flags.join(",")}] t=${r.time} e=${r.error ?? 0}`);
}

// ---------------------------------------------------------------------------------------------
// The same engine: bios, clock, bytes and counts as the promise calls

test("writeSync/readSync do what write()/read() do: the same bios, device clock, counts and bytes, under every semantics", async () => {
  for (const semantics of SEMANTICS) {
    const runs: { trace: string[]; results: number[]; bytes: Uint8Array; now: number; size: number }[] = [];
    for (const sync of [false, true]) {
      const { disk, fs } = await world({}, semantics);
      const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
      const results: number[] = [];
      await fh.write(pattern(disk, 256 * KIB, 1), 0, 256 * KIB, 0);
      const t = disk.startTrace();
      const a = pattern(disk, 8 * KIB, 2);
      const b = pattern(disk, 3 * BLOCK, 3);
      const c = pattern(disk, BLOCK, 4);
      // Outside the emulator's memory: bounced, 1 MiB a pass, so 3 passes.
      const outside = new Uint8Array(2 * MIB + 2 * BLOCK);
      for (let i = 0; i < outside.length; i++) outside[i] = (i * 5 + 9) & 0xff;
      const back = disk.alloc(64 * KIB);
      const backOutside = new Uint8Array(2 * MIB + 2 * BLOCK);
      if (sync) {
        results.push(fh.writeSync(a, 0, a.length, 16 * KIB)); // overwrite
        results.push(fh.writeSync(b, 0, b.length, 256 * KIB)); // extends the file
        results.push(fh.writevSync([c, a], 300 * KIB)); // extends, leaving a hole behind
        results.push(fh.readSync(back, 0, back.length, 8 * KIB));
        results.push(fh.readSync(back, 0, back.length, 300 * KIB)); // short: stops at EOF
        results.push(fh.writeSync(outside, 0, outside.length, 512 * KIB));
        results.push(fh.readvSync([backOutside], 512 * KIB));
      } else {
        results.push((await fh.write(a, 0, a.length, 16 * KIB)).bytesWritten);
        results.push((await fh.write(b, 0, b.length, 256 * KIB)).bytesWritten);
        results.push((await fh.writev([c, a], 300 * KIB)).bytesWritten);
        results.push((await fh.read(back, 0, back.length, 8 * KIB)).bytesRead);
        results.push((await fh.read(back, 0, back.length, 300 * KIB)).bytesRead);
        results.push((await fh.write(outside, 0, outside.length, 512 * KIB)).bytesWritten);
        results.push((await fh.readv([backOutside], 512 * KIB)).bytesRead);
      }
      assert.equal(backOutside, outside, `${semantics} sync=${sync}: the bounced buffer read back`);
      const trace = shape(t.stop());
      const size = (await fh.stat()).size;
      const all = disk.alloc(size);
      await fh.read(all, 0, size, 0);
      runs.push({ trace, results, bytes: all.slice(), now: disk.device.now, size });
      await fs.unmount();
      await disk.close();
    }
    const [promised, polled] = runs;
    // Worked out from the calls: 8 KiB, 12 KiB, 4+8 KiB; 64 KiB; EOF at 312 KiB before the 1 MiB
    // write: 12 KiB; 2 MiB + 8 KiB twice.
    assert.equal(promised.results, [8 * KIB, 12 * KIB, 12 * KIB, 64 * KIB, 12 * KIB, 2 * MIB + 8 * KIB, 2 * MIB + 8 * KIB], `${semantics}: promise counts`);
    assert.equal(polled.results, promised.results, `${semantics}: counts`);
    assert.is(polled.size, 512 * KIB + 2 * MIB + 8 * KIB, `${semantics}: size`);
    assert.is(polled.size, promised.size);
    assert.ok(Buffer.from(polled.bytes).equals(Buffer.from(promised.bytes)), `${semantics}: file bytes`);
    assert.equal(polled.trace, promised.trace, `${semantics}: the trace`);
    assert.is(polled.now, promised.now, `${semantics}: device clock`);
    assert.ok(promised.trace.length > 20, "the trace recorded the bios");
  }
});

test("the file position: writeSync/readSync without a position use and advance it; O_APPEND writes at the end", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("p", O_RDWR | O_CREAT | O_DIRECT);
  const a = pattern(disk, 2 * BLOCK, 1);
  assert.is(fh.writeSync(a), 2 * BLOCK);
  assert.is(fh.writeSync(a, 0, BLOCK), BLOCK);
  assert.is((await fh.stat()).size, 3 * BLOCK);
  const app = await fs.open("p", O_RDWR | O_DIRECT | O_APPEND);
  assert.is(app.writeSync(a, 0, BLOCK, 0), BLOCK, "O_APPEND ignores the position");
  assert.is((await fh.stat()).size, 4 * BLOCK);
  const r = await fs.open("p", O_RDONLY | O_DIRECT);
  const back = disk.alloc(4 * BLOCK);
  assert.is(r.readSync(back, 0, 2 * BLOCK), 2 * BLOCK);
  assert.is(r.readSync(back, 2 * BLOCK, 2 * BLOCK), 2 * BLOCK);
  assert.is(r.readSync(back), 0, "at EOF");
  const expect = new Uint8Array(4 * BLOCK);
  expect.set(a, 0);
  expect.set(a.subarray(0, BLOCK), 2 * BLOCK);
  expect.set(a.subarray(0, BLOCK), 3 * BLOCK);
  assert.equal(back, expect);
  await fs.unmount();
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// Bad input and what a synchronous call cannot wait for: an error, and nothing changed

test("bad input: the promise call's error codes (EINVAL, EBADF), ENOTSUP without O_DIRECT", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("b", O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(2 * BLOCK);
  const odd = buf.subarray(512, 512 + BLOCK);
  assert.is(codeOf(() => fh.writeSync(buf, 0, 100, 0)), await asyncCodeOf(fh.write(buf, 0, 100, 0)));
  assert.is(codeOf(() => fh.writeSync(buf, 0, BLOCK, 100)), "EINVAL");
  assert.is(codeOf(() => fh.writeSync(buf, 0, BLOCK, -4096)), "EINVAL");
  assert.is(codeOf(() => fh.readSync(odd, 0, 100, 0)), "EINVAL");
  try {
    fh.writeSync(buf, 0, 1000, 0);
  } catch (error) {
    assert.match((error as Error).message, /multiple of the 512-byte logical block size/);
  }
  const ro = await fs.open("b", O_RDONLY | O_DIRECT);
  assert.is(codeOf(() => ro.writeSync(buf, 0, BLOCK, 0)), "EBADF");
  const buffered = await fs.open("b", O_RDWR);
  assert.is(codeOf(() => buffered.writeSync(buf, 0, BLOCK, 0)), "ENOTSUP");
  assert.is(codeOf(() => buffered.readSync(buf, 0, BLOCK, 0)), "ENOTSUP");
  await fh.close();
  assert.is(codeOf(() => fh.writeSync(buf, 0, BLOCK, 0)), "EBADF");
  assert.is(codeOf(() => fh.readSync(buf, 0, BLOCK, 0)), "EBADF");
  assert.is((await ro.stat()).size, 0, "nothing was written");
  await fs.unmount();
  await disk.close();
});

test("EAGAIN, with nothing changed: the inode lock held by a promise call in flight", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("l", O_RDWR | O_CREAT | O_DIRECT);
  const old = pattern(disk, 64 * KIB, 1);
  await fh.write(old, 0, old.length, 0);
  const inFlight = fh.write(pattern(disk, 16 * KIB, 2), 0, 16 * KIB, 0); // holds the lock until it completes
  const t = disk.startTrace();
  assert.is(codeOf(() => fh.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, 32 * KIB)), "EAGAIN");
  assert.is(codeOf(() => fh.readSync(disk.alloc(BLOCK), 0, BLOCK, 32 * KIB)), "EAGAIN");
  assert.equal(t.stop(), [], "no bio went out for the refused calls");
  await inFlight;
  const back = disk.alloc(64 * KIB);
  assert.is(fh.readSync(back, 0, back.length, 0), 64 * KIB, "the lock is free again");
  const expect = old.slice();
  expect.set(pattern(disk, 16 * KIB, 2), 0);
  assert.equal(back, expect, "only the promise call's write landed");
  await fs.unmount();
  await disk.close();
});

test("EAGAIN, with nothing changed: dirty page-cache pages, a hole inside the file, a partial last block to zero", async () => {
  const { disk, fs } = await world();
  // Dirty pages: a buffered write not yet written back.
  const direct = await fs.open("d", O_RDWR | O_CREAT | O_DIRECT);
  const buffered = await fs.open("d", O_RDWR);
  await direct.write(pattern(disk, 32 * KIB, 1), 0, 32 * KIB, 0);
  await buffered.write(pattern(disk, BLOCK, 2), 0, BLOCK, BLOCK);
  assert.is(codeOf(() => direct.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, 8 * KIB)), "EAGAIN");
  assert.is(codeOf(() => direct.readSync(disk.alloc(BLOCK), 0, BLOCK, 0)), "EAGAIN");
  assert.is(codeOf(() => direct.syncSync()), "EAGAIN");
  await direct.sync();
  const back = disk.alloc(32 * KIB);
  assert.is(direct.readSync(back, 0, back.length, 0), 32 * KIB, "written back: the synchronous read goes ahead");
  const expect = pattern(disk, 32 * KIB, 1);
  expect.set(pattern(disk, BLOCK, 2), BLOCK);
  assert.equal(back, expect, "the refused write changed nothing");

  // A hole inside the file: the direct write would fall back to the page cache.
  const sparse = await fs.open("s", O_RDWR | O_CREAT | O_DIRECT);
  await sparse.truncate(256 * KIB);
  const t = disk.startTrace();
  assert.is(codeOf(() => sparse.writeSync(pattern(disk, 8 * KIB, 4), 0, 8 * KIB, 64 * KIB)), "EAGAIN");
  assert.equal(t.stop(), []);
  assert.equal(fs.extentsOf(sparse.inode.ino).length, 0, "no block was allocated");
  assert.is((await sparse.stat()).size, 256 * KIB);
  // A file found whole before: a hole made since (truncated down, then up) is seen.
  const whole = await fs.open("w", O_RDWR | O_CREAT | O_DIRECT);
  await whole.write(pattern(disk, 64 * KIB, 7), 0, 64 * KIB, 0);
  assert.is(whole.writeSync(pattern(disk, BLOCK, 8), 0, BLOCK, 32 * KIB), BLOCK, "no hole: it goes ahead");
  await whole.truncate(16 * KIB);
  await whole.truncate(64 * KIB);
  assert.is(codeOf(() => whole.writeSync(pattern(disk, BLOCK, 9), 0, BLOCK, 32 * KIB)), "EAGAIN", "the new hole");
  assert.is(whole.writeSync(pattern(disk, BLOCK, 9), 0, BLOCK, 8 * KIB), BLOCK, "below it, still mapped");
  // Past the hole (extending) is fine, and so is reading the hole (zero-filled).
  assert.is(sparse.writeSync(pattern(disk, BLOCK, 5), 0, BLOCK, 256 * KIB), BLOCK);
  const hole = disk.alloc(BLOCK).fill(0x77);
  assert.is(sparse.readSync(hole, 0, BLOCK, 64 * KIB), BLOCK);
  assert.equal(hole, new Uint8Array(BLOCK));

  // A size inside a block: extending zeroes that block's tail through the page cache first.
  const tail = await fs.open("t", O_RDWR | O_CREAT);
  await tail.write(new Uint8Array(100).fill(1), 0, 100, 0);
  await tail.sync();
  const tailDirect = await fs.open("t", O_RDWR | O_DIRECT);
  assert.is(codeOf(() => tailDirect.writeSync(pattern(disk, BLOCK, 6), 0, BLOCK, BLOCK)), "EAGAIN");
  assert.is(codeOf(() => tailDirect.writeSync(pattern(disk, BLOCK, 6), 0, BLOCK, 0)), "EAGAIN", "over the partial block, past the size");
  assert.is((await tailDirect.stat()).size, 100);
  const head = disk.alloc(512);
  assert.is(tailDirect.readSync(head, 0, 512, 0), 100, "a read is fine");
  assert.equal(head.subarray(0, 100), new Uint8Array(100).fill(1));
  // Once the promise call has extended it, the size is a multiple of the block again.
  await tailDirect.write(pattern(disk, BLOCK, 6), 0, BLOCK, 0);
  assert.is(tailDirect.writeSync(pattern(disk, BLOCK, 7), 0, BLOCK, BLOCK), BLOCK);
  assert.is((await tailDirect.stat()).size, 2 * BLOCK);
  await fs.unmount();
  await disk.close();
});

test("EAGAIN, with nothing changed: an O_DSYNC or extending write while a promise call's metadata commit runs", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("c", O_RDWR | O_CREAT | O_DIRECT);
  const dsync = await fs.open("c", O_RDWR | O_DIRECT | O_DSYNC);
  await fh.write(pattern(disk, 64 * KIB, 1), 0, 64 * KIB, 0);
  const committing = fs.sync(); // the file's new size and blocks need a commit
  for (let i = 0; i < 1000 && !fs.commitBusy; i++) await Promise.resolve();
  assert.ok(fs.commitBusy, "setup: the promise call's commit holds the commit lock");
  assert.is(codeOf(() => dsync.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 0)), "EAGAIN");
  assert.is(codeOf(() => fh.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 64 * KIB)), "EAGAIN");
  assert.is(fh.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, BLOCK), BLOCK, "a plain overwrite needs no commit");
  await committing;
  assert.is((await fh.stat()).size, 64 * KIB);
  assert.is(dsync.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 0), BLOCK);
  await fs.unmount();
  await disk.close();
});

test("a polled commit waits for page-cache writeback another caller has in flight (it ends in the device's steps)", async () => {
  const { disk, fs } = await world();
  const a = await fs.open("a", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
  const b = await fs.open("b", O_RDWR | O_CREAT);
  await b.write(new Uint8Array(8 * KIB).fill(1), 0, 8 * KIB, 0);
  const writeback = b.sync(); // b's dirty pages go out: data writes the next commit orders after
  for (let i = 0; i < 100 && disk.device.inflightCount === 0; i++) await Promise.resolve();
  assert.ok(disk.device.inflightCount > 0, "setup: b's writeback is at the device");
  // Extending and O_DSYNC: its sync commits, after b's data writes have ended.
  assert.is(a.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 0), BLOCK);
  assert.is((await a.stat()).size, BLOCK);
  a.syncSync();
  await writeback;
  const cut = await afterCut(disk, "a", BLOCK);
  assert.is(cut.size, BLOCK);
  assert.equal(cut.data, pattern(disk, BLOCK, 2));
  await disk.close();
});

test("a commit started by a queued AIO completion inside the call's own device steps waits for the call (no EAGAIN after the data went out)", async () => {
  // The AIO O_DSYNC overwrite completes in one of writeSync's polled steps; under merged its
  // completion syncs at once (it cannot take the inode lock, which the call holds), and commits.
  for (let seed = 1; seed <= 12; seed++) {
    const { disk, fs } = await world({ seed }, "merged");
    const x = await fs.open("x", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    await x.write(pattern(disk, 8 * KIB, 1), 0, 8 * KIB, 0);
    const ctx = ioSetup(4);
    ctx.submit([{ opcode: "pwrite", fh: x, buf: pattern(disk, BLOCK, 2), offset: 0 }]);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    assert.is(x.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, 8 * KIB), BLOCK, `seed ${seed}: the extending O_DSYNC write`);
    assert.is((await x.stat()).size, 12 * KIB);
    const [event] = await ctx.getEvents(1, 1);
    assert.is(event.res, BLOCK);
    await ctx.destroy();
    const expect = pattern(disk, 12 * KIB, 1);
    expect.set(pattern(disk, BLOCK, 2), 0);
    expect.set(pattern(disk, BLOCK, 3), 8 * KIB);
    const cut = await afterCut(disk, "x", 12 * KIB);
    assert.is(cut.size, 12 * KIB, `seed ${seed}: size after the cut`);
    assert.equal(cut.data, expect, `seed ${seed}: data after the cut`);
    await disk.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Durability: O_SYNC/O_DSYNC, syncSync/datasyncSync, checked after a power cut and a remount

async function afterCut(disk: Disk, name: string, bytes: number): Promise<{ size: number; data: Uint8Array }> {
  await disk.crash();
  const fs = await mount(disk);
  const fh = await fs.open(name, O_RDONLY | O_DIRECT);
  const size = (await fh.stat()).size;
  const data = disk.alloc(bytes);
  await fh.read(data, 0, bytes, 0);
  await fs.unmount();
  return { size, data: data.slice() };
}

test("O_DSYNC and O_SYNC synchronous writes are durable when they return, under every semantics (extending: a commit; overwrite: a flush or FUA)", async () => {
  for (const semantics of SEMANTICS) {
    for (const flag of [O_DSYNC, O_SYNC]) {
      const { disk, fs } = await world({ fua: true }, semantics);
      const fh = await fs.open("k", O_RDWR | O_CREAT | O_DIRECT | flag);
      const first = pattern(disk, 3 * BLOCK, 1);
      let t = disk.startTrace();
      assert.is(fh.writeSync(first, 0, first.length, 0), 3 * BLOCK);
      const extending = t.stop();
      // The new size and blocks: a commit, whose superblock write carries PREFLUSH and FUA.
      assert.ok(extending.some((r) => r.action === "Q" && r.op === "write" && r.flags.includes("PREFLUSH") && r.flags.includes("FUA")), `${semantics}: commit`);
      const second = pattern(disk, BLOCK, 2);
      t = disk.startTrace();
      assert.is(fh.writeSync(second, 0, BLOCK, BLOCK), BLOCK);
      const overwrite = t.stop();
      const flushes = overwrite.filter((r) => r.action === "Q" && r.op === "flush").length;
      const fuaData = overwrite.filter((r) => r.action === "Q" && r.op === "write" && r.flags.includes("FUA")).length;
      const commits = overwrite.filter((r) => r.action === "Q" && r.op === "write" && r.flags.includes("PREFLUSH")).length;
      if (flag === O_SYNC) {
        // A full sync: the file times changed, so the caller's sync commits them (PREFLUSH, and
        // the superblock FUA), and the data write itself is no FUA write (assertion 57).
        assert.is(commits, 1, `${semantics} O_SYNC: a commit`);
        assert.is(fuaData, 1, `${semantics} O_SYNC: only the superblock is FUA`);
      } else if (semantics === "iomap") {
        // Write-through: a pure overwrite on a FUA device goes out FUA, with no flush (6.3).
        assert.is(fuaData, 1, `${semantics}: FUA`);
        assert.is(flushes + commits, 0, `${semantics}: no flush`);
      } else {
        assert.is(fuaData, 0, `${semantics}: no FUA data write`);
        assert.is(flushes, 1, `${semantics}: the caller's flush`);
        assert.is(commits, 0, `${semantics}: no commit`);
      }
      const expect = first.slice();
      expect.set(second, BLOCK);
      const cut = await afterCut(disk, "k", 3 * BLOCK);
      assert.is(cut.size, 3 * BLOCK, `${semantics}: size after the cut`);
      assert.equal(cut.data, expect, `${semantics}: data after the cut`);
      await disk.close();
    }
  }
});

test("seed: a synchronous O_DSYNC write allocates the sync-work record and frees it unqueued; the queue is created at once", async () => {
  for (const executor of ["inline", "worker"] as const) {
    const { disk, fs } = await world({ executor }, "seed");
    const fh = await fs.open("w", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    await fh.write(pattern(disk, 16 * KIB, 1), 0, 16 * KIB, 0);
    const before = { ...fs.dioStats };
    assert.is(before.queuesCreated, 1);
    assert.is(fh.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 0), BLOCK);
    assert.is(fs.dioStats.workAllocated, before.workAllocated + 1);
    assert.is(fs.dioStats.workFreed, before.workFreed + 1);
    assert.is(fs.dioStats.workQueued, before.workQueued, "never queued");
    assert.is(fs.dioStats.syncs, before.syncs + 1, "the caller synced once");
    await fs.unmount();
    await disk.close();
    // On a fresh mount the first write is synchronous: the queue is made and installed by it.
    const fresh = await world({ executor }, "seed");
    const f2 = await fresh.fs.open("w", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    assert.is(fresh.fs.dioQueue, null);
    assert.is(f2.writeSync(pattern(fresh.disk, BLOCK, 3), 0, BLOCK, 0), BLOCK);
    assert.is(fresh.fs.dioStats.queuesCreated, 1);
    assert.ok(fresh.fs.dioQueue !== null, "installed");
    assert.is(fresh.fs.dioStats.workAllocated, 1);
    assert.is(fresh.fs.dioStats.workFreed, 1);
    await fresh.fs.unmount();
    await fresh.disk.close();
  }
});

test("datasyncSync/syncSync: a commit when the file's size or blocks changed, else a flush; durable after a power cut", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("s", O_RDWR | O_CREAT | O_DIRECT);
  const data = pattern(disk, 5 * BLOCK, 1);
  assert.is(fh.writeSync(data, 0, data.length, 0), 5 * BLOCK);
  let t = disk.startTrace();
  fh.datasyncSync();
  assert.ok(t.stop().some((r) => r.action === "Q" && r.flags.includes("PREFLUSH") && r.flags.includes("FUA")), "a commit");
  const more = pattern(disk, BLOCK, 2);
  assert.is(fh.writeSync(more, 0, BLOCK, 0), BLOCK);
  t = disk.startTrace();
  fh.datasyncSync();
  const flushOnly = t.stop();
  assert.is(flushOnly.filter((r) => r.action === "Q" && r.op === "flush").length, 1, "an overwrite: a flush");
  assert.is(flushOnly.filter((r) => r.action === "Q" && r.op === "write").length, 0, "and no commit");
  t = disk.startTrace();
  fh.syncSync(); // the file times changed: a full sync commits them
  assert.ok(t.stop().some((r) => r.action === "Q" && r.flags.includes("FUA")), "fsync commits the times");
  const expect = data.slice();
  expect.set(more, 0);
  const cut = await afterCut(disk, "s", 5 * BLOCK);
  assert.is(cut.size, 5 * BLOCK);
  assert.equal(cut.data, expect);
  await disk.close();
});

test("ENOSPC: an extending synchronous write commits (polled) to free what an unlink released, then succeeds", async () => {
  const disk = await Disk.create({ size: 4 * MIB, arenaBytes: 2 * MIB, cacheBytes: 256 * KIB, seed: 3, executor: "inline" });
  await mkfs(disk, { blockSize: BLOCK, inodes: 8 });
  const fs = await mount(disk);
  const big = await fs.open("big", O_RDWR | O_CREAT | O_DIRECT);
  const chunk = disk.alloc(256 * KIB);
  let at = 0;
  for (;;) {
    try {
      await big.write(chunk, 0, chunk.length, at);
      at += chunk.length;
    } catch (error) {
      assert.ok(error instanceof DioError && error.code === "ENOSPC");
      break;
    }
  }
  await big.close();
  await fs.sync();
  const small = await fs.open("small", O_RDWR | O_CREAT | O_DIRECT);
  assert.is(codeOf(() => small.writeSync(chunk, 0, chunk.length, 0)), "ENOSPC", "no free block and nothing to reclaim");
  assert.is((await small.stat()).size, 0);
  await fs.unlink("big"); // its blocks are free once a commit records it
  const t = disk.startTrace();
  assert.is(small.writeSync(chunk, 0, chunk.length, 0), chunk.length);
  assert.ok(t.stop().some((r) => r.action === "Q" && r.flags.includes("PREFLUSH")), "the polled commit");
  assert.is((await small.stat()).size, chunk.length);
  await fs.unmount();
  await disk.close();
});

test("crashTest: synchronous O_DSYNC writes and datasyncSync lose nothing they acknowledged, under every semantics", async () => {
  // A storage engine's synchronous IO: O_DSYNC overwrites of a preallocated region, extending
  // appends, and plain writes made durable by datasyncSync(); power cut at a random request.
  const workload = async ({ disk, fs, random }: { disk: Disk; fs: Filesystem; random: () => number }): Promise<void> => {
    const dsync = await fs.open("data", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
    const plain = await fs.open("data", O_RDWR | O_DIRECT);
    const init = disk.alloc(16 * BLOCK);
    await dsync.write(init, 0, init.length, 0);
    const buf = disk.alloc(BLOCK);
    for (let i = 0; i < 24; i++) {
      for (let k = 0; k < BLOCK; k++) buf[k] = (i * 37 + k) & 0xff;
      const size = (await dsync.stat()).size;
      const choice = random();
      if (choice < 0.4) dsync.writeSync(buf, 0, BLOCK, Math.floor(random() * 16) * BLOCK);
      else if (choice < 0.7) dsync.writeSync(buf, 0, BLOCK, size);
      else {
        plain.writeSync(buf, 0, BLOCK, Math.floor(random() * (size / BLOCK)) * BLOCK);
        plain.datasyncSync();
      }
    }
  };
  for (const semantics of SEMANTICS) {
    const report = await crashTest({ workload, semantics, runs: 30, seed: 1 });
    assert.is(report.runs, 30);
    assert.ok(report.acknowledgedWrites > 30, `${semantics}: ${report.acknowledgedWrites} writes were promised`);
    assert.equal(report.workloadErrors, [], `${semantics}: workload errors`);
    assert.is(report.lost, 0, `${semantics}: ${JSON.stringify(report.violations.slice(0, 2))}`);
    assert.equal(report.violations, []);
  }
});

test("truncateSync/statSync: what truncate()/stat() do where no IO is needed; EAGAIN before anything changes otherwise; durable after datasyncSync", async () => {
  const outcomes: { size: number; blocks: number; extents: number[]; tail: Uint8Array; grown: Uint8Array }[] = [];
  for (const sync of [false, true]) {
    const { disk, fs } = await world();
    const fh = await fs.open("t", O_RDWR | O_CREAT | O_DIRECT);
    await fh.write(pattern(disk, 64 * KIB, 1), 0, 64 * KIB, 0);
    if (sync) fh.truncateSync(24 * KIB);
    else await fh.truncate(24 * KIB);
    const shrunk = sync ? fh.statSync() : await fh.stat();
    if (sync) fh.truncateSync(40 * KIB);
    else await fh.truncate(40 * KIB);
    const tail = disk.alloc(16 * KIB).fill(0x77);
    assert.is(fh.readSync(tail, 0, 16 * KIB, 24 * KIB), 16 * KIB, "the grown part reads");
    const grown = disk.alloc(24 * KIB);
    assert.is(fh.readSync(grown, 0, 24 * KIB, 0), 24 * KIB);
    assert.is(shrunk.size, 24 * KIB);
    outcomes.push({ size: (await fh.stat()).size, blocks: shrunk.blocks, extents: [...fs.extentsOf(fh.inode.ino)], tail: tail.slice(), grown: grown.slice() });
    await fs.unmount();
    await disk.close();
  }
  assert.equal(outcomes[1], outcomes[0], "the same as the promise calls");
  assert.is(outcomes[1].size, 40 * KIB);
  assert.is(outcomes[1].blocks, 24 * KIB / 512, "the blocks past 24 KiB were freed");
  assert.equal(outcomes[1].tail, new Uint8Array(16 * KIB), "what was cut reads as zeros");
  assert.equal(outcomes[1].grown, patternBytes(24 * KIB, 1), "what was kept is unchanged");

  const { disk, fs } = await world();
  const fh = await fs.open("u", O_RDWR | O_CREAT | O_DIRECT);
  await fh.write(pattern(disk, 32 * KIB, 2), 0, 32 * KIB, 0);
  // Inside a page: its tail would be zeroed through the page cache.
  assert.is(codeOf(() => fh.truncateSync(10 * KIB + 100)), "EAGAIN");
  assert.is(fh.statSync().size, 32 * KIB, "unchanged");
  // Growing a file whose size is inside a block.
  await fh.truncate(20 * KIB + 100);
  assert.is(codeOf(() => fh.truncateSync(64 * KIB)), "EAGAIN");
  assert.is(fh.statSync().size, 20 * KIB + 100);
  await fh.truncate(20 * KIB);
  // The inode lock held by a promise call in flight.
  const inFlight = fh.write(pattern(disk, BLOCK, 3), 0, BLOCK, 0);
  assert.is(codeOf(() => fh.truncateSync(8 * KIB)), "EAGAIN");
  await inFlight;
  assert.is(fh.statSync().size, 20 * KIB);
  // Bad input, as truncate().
  assert.is(codeOf(() => fh.truncateSync(-1)), "EINVAL");
  const ro = await fs.open("u", O_RDONLY);
  assert.is(codeOf(() => ro.truncateSync(0)), "EINVAL");
  assert.equal(ro.statSync(), await ro.stat());
  // Durable once synced: the smaller size and the freed blocks survive a power cut.
  fh.truncateSync(8 * KIB);
  fh.datasyncSync();
  const cut = await afterCut(disk, "u", 8 * KIB);
  assert.is(cut.size, 8 * KIB);
  const expect = pattern(disk, 8 * KIB, 2);
  expect.set(pattern(disk, BLOCK, 3), 0);
  assert.equal(cut.data, expect);
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// The raw block device

test("block device: readSync/writeSync/readvSync/writevSync, the end of the device, O_DSYNC's flush, syncSync", async () => {
  const disk = await Disk.create({ size: 1 * MIB, arenaBytes: 1 * MIB, cacheBytes: 256 * KIB, seed: 5, executor: "inline", logicalBlockSize: 512 });
  const dev = await disk.openBlockDevice(O_RDWR | O_DIRECT);
  const a = pattern(disk, 1536, 1);
  assert.is(dev.writeSync(a, 0, a.length, 512), 1536);
  const b = pattern(disk, 1024, 2);
  assert.is(dev.writevSync([b, a.subarray(0, 512)], 8192), 1536);
  const back = disk.alloc(4096);
  assert.is(dev.readSync(back, 0, 2048, 0), 2048);
  assert.equal(back.subarray(512, 2048), a);
  assert.equal(back.subarray(0, 512), new Uint8Array(512));
  const v1 = disk.alloc(1024);
  const v2 = disk.alloc(512);
  assert.is(dev.readvSync([v1, v2], 8192), 1536);
  assert.equal(v1, b);
  assert.equal(v2, a.subarray(0, 512));
  assert.is(dev.readSync(back, 0, 4096, MIB), 0, "a read at the end returns 0");
  assert.is(dev.readSync(back, 0, 4096, MIB - 1024), 1024, "a read across the end stops there");
  assert.is(codeOf(() => dev.writeSync(back, 0, 512, MIB)), "ENOSPC");
  assert.is(codeOf(() => dev.writeSync(back, 0, 100, 0)), "EINVAL");
  const dsync = await disk.openBlockDevice(O_RDWR | O_DIRECT | O_DSYNC);
  let t = disk.startTrace();
  assert.is(dsync.writeSync(a, 0, 512, 4096), 512);
  assert.is(t.stop().filter((r) => r.action === "Q" && r.op === "flush").length, 1, "O_DSYNC: a flush after the write");
  t = disk.startTrace();
  dev.syncSync();
  dev.datasyncSync();
  assert.is(t.stop().filter((r) => r.action === "Q" && r.op === "flush").length, 2);
  const plain = await disk.openBlockDevice(O_RDWR);
  assert.is(codeOf(() => plain.writeSync(a, 0, 512, 0)), "ENOTSUP");
  await disk.crash();
  assert.is(codeOf(() => dev.readSync(back, 0, 512, 0)), "EIO", "after a power cut the handle is dead");
  await disk.close();
});

// ---------------------------------------------------------------------------------------------
// Polling: other callers' requests, power cuts, re-entry, file times

test("a polled wait completes the requests other callers have in flight, in device order; their promises then resolve", async () => {
  const { disk, fs } = await world({ latency: { readMin: 1, readMax: 1, writeMin: 4, writeMax: 4, flushMin: 2, flushMax: 2 } });
  const x = await fs.open("x", O_RDWR | O_CREAT | O_DIRECT);
  const y = await fs.open("y", O_RDWR | O_CREAT | O_DIRECT);
  await x.write(pattern(disk, 64 * KIB, 1), 0, 64 * KIB, 0);
  await y.write(pattern(disk, 64 * KIB, 2), 0, 64 * KIB, 0);
  const t = disk.startTrace();
  const pending = [x.write(pattern(disk, BLOCK, 3), 0, BLOCK, 0), x.write(pattern(disk, BLOCK, 4), 0, BLOCK, 8 * KIB)];
  // The first promise call has submitted its bio synchronously; the second waits for the lock.
  assert.is(y.writeSync(pattern(disk, BLOCK, 5), 0, BLOCK, 0), BLOCK);
  const records = t.stop();
  const completions = records.filter((r) => r.action === "C").map((r) => r.sector);
  const dispatched = records.filter((r) => r.action === "D").map((r) => r.sector);
  assert.is(dispatched.length, 2, "x's first write and y's write were at the device");
  assert.equal(completions, dispatched, "both completed, in dispatch order (same latency)");
  await Promise.all(pending);
  const back = disk.alloc(BLOCK);
  await x.read(back, 0, BLOCK, 8 * KIB);
  assert.equal(back, pattern(disk, BLOCK, 4));
  await x.read(back, 0, BLOCK, 0);
  assert.equal(back, pattern(disk, BLOCK, 3));
  await fs.unmount();
  await disk.close();
});

test("a power cut while a synchronous write is at the device fails it with EIO; a synchronous call inside the device's step fails with EDEADLK", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("p", O_RDWR | O_CREAT | O_DIRECT);
  const other = await fs.open("q", O_RDWR | O_CREAT | O_DIRECT);
  await fh.write(pattern(disk, 64 * KIB, 1), 0, 64 * KIB, 0);
  await other.write(pattern(disk, 64 * KIB, 1), 0, 64 * KIB, 0);
  await fs.sync();
  // Re-entry: a cut-point callback (it runs inside the step) cannot poll, even on another file.
  let inner = "";
  const innerBuf = disk.alloc(BLOCK).fill(0x77);
  const t = disk.startTrace();
  disk.device.beforeCompletion = () => {
    disk.device.beforeCompletion = undefined;
    inner = codeOf(() => other.readSync(innerBuf, 0, BLOCK, 32 * KIB));
  };
  assert.is(fh.writeSync(pattern(disk, BLOCK, 2), 0, BLOCK, 0), BLOCK, "the outer call completes");
  assert.is(inner, "EDEADLK");
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(innerBuf, new Uint8Array(BLOCK).fill(0x77), "the refused read moved nothing");
  assert.is(t.stop().filter((r) => r.op === "read").length, 0, "and sent no bio");
  assert.is(other.readSync(innerBuf, 0, BLOCK, 32 * KIB), BLOCK, "the file is not left locked");
  disk.device.beforeCompletion = () => {
    disk.device.beforeCompletion = undefined;
    void disk.crash();
  };
  assert.is(codeOf(() => fh.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, BLOCK)), "EIO");
  assert.is(codeOf(() => fh.writeSync(pattern(disk, BLOCK, 3), 0, BLOCK, BLOCK)), "EIO", "the filesystem is dead");
  await disk.close();
});

test("file times advance over a long run of synchronous writes (the coarse clock is read again)", async () => {
  const { disk, fs } = await world();
  const fh = await fs.open("m", O_RDWR | O_CREAT | O_DIRECT);
  const buf = pattern(disk, BLOCK, 1);
  fh.writeSync(buf, 0, BLOCK, 0);
  const first = (await fh.stat()).mtimeMs;
  // No await: one synchronous run, of at least 40 ms and 200 writes. The clock after each write
  // is kept: the file time of the last write is read from the clock within its last 64 readings.
  const start = Date.now();
  const after: number[] = [];
  while (Date.now() - start < 40 || after.length < 200) {
    fh.writeSync(buf, 0, BLOCK, 0);
    after.push(Date.now());
  }
  const st = await fh.stat();
  const bound = after[after.length - 66];
  assert.ok(st.mtimeMs >= bound, `mtime ${st.mtimeMs} follows the clock (${bound} before the last 65 writes); it was ${first}`);
  assert.ok(st.mtimeMs > first);
  await fs.unmount();
  await disk.close();
});

test.run();
