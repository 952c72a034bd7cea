// Inode machinery the direct-IO engine relies on: i_dio_count and inode_dio_wait (which truncate
// waits on), the inode lock, and mount -o sync (IS_SYNC inodes).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, mkfs, mount, O_CREAT, O_RDWR } from "../host/index.js";

async function fresh(opts: { sync?: boolean; seed?: number } = {}) {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10, seed: opts.seed ?? 1 });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  const fs = await mount(disk, { sync: opts.sync });
  return { disk, fs };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

test("truncate waits until no direct IO is in flight (inode_dio_wait)", async () => {
  const { disk, fs } = await fresh();
  const fh = await fs.open("f", O_RDWR | O_CREAT);
  await fh.write(new Uint8Array(8192).fill(1));
  fh.inode.dioBegin();
  fh.inode.dioBegin();
  let truncated = false;
  const pending = fh.truncate(100).then(() => { truncated = true; });
  for (let i = 0; i < 10; i++) await turn();
  assert.is(truncated, false, "truncate must wait while direct IO is in flight");
  assert.is((await fh.stat()).size, 8192);
  fh.inode.dioEnd();
  for (let i = 0; i < 10; i++) await turn();
  assert.is(truncated, false, "one direct IO is still in flight");
  fh.inode.dioEnd();
  await pending;
  assert.is(truncated, true);
  assert.is((await fh.stat()).size, 100);
  assert.throws(() => fh.inode.dioEnd(), /below 0/, "an unbalanced dio end is a programmer error");
  await disk.close();
});

test("the inode lock serialises writers: a write waits while the lock is held", async () => {
  const { disk, fs } = await fresh();
  const fh = await fs.open("f", O_RDWR | O_CREAT);
  const unlock = await fh.inode.lock.lock();
  let wrote = false;
  const pending = fh.write(new Uint8Array(10).fill(2), 0, 10, 0).then(() => { wrote = true; });
  for (let i = 0; i < 10; i++) await turn();
  assert.is(wrote, false);
  unlock();
  await pending;
  assert.is((await fh.stat()).size, 10);
  await disk.close();
});

test("on a sync mount every write is durable when it returns (IS_SYNC), for every seed", async () => {
  for (let seed = 1; seed <= 25; seed++) {
    const { disk, fs } = await fresh({ sync: true, seed });
    const fh = await fs.open("f", O_RDWR | O_CREAT);
    const data = new Uint8Array(6000).map((_, i) => (i * 13 + seed) & 0xff);
    await fh.write(data, 0, data.length, 0);
    await disk.crash();
    const again = await mount(disk);
    assert.ok((await again.fsck()).ok);
    const back = await again.open("f", O_RDWR);
    assert.is((await back.stat()).size, 6000, `seed ${seed}`);
    const read = new Uint8Array(6000);
    await back.read(read, 0, 6000, 0);
    assert.equal(read, data, `seed ${seed}`);
    await disk.close();
  }
});

test("without sync, a write that was never synced can be lost at a power cut", async () => {
  let lost = 0;
  for (let seed = 1; seed <= 25; seed++) {
    const { disk, fs } = await fresh({ seed });
    const fh = await fs.open("f", O_RDWR | O_CREAT);
    await fh.write(new Uint8Array(6000).fill(5), 0, 6000, 0);
    await disk.crash();
    const again = await mount(disk);
    assert.ok((await again.fsck()).ok);
    if (!(await again.readdir()).includes("f")) lost++;
    await disk.close();
  }
  assert.is(lost, 25, "nothing committed the new file, so no crash can recover it");
});

test("a whole-file read under arena pressure returns exact bytes (pages being read are never evicted)", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 1 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  let fs = await mount(disk);
  const pages = 44;
  const expected = new Uint8Array(pages * 4096);
  const fh = await fs.open("f", O_RDWR | O_CREAT);
  for (const index of [0, 1, 2, 28, 32, 33, 34, 35, 36, 37, 38]) {
    const data = new Uint8Array(4096).fill(index + 1);
    expected.set(data, index * 4096);
    await fh.write(data, 0, 4096, index * 4096);
  }
  await fh.truncate(pages * 4096);
  const other = await fs.open("g", O_RDWR | O_CREAT);
  await other.write(new Uint8Array(10 * 4096).fill(0x77));
  await fs.unmount();
  fs = await mount(disk);
  // Hold most of the arena, so that the page cache must evict while one read is in progress.
  const held: Uint8Array[] = [];
  for (;;) {
    try {
      held.push(disk.alloc(4096));
    } catch {
      break;
    }
  }
  for (const buf of held.splice(0, 50)) disk.free(buf);
  const g = await fs.open("g", O_RDWR);
  await g.read(new Uint8Array(10 * 4096), 0, 10 * 4096, 0);
  const f = await fs.open("f", O_RDWR);
  const back = new Uint8Array(pages * 4096);
  const { bytesRead } = await f.read(back, 0, back.length, 0);
  assert.is(bytesRead, back.length);
  for (let i = 0; i < back.length; i += 4096) {
    assert.equal(back.subarray(i, i + 4096), expected.subarray(i, i + 4096), `page ${i / 4096}`);
  }
  await disk.close();
});

test("a power cut gives the dead filesystem's page cache back to the arena", async () => {
  const disk = await Disk.create({ size: 4 << 20, arenaBytes: 1 << 20, cacheBytes: 256 << 10 });
  await mkfs(disk, { blockSize: 4096, inodes: 16 });
  for (let cycle = 0; cycle < 6; cycle++) {
    const fs = await mount(disk);
    const fh = await fs.open(`f${cycle}`, O_RDWR | O_CREAT);
    await fh.write(new Uint8Array(600 << 10).fill(cycle + 1));
    await fh.sync();
    await disk.crash();
  }
  const fs = await mount(disk);
  assert.ok((await fs.fsck()).ok);
  const whole = disk.alloc(900 << 10);
  assert.is(whole.byteLength, 900 << 10, "the arena is free again after the crashes");
  await disk.close();
});


test("the inode lock's tryAcquire()/release() hand it to waiters in arrival order, and refuse a release of a free lock", async () => {
  const { disk, fs } = await fresh();
  const fh = await fs.open("f", O_RDWR | O_CREAT);
  const lock = fh.inode.lock;
  assert.is(lock.tryAcquire(), true);
  assert.is(lock.tryAcquire(), false, "held: a second tryAcquire fails");
  assert.is(lock.tryLock(), null, "held: tryLock fails too");
  const order: string[] = [];
  const first = lock.lock().then((unlock) => { order.push("first"); return unlock; });
  const second = lock.lock().then((unlock) => { order.push("second"); unlock(); });
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(order, [], "no waiter runs while the lock is held");
  lock.release();
  (await first)();
  await second;
  assert.equal(order, ["first", "second"]);
  assert.is(lock.locked, false);
  assert.throws(() => lock.release(), /not held/);
  assert.is(lock.tryAcquire(), true, "free again after the hand-offs");
  lock.release();
  await disk.close();
});

test.run();
