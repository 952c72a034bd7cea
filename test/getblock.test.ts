// get_block in the core (spec 2.7): holes, `new`, contiguous allocation runs, the boundary hint,
// and lookups in files of thousands of extents, against a plain model of the block map.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, mkfs, mount, O_CREAT, O_RDWR, type Filesystem } from "../host/index.js";
import type { Inode } from "../host/fs/filesystem.js";

const MAPPED = 1;
const NEW = 2;
const BOUNDARY = 4;
const SEED = Number(process.env.SEED ?? 20261125);

async function setup(size = 16 << 20, blockSize: 1024 | 2048 | 4096 = 4096): Promise<{ disk: Disk; fs: Filesystem; inode: (name: string) => Promise<Inode> }> {
  const disk = await Disk.create({ size, arenaBytes: 2 << 20, cacheBytes: 1 << 20 });
  await mkfs(disk, { blockSize, inodes: 64 });
  const fs = await mount(disk);
  return {
    disk, fs,
    inode: async (name) => (await fs.open(name, O_RDWR | O_CREAT)).inode,
  };
}

test("a hole maps to nothing without create, up to the next extent", async () => {
  const { disk, fs, inode } = await setup();
  const a = await inode("a");
  const hole = fs.mapBlocks(a, 0, 10, false, "test");
  assert.is(hole.flags & MAPPED, 0);
  assert.is(hole.count, 10);
  const made = fs.mapBlocks(a, 5, 2, true, "test");
  assert.is(made.flags & (MAPPED | NEW), MAPPED | NEW);
  assert.is(made.count, 2);
  const before = fs.mapBlocks(a, 0, 10, false, "test");
  assert.is(before.flags & MAPPED, 0);
  assert.is(before.count, 5, "the hole stops where the extent at block 5 starts");
  await disk.close();
});

test("create allocates a contiguous run as long as the hole; mapping it again is not new", async () => {
  const { disk, fs, inode } = await setup();
  const a = await inode("a");
  const first = fs.mapBlocks(a, 0, 64, true, "test");
  assert.is(first.count, 64);
  assert.ok(first.diskBlock >= fs.geometry.firstDataBlock, "data blocks come after the metadata areas");
  const again = fs.mapBlocks(a, 10, 100, true, "test");
  assert.is(again.flags & NEW, 0);
  assert.is(again.diskBlock, first.diskBlock + 10);
  assert.is(again.count, 54);
  // Appending goes right after the previous run on disk, so the file stays one extent.
  const next = fs.mapBlocks(a, 64, 64, true, "test");
  assert.is(next.diskBlock, first.diskBlock + 64);
  assert.is(fs.extentsOf(a.ino).length / 3, 1);
  await disk.close();
});

test("the boundary hint marks a run that ends at its extent's end", async () => {
  const { disk, fs, inode } = await setup();
  const a = await inode("a");
  const b = await inode("b");
  fs.mapBlocks(a, 0, 4, true, "test");
  fs.mapBlocks(b, 0, 4, true, "test");          // b takes the blocks after a's run
  fs.mapBlocks(a, 4, 4, true, "test");          // so a's next run is elsewhere: two extents
  assert.is(fs.extentsOf(a.ino).length / 3, 2);
  const whole = fs.mapBlocks(a, 0, 8, false, "test");
  assert.is(whole.count, 4);
  assert.is(whole.flags & BOUNDARY, BOUNDARY, "the run stops at the extent's end: the next block needs a lookup");
  const inside = fs.mapBlocks(a, 0, 2, false, "test");
  assert.is(inside.count, 2);
  assert.is(inside.flags & BOUNDARY, 0, "a run cut short by the request is not at a boundary");
  await disk.close();
});

test("ENOSPC when no block is free, leaving the map unchanged; truncated blocks return after a commit", async () => {
  const { disk, fs, inode } = await setup(1 << 20, 4096);
  const a = await inode("a");
  const total = fs.geometry.blockCount - fs.geometry.firstDataBlock;
  const all = fs.mapBlocks(a, 0, total, true, "test");
  assert.is(all.count, total);
  const extentsBefore = Array.from(fs.extentsOf(a.ino));
  assert.throws(() => fs.mapBlocks(a, total, 1, true, "test"), (e: Error) => (e as { code?: string }).code === "ENOSPC");
  assert.equal(Array.from(fs.extentsOf(a.ino)), extentsBefore);
  fs.truncateBlocks(a, 10);
  const b = await inode("b");
  assert.throws(() => fs.mapBlocks(b, 0, 1, true, "test"), /ENOSPC/, "freed blocks wait for the commit that stops referencing them");
  await fs.sync();
  const reused = fs.mapBlocks(b, 0, total, true, "test");
  assert.is(reused.count, total - 10);
  await disk.close();
});

/** mulberry32: the test's own seeded PRNG. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

test(`files of thousands of extents map exactly as a plain model says (seed ${SEED})`, async () => {
  console.log(`getblock.test: SEED=${SEED}`);
  const random = prng(SEED);
  const { disk, fs, inode } = await setup(64 << 20, 1024);
  const files = await Promise.all(["p", "q", "r"].map((name) => inode(name)));
  // The model: per file, file block -> disk block.
  const model = files.map(() => new Map<number, number>());
  const owner = new Map<number, string>();
  // Interleaved single-block allocations at random file blocks: every file gets many extents,
  // and the extent arrays are moved and compacted as they grow.
  for (let step = 0; step < 12000; step++) {
    const f = Math.floor(random() * files.length);
    const fileBlock = Math.floor(random() * 20000);
    const map = fs.mapBlocks(files[f], fileBlock, 1, true, "test");
    const known = model[f].get(fileBlock);
    if (known === undefined) {
      assert.is(map.flags & NEW, NEW, `seed ${SEED} step ${step}: block ${fileBlock} of file ${f} should be new`);
      const who = owner.get(map.diskBlock);
      assert.is(who, undefined, `seed ${SEED} step ${step}: disk block ${map.diskBlock} handed out twice (${who})`);
      owner.set(map.diskBlock, `${f}:${fileBlock}`);
      model[f].set(fileBlock, map.diskBlock);
    } else {
      assert.is(map.flags & NEW, 0);
      assert.is(map.diskBlock, known, `seed ${SEED} step ${step}: block ${fileBlock} of file ${f} moved`);
    }
  }
  const extentCounts = files.map((file) => fs.extentsOf(file.ino).length / 3);
  assert.ok(Math.min(...extentCounts) > 2000, `the files should be fragmented: ${extentCounts.join(", ")} extents`);
  // Every block and every hole, looked up again without create.
  files.forEach((file, f) => {
    for (let fileBlock = 0; fileBlock < 20000; fileBlock++) {
      const map = fs.mapBlocks(file, fileBlock, 1, false, "test");
      const known = model[f].get(fileBlock);
      if (known === undefined) assert.is(map.flags & MAPPED, 0, `seed ${SEED}: file ${f} block ${fileBlock} should be a hole`);
      else assert.is(map.diskBlock, known, `seed ${SEED}: file ${f} block ${fileBlock}`);
    }
  });
  // Runs: mapping many blocks at once returns the longest prefix that is contiguous on disk.
  files.forEach((file, f) => {
    for (let trial = 0; trial < 500; trial++) {
      const start = Math.floor(random() * 20000);
      const map = fs.mapBlocks(file, start, 64, false, "test");
      const known = model[f].get(start);
      if (known === undefined) {
        let hole = 0;
        while (hole < 64 && !model[f].has(start + hole)) hole++;
        assert.is(map.count, hole, `seed ${SEED}: hole length at ${start}`);
      } else {
        let run = 1;
        while (run < 64 && model[f].get(start + run) === known + run) run++;
        assert.ok(map.count >= 1 && map.count <= run, `seed ${SEED}: run at ${start} is ${map.count}, model allows up to ${run}`);
        for (let k = 0; k < map.count; k++) assert.is(model[f].get(start + k), map.diskBlock + k);
      }
    }
  });
  // The map survives a commit and a remount.
  await fs.unmount();
  const again = await mount(disk);
  assert.ok((await again.fsck()).ok);
  for (const [f, name] of ["p", "q", "r"].entries()) {
    const file = (await again.open(name, O_RDWR)).inode;
    for (const [fileBlock, diskBlock] of model[f]) assert.is(again.mapBlocks(file, fileBlock, 1, false, "test").diskBlock, diskBlock);
  }
  await disk.close();
});

test.run();
