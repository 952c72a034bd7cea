// Direct-IO edge cases found in review: ENOSPC retries and failed writes never leave blocks that
// read back stale, a failed buffered remainder still reports the direct part, IOV_MAX is checked
// before anything happens, bounce buffers never leak, the read lock is held until the last bio of
// a multi-pass read is submitted, O_APPEND ignores a misaligned position, huge read offsets read
// nothing, and buffered writes into one block of the raw device do not lose each other.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, DioError, FileHandle, ioSetup, mkfs, mount, O_APPEND, O_CREAT, O_DIRECT, O_RDWR } from "../host/index.js";
import { dioStart } from "../host/dio.js";

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    assert.instance(error, DioError);
    return (error as DioError).code;
  }
}

/** Fills the free space with file `name` (direct 4 KiB writes) and returns how many blocks it took. */
async function fillUp(fs: Awaited<ReturnType<typeof mount>>, disk: Disk, name: string, byte: number): Promise<number> {
  const filler = await fs.open(name, O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(4096);
  buf.fill(byte);
  let blocks = 0;
  for (;;) {
    if ((await code(filler.write(buf, 0, 4096, blocks * 4096))) !== "ok") break;
    blocks++;
  }
  disk.free(buf);
  return blocks;
}

test("an ENOSPC retry after a commit still zeroes the head of the new block (no stale bytes)", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const pend = await fs.open("pend", O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(8192);
  buf.fill(0x50);
  for (let i = 0; i < 4; i++) await pend.write(buf, 0, 4096, i * 4096);
  const blocks = await fillUp(fs, disk, "filler", 0x46);
  await fs.sync();
  const filler = await fs.open("filler", O_RDWR | O_DIRECT);
  await filler.truncate((blocks - 1) * 4096);
  await fs.sync(); // one free block, holding 0x46
  await pend.close();
  await fs.unlink("pend"); // four blocks wait for a commit
  const victim = await fs.open("victim", O_RDWR | O_CREAT | O_DIRECT);
  buf.fill(0x41);
  const { bytesWritten } = await victim.write(buf, 0, 4608, 512);
  assert.is(bytesWritten, 4608);
  const back = disk.alloc(8192);
  await victim.read(back, 0, 8192, 0);
  assert.ok(back.subarray(0, 512).every((x) => x === 0), "the head of the first block reads as zeros");
  assert.ok(back.subarray(512, 5120).every((x) => x === 0x41));
  assert.ok((await fs.fsck()).ok);
  await disk.close();
});

test("an ENOSPC retry maps its own buffers again: another file's direct write that maps during the commit does not take its place", async () => {
  // The iov table is the disk's: a retry that reused it after the commit's await wrote the other
  // call's bytes into this file (found in review).
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 8 << 20, cacheBytes: 1 << 20, executor: "inline" });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const other = await fs.open("other", O_RDWR | O_CREAT | O_DIRECT);
  const old = disk.alloc(64 << 10);
  old.fill(0xcc);
  await other.write(old, 0, old.length, 0);
  const filler = await fs.open("filler", O_RDWR | O_CREAT | O_DIRECT);
  const fill = disk.alloc(4096);
  fill.fill(0xaa);
  for (let at = 0; (await code(filler.write(fill, 0, 4096, at))) === "ok"; at += 4096);
  await filler.close();
  await fs.sync();
  await fs.unlink("filler"); // its blocks free only at the next commit
  const mine = await fs.open("mine", O_RDWR | O_CREAT | O_DIRECT);
  const myData = disk.alloc(64 << 10);
  myData.fill(0xbb);
  const theirs = disk.alloc(64 << 10);
  theirs.fill(0xdd);
  const writing = mine.write(myData, 0, myData.length, 0); // ENOSPC, then a commit, then a retry
  for (let i = 0; i < 3; i++) await Promise.resolve(); // into the commit's IO
  const overwriting = other.write(theirs, 0, theirs.length, 0); // maps while the commit runs
  const [a, b] = await Promise.all([writing, overwriting]);
  assert.equal([a.bytesWritten, b.bytesWritten], [64 << 10, 64 << 10]);
  const back = disk.alloc(64 << 10);
  await mine.read(back, 0, back.length, 0);
  assert.ok(back.every((x) => x === 0xbb), `the retried write's file holds its own bytes (first byte 0x${back[0].toString(16)})`);
  await other.read(back, 0, back.length, 0);
  assert.ok(back.every((x) => x === 0xdd), "the other file holds its overwrite");
  await disk.close();
});

test("a failed extending direct write gives its blocks back: a later sub-block write zeroes around itself", async () => {
  const disk = await Disk.create({ size: 16 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20 });
  const raw = await disk.openBlockDevice(O_RDWR | O_DIRECT);
  const junk = disk.alloc(1 << 20);
  junk.fill(0x53);
  for (let at = 0; at < 16 << 20; at += 1 << 20) await raw.write(junk, 0, 1 << 20, at);
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(8192);
  buf.fill(0x41);
  disk.injectFault({ op: "write", sector: 0, sectors: (16 << 20) / 512, times: 1 });
  assert.is(await code(f.write(buf, 0, 8192, 0)), "EIO");
  disk.clearFaults();
  assert.is((await f.stat()).size, 0);
  assert.is((await f.stat()).blocks, 0, "no block stays allocated past EOF");
  await f.write(buf, 0, 512, 512);
  const back = disk.alloc(4096);
  const { bytesRead } = await f.read(back, 0, 4096, 0);
  assert.is(bytesRead, 1024);
  assert.ok(back.subarray(0, 512).every((x) => x === 0), "no stale device bytes before the data");
  await disk.close();
});

test("when the buffered remainder of a hole fallback fails, the call reports the direct part", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(8192);
  buf.fill(0x11);
  await f.write(buf, 0, 4096, 0);
  await f.truncate(8192); // block 0 mapped, block 1 a hole inside i_size
  await fillUp(fs, disk, "filler", 0x33);
  await fs.sync();
  buf.fill(0x22);
  const { bytesWritten } = await f.write(buf, 0, 8192, 0);
  assert.is(bytesWritten, 4096, "the direct part, not ENOSPC");
  const back = disk.alloc(4096);
  await f.read(back, 0, 4096, 0);
  assert.ok(back.every((x) => x === 0x22));
  await disk.close();
});

test("more than IOV_MAX buffers is EINVAL before anything is written", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const first = disk.alloc(1 << 20);
  first.fill(0x77);
  const small = disk.alloc(512);
  const buffers = [first, ...Array.from({ length: 1100 }, () => small)];
  assert.is(await code(f.writev(buffers, 0)), "EINVAL");
  assert.is((await f.stat()).size, 0, "nothing was written");
  await disk.close();
});

test("bounce buffers never leak, and a bounced call larger than the arena still works", async () => {
  const disk = await Disk.create({ size: 64 << 20, arenaBytes: 4 << 20, cacheBytes: 1 << 20 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const plain = new Uint8Array(20 << 20).map((_, i) => (i * 7) & 0xff);
  assert.is((await f.write(plain, 0, plain.length, 0)).bytesWritten, plain.length);
  const back = new Uint8Array(20 << 20);
  assert.is((await f.read(back, 0, back.length, 0)).bytesRead, back.length);
  assert.equal(back, plain);
  const whole = disk.alloc(4 << 20);
  assert.is(whole.byteLength, 4 << 20, "the arena is whole again");
  await disk.close();
});

test("a multi-pass direct read holds i_mutex until its last bio is submitted", async () => {
  const disk = await Disk.create({ size: 64 << 20, arenaBytes: 24 << 20, cacheBytes: 1 << 20 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  const buf = disk.alloc(20 << 20);
  await f.write(buf, 0, buf.length, 0);
  const trace = disk.startTrace();
  const queuedUnlocked: number[] = [];
  const records = trace.peek() as unknown as { push(...items: { action: string; op: string; sector: number }[]): number };
  const push = records.push.bind(records);
  records.push = (...items) => {
    for (const r of items) if (r.action === "Q" && r.op === "read" && !f.inode.lock.locked) queuedUnlocked.push(r.sector);
    return push(...items);
  };
  assert.is((await f.read(buf, 0, buf.length, 0)).bytesRead, 20 << 20);
  trace.stop();
  assert.equal(queuedUnlocked, [], "every read bio was queued with i_mutex held");
  await disk.close();
});

test("O_APPEND direct writes ignore a misaligned position; reads past 2^40 read nothing", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 1024 });
  const fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT | O_APPEND);
  const buf = disk.alloc(4096);
  await f.write(buf, 0, 4096, 0);
  assert.is((await f.write(buf, 0, 4096, 100)).bytesWritten, 4096);
  assert.is((await f.stat()).size, 8192);
  assert.is((await f.read(buf, 0, 4096, 2 ** 45)).bytesRead, 0);
  await disk.close();
});

test("buffered writes into one logical block of the raw device do not lose each other", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, logicalBlockSize: 4096 });
  const dev = await disk.openBlockDevice(O_RDWR);
  assert.instance(dev, FileHandle, "openBlockDevice() returns a FileHandle (API.md)");
  await Promise.all([
    dev.write(new Uint8Array(100).fill(0x61), 0, 100, 0),
    dev.write(new Uint8Array(100).fill(0x62), 0, 100, 200),
  ]);
  const back = new Uint8Array(300);
  await dev.read(back, 0, 300, 0);
  assert.is(back[0], 0x61);
  assert.is(back[200], 0x62);
  await disk.close();
});

test("whoever drops the last reference completes the dio: the last bio, or the submitter (2.12)", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const target = {
    disk, ino: 0, fsBits: 9, semantics: "seed" as const, size: () => disk.size, skipHoles: false,
    allocated: () => undefined, reclaim: async () => false, reclaimPolled: () => false, extended: () => undefined, alive: () => undefined,
    metadataDirty: () => false,
  };
  const buf = disk.alloc(8192);
  const segments = [{ user: buf, addr: buf.byteOffset, len: buf.byteLength }];
  for (const submitterLast of [false, true]) {
    let completedBy = "";
    let inDrop = false;
    let result = 0;
    let fromBio: boolean | undefined;
    const dio = await dioStart(target, "write", segments, 0, 9, "pwrite64", {
      dioComplete: (r, byBio) => {
        completedBy = inDrop ? "submitter" : "bio completion";
        fromBio = byBio;
        result = r.ret;
      },
    });
    // Either let every bio complete first, or drop at once.
    if (submitterLast) for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.is(completedBy, "", "nothing completes while the submitter holds its reference");
    inDrop = true;
    dio.drop();
    inDrop = false;
    for (let i = 0; i < 20 && completedBy === ""; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.is(completedBy, submitterLast ? "submitter" : "bio completion");
    assert.is(fromBio, !submitterLast, "the completion says who dropped the last reference");
    assert.is(result, 8192);
    assert.throws(() => dio.drop(), /twice/);
  }
  await disk.close();
});

test("a power cut fails a direct IO whose bio waits for bvec slots: the AIO event (EIO) and a synchronous write's error arrive", async () => {
  const disk = await Disk.create({ size: 64 << 20, arenaBytes: 4 << 20, seed: 5 });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { semantics: "seed" });
  const fh = await fs.open("f", O_RDWR | O_CREAT | O_DIRECT);
  // Two buffers apart in memory: each request's bio has two bvecs, which come from the pool's
  // ranges (a one-bvec bio would take a slot of its own from the stack kept for them).
  const a = disk.alloc(4096);
  disk.alloc(4096);
  const b = disk.alloc(4096);
  await fh.writev([a, b], 0); // allocated: the AIO write below is queued, not synchronous
  // Fill the pool's ranges with bios of 256 bvecs each.
  const buf = disk.alloc(4096);
  const segments = Array.from({ length: 256 }, () => ({ buf, length: 512 }));
  const statuses: Promise<number>[] = [];
  for (let i = 0; i < 257; i++) statuses.push(disk.queue.submitBioWait({ op: "write", sector: 40000 + i * 256, segments }));
  const fillersWaiting = disk.queue.waitingCount;
  const ctx = ioSetup(4);
  ctx.submit([{ opcode: "pwritev", fh, bufs: [a, b], offset: 0, data: 1 }]);
  for (let i = 0; i < 5; i++) await Promise.resolve(); // the request starts (and lets go of the inode lock)
  const sync = fh.writev([a, b], 8192).then(() => "returned", (error: unknown) => (error as DioError).code);
  // Promise jobs only (the device steps once they have all run): both requests reach the block
  // layer and wait there, and nothing completes before the cut.
  for (let i = 0; i < 200; i++) await Promise.resolve();
  assert.is(disk.queue.waitingCount, fillersWaiting + 2, "both requests' bios wait for bvec slots");
  await disk.crash();
  await Promise.all(statuses);
  const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 5000));
  const events = await Promise.race([ctx.getEvents(1, 4), timeout]);
  assert.ok(events !== "timeout", "the AIO request's event arrives");
  assert.is((events as { res: number }[])[0].res, -5);
  assert.is(await Promise.race([sync, timeout]), "EIO", "the synchronous write fails with EIO");
  await disk.close();
});

test.run();
