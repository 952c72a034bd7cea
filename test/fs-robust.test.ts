// Filesystem robustness: concurrent writers on a tiny page cache, IO errors during writeback and
// commit (the filesystem shuts down rather than commit blocks without their data), stale bytes
// past EOF after a crash, and unmount with reads in flight.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, DioError, mkfs, mount, O_CREAT, O_RDWR } from "../host/index.js";

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, DioError);
    assert.is((error as DioError).code, code, (error as DioError).message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

/** A linear congruential generator: the test's own seeded choices. */
function lcg(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}

for (const fsync of [false, true]) {
  test(`four concurrent writers on a 128 KiB arena read back exactly what they wrote${fsync ? " (with fdatasync)" : ""}`, async () => {
    for (const seed of [1, 2, 3]) {
      const rnd = lcg(seed);
      const disk = await Disk.create({ size: 16 << 20, arenaBytes: 128 << 10, cacheBytes: 256 << 10, seed });
      await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3] });
      const fs = await mount(disk);
      const MAX = 96 << 10;
      const worker = async (k: number) => {
        const fh = await fs.open(`f${k}`, O_RDWR | O_CREAT);
        const model = new Uint8Array(MAX);
        let size = 0;
        for (let i = 0; i < 120; i++) {
          const op = rnd(10);
          if (op < 5) {
            const off = rnd(MAX - 1);
            const len = 1 + rnd(Math.min(16384, MAX - off));
            const buf = new Uint8Array(len).map((_, j) => ((k * 31 + i + j) & 255) || 1);
            const { bytesWritten } = await fh.write(buf, 0, len, off);
            model.set(buf.subarray(0, bytesWritten), off);
            size = Math.max(size, off + bytesWritten);
            if (fsync) await fh.datasync();
          } else if (op < 8) {
            const off = rnd(MAX);
            const len = 1 + rnd(16384);
            const buf = new Uint8Array(len);
            const { bytesRead } = await fh.read(buf, 0, len, off);
            assert.is(bytesRead, Math.max(0, Math.min(len, size - off)), `seed ${seed} file ${k} op ${i}`);
            assert.equal(buf.subarray(0, bytesRead), model.subarray(off, off + bytesRead), `seed ${seed} file ${k} op ${i}: bytes at ${off}`);
          } else if (op < 9) {
            const len = rnd(MAX);
            await fh.truncate(len);
            if (len < size) model.fill(0, len);
            size = len;
          } else {
            await fs.sync();
          }
        }
        return { model, size };
      };
      const results = await Promise.all([0, 1, 2, 3].map(worker));
      await fs.sync();
      await disk.crash();
      const again = await mount(disk);
      assert.ok((await again.fsck()).ok);
      for (const [k, { model, size }] of results.entries()) {
        const fh = await again.open(`f${k}`, O_RDWR);
        assert.is((await fh.stat()).size, size, `seed ${seed} file ${k} size after sync + crash`);
        const buf = new Uint8Array(size);
        await fh.read(buf, 0, size, 0);
        assert.equal(buf, model.subarray(0, size), `seed ${seed} file ${k} after sync + crash`);
      }
      await disk.close();
    }
  });
}

test("a failed writeback shuts the filesystem down: no commit ever maps blocks without their data", async () => {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 256 << 10, seed: 1 });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const secret = await fs.open("secret", O_RDWR | O_CREAT);
  await secret.write(new Uint8Array(1 << 20).fill(0x53), 0, 1 << 20, 0);
  await secret.sync();
  await secret.close();
  await fs.unlink("secret");
  await fs.sync(); // the secret's blocks are free again, and hold 0x53
  const a = await fs.open("a", O_RDWR | O_CREAT);
  await a.write(new Uint8Array(4096).fill(0x41), 0, 4096, 0);
  disk.injectFault({ op: "write", times: Infinity, sector: 0, sectors: disk.size / 512 });
  await expectCode(a.datasync(), "EIO");
  disk.clearFaults();
  // Every later call fails: nothing can commit the block the failed write allocated.
  await expectCode(fs.open("b", O_RDWR | O_CREAT), "EIO");
  await expectCode(fs.sync(), "EIO");
  await disk.crash();
  const again = await mount(disk);
  assert.ok((await again.fsck()).ok);
  assert.equal(await again.readdir(), []);
  await disk.close();
});

test("a failed superblock write shuts the filesystem down: a generation never names two blobs", async () => {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 4 << 20, cacheBytes: 256 << 10, seed: 2, fua: false });
  await mkfs(disk, { blockSize: 4096 });
  const fs = await mount(disk);
  const a = await fs.open("a", O_RDWR | O_CREAT);
  await a.write(new Uint8Array(100).fill(1));
  // The commit's blob write succeeds; the flushes around its superblock write (no FUA) fail.
  disk.injectFault({ op: "flush", times: 3 });
  await expectCode(a.sync(), "EIO");
  disk.clearFaults();
  await expectCode(a.write(new Uint8Array(10)), "EIO");
  await disk.crash();
  const again = await mount(disk);
  assert.ok((await again.fsck()).ok);
  await disk.close();
});

test("bytes past EOF that a crash left on disk never come back when the file grows", async () => {
  for (let seed = 1; seed <= 10; seed++) {
    const disk = await Disk.create({ size: 8 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10, seed });
    await mkfs(disk, { blockSize: 4096 });
    const fs = await mount(disk);
    const f = await fs.open("f", O_RDWR | O_CREAT);
    await f.write(new Uint8Array(4096).fill(0xab), 0, 4096, 0);
    await f.sync();
    await f.truncate(100);
    const g = await fs.open("g", O_RDWR | O_CREAT);
    await g.write(new Uint8Array(1));
    await g.sync(); // commits f's new size, perhaps before f's zeroed tail reached the disk
    await disk.crash();
    const again = await mount(disk);
    const f2 = await again.open("f", O_RDWR);
    const size = (await f2.stat()).size;
    assert.is(size, 100, `seed ${seed}`);
    await f2.truncate(4096);
    const back = new Uint8Array(4096);
    await f2.read(back, 0, 4096, 0);
    assert.ok(back.subarray(0, 100).every((x) => x === 0xab), `seed ${seed}: the first 100 bytes survive`);
    assert.ok(back.subarray(100).every((x) => x === 0), `seed ${seed}: the regrown part reads as zeros`);
    await disk.close();
  }
});

test("unmount waits for buffered reads in flight before it releases the page cache", async () => {
  const disk = await Disk.create({ size: 8 << 20, arenaBytes: 2 << 20, cacheBytes: 256 << 10, latency: { readMin: 200, readMax: 200 } });
  await mkfs(disk, { blockSize: 4096 });
  let fs = await mount(disk);
  const f = await fs.open("f", O_RDWR | O_CREAT);
  await f.write(new Uint8Array(256 << 10).fill(7));
  await fs.unmount();
  fs = await mount(disk);
  const f2 = await fs.open("f", O_RDWR);
  const buf = new Uint8Array(256 << 10);
  const reading = f2.read(buf, 0, buf.length, 0);
  await new Promise((resolve) => setImmediate(resolve));
  await fs.unmount();
  const { bytesRead } = await reading;
  assert.is(bytesRead, 256 << 10);
  assert.ok(buf.every((x) => x === 7));
  // The arena is whole again, and nothing writes into what the user allocates now.
  const mine = disk.alloc(1 << 20);
  mine.fill(0x11);
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(mine.every((x) => x === 0x11));
  await disk.close();
});

test.run();
