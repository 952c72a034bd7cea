// The floor of the host's per-request path (a diagnostic, not dioemu's product path): 4 KiB random
// O_DIRECT overwrites that make exactly the core calls a real write makes (map the pass, split the
// bio, the device's write into its cache, destage included) with the table reads between them,
// one promise per request and one promise job before the device step; no inode lock, no dio or
// block-layer objects, no virtual clock, no trace. Set beside `dio.bench.ts` it says how much of a
// write's cost is the emulation's own work and how much the JavaScript layers around it.
// Valid only on a preallocated file with nothing else running: it uses slot 0 of the block
// layer's bvec pool and piece table, which an idle disk does not hold.
// usage: node dist/bench/floor.bench.js [--smoke]
import { Disk, mkfs, mount, O_CREAT, O_DIRECT, O_RDWR } from "../host/index.js";
import { DIO_BIO, OP_WRITE } from "../host/layout.js";

const smoke = process.argv.includes("--smoke");
const OPS = smoke ? 2000 : 300000;
const FILE_BYTES = 64 << 20;

const disk = await Disk.create({ size: 128 << 20, cacheBytes: 32 << 20, arenaBytes: 8 << 20, latency: { writeMin: 1, writeMax: 1 } });
await mkfs(disk, { blockSize: 4096, inodes: 16 });
const fs = await mount(disk, { semantics: "merged" });
const fh = await fs.open("rand", O_RDWR | O_CREAT | O_DIRECT);
const big = disk.alloc(1 << 20);
for (let at = 0; at < FILE_BYTES; at += 1 << 20) await fh.write(big, 0, big.length, at); // allocate
await fh.sync();

const core = disk.core;
const memory = disk.memory.buffer;
const { plan } = disk;
const iov = new Uint32Array(memory, plan.dioIovBase, 2);
const bios = new DataView(memory, plan.dioBioBase, 64);
const mappedVecs = new Uint32Array(memory, plan.dioBvecBase, 2 * 64);
const queueVecs = new Uint32Array(memory, plan.bvecBase, 2);
const pieces = new Uint32Array(memory, plan.pieceBase, 4);
const buf = disk.alloc(4096);
const ino = fh.inode.ino;
const SKIP_HOLES_4X = 2;
const BUILDER_VECS = 1;
const resolved = Promise.resolve();

function writeOnce(at: number, stamp: number): Promise<number> {
  return new Promise((resolve) => {
    buf[0] = stamp;
    iov[0] = buf.byteOffset;
    iov[1] = 4096;
    const mapped = core.dio_map(OP_WRITE, ino, 12, 12, 1, at / 4096, FILE_BYTES, SKIP_HOLES_4X, BUILDER_VECS);
    if (mapped !== 0 || core.dio_bio_count() !== 1) throw new Error(`floor: mapping ${at} gave ${mapped}, ${core.dio_bio_count()} bios`);
    const sector = bios.getUint32(DIO_BIO.SECTOR, true);
    const first = bios.getUint32(DIO_BIO.BVEC_FIRST, true);
    queueVecs[0] = mappedVecs[first * 2];
    queueVecs[1] = mappedVecs[first * 2 + 1];
    if (core.blk_split(OP_WRITE, 1, sector, 0, 1, 0, 4096, 0) !== 1) throw new Error("floor: a 4 KiB bio was split");
    void resolved.then(() => resolve(core.dev_write(pieces[0], pieces[1], pieces[2], pieces[3], 0)));
  });
}

let state = 4242;
const next = (): number => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state % (FILE_BYTES / 4096)) * 4096;
};
for (let i = 0; i < OPS / 6; i++) await writeOnce(next(), 1); // warm-up
const start = performance.now();
for (let i = 0; i < OPS; i++) {
  const status = await writeOnce(next(), i & 0xff);
  if (status !== 0) throw new Error(`floor: write ${i} failed with ${status}`);
}
const us = ((performance.now() - start) * 1000) / OPS;
// Validate: the last write reads back through the real path.
const lastAt = (state % (FILE_BYTES / 4096)) * 4096;
const back = disk.alloc(4096);
await fh.read(back, 0, 4096, lastAt);
if (back[0] !== ((OPS - 1) & 0xff)) throw new Error(`floor: the last write did not read back (${back[0]})`);
await disk.close();
console.log(`floor of a 4 KiB random O_DIRECT write (core calls, one promise each): ${us.toFixed(2)} us, ${Math.round(1e6 / us).toLocaleString("en-US")} IOPS`);
