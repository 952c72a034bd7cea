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

test.run();
