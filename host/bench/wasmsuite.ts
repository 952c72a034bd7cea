// The WebAssembly benchmark suite: a fixed, seeded set of storage workloads whose every result
// but the time is determined by the code (inline executor, seeded device, a fixed clock for file
// times). Each prints its figures and a checksum (FNV-1a) of the disk's final image, read back
// through the device: engines can be compared on speed, and a wrong result changes the checksum.
import { Disk } from "../disk.js";
import { ioSetup } from "../aio.js";
import { mkfs, mount, type Filesystem } from "../fs/filesystem.js";
import { O_APPEND, O_CREAT, O_DIRECT, O_DSYNC, O_RDWR } from "../constants.js";

export interface WasmSuiteResult { name: string; ops: number; mib: number; ms: number; opsPerSecond: number; checksum: string }

interface SuiteWorkload {
  name: string;
  /** Runs `scale` units of work; returns the number of operations and bytes moved. */
  run(disk: Disk, fs: Filesystem, scale: number): Promise<{ ops: number; bytes: number }>;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function pattern(buf: Uint8Array, id: number): void {
  for (let i = 0; i < buf.length; i += 4) {
    const v = Math.imul(id + 1, 0x9e3779b1) ^ i;
    buf[i] = v & 0xff;
    buf[i + 1] = (v >>> 8) & 0xff;
    buf[i + 2] = (v >>> 16) & 0xff;
    buf[i + 3] = (v >>> 24) & 0xff;
  }
}

const WORKLOADS: SuiteWorkload[] = [
  {
    name: "aio-randwrite",
    async run(disk, fs, scale) {
      const fh = await fs.open("rand", O_RDWR | O_CREAT | O_DIRECT);
      const blocks = 4096;
      const fill = disk.alloc(1 << 20);
      for (let at = 0; at < blocks * 4096; at += 1 << 20) await fh.write(fill, 0, fill.length, at);
      disk.free(fill);
      const ctx = ioSetup(32);
      const bufs = Array.from({ length: 32 }, () => disk.alloc(4096));
      const next = lcg(1);
      const total = 2000 * scale;
      let issued = 0;
      const submit = (slot: number) => {
        pattern(bufs[slot], issued);
        ctx.submit([{ opcode: "pwrite", fh, buf: bufs[slot], offset: (next() % blocks) * 4096, data: slot }]);
        issued++;
      };
      for (let slot = 0; slot < 32; slot++) submit(slot);
      for (let done = 0; done < total; ) {
        for (const e of await ctx.getEvents(1, 32)) {
          if (e.res !== 4096) throw new Error(`aio-randwrite: a write returned ${e.res}`);
          done++;
          if (issued < total) submit(e.data as number);
        }
      }
      await ctx.destroy();
      return { ops: total, bytes: total * 4096 };
    },
  },
  {
    name: "aio-dsync",
    async run(disk, fs, scale) {
      const fh = await fs.open("dsync", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      const blocks = 1024;
      const fill = disk.alloc(1 << 20);
      for (let at = 0; at < blocks * 4096; at += 1 << 20) await fh.write(fill, 0, fill.length, at);
      disk.free(fill);
      const ctx = ioSetup(8);
      const bufs = Array.from({ length: 8 }, () => disk.alloc(4096));
      const next = lcg(2);
      const total = 500 * scale;
      let issued = 0;
      const submit = (slot: number) => {
        pattern(bufs[slot], issued + 100000);
        ctx.submit([{ opcode: "pwrite", fh, buf: bufs[slot], offset: (next() % blocks) * 4096, data: slot }]);
        issued++;
      };
      for (let slot = 0; slot < 8; slot++) submit(slot);
      for (let done = 0; done < total; ) {
        for (const e of await ctx.getEvents(1, 8)) {
          if (e.res !== 4096) throw new Error(`aio-dsync: a write returned ${e.res}`);
          done++;
          if (issued < total) submit(e.data as number);
        }
      }
      await ctx.destroy();
      return { ops: total, bytes: total * 4096 };
    },
  },
  {
    name: "wal-append",
    async run(_disk, fs, scale) {
      const fh = await fs.open("wal", O_RDWR | O_CREAT | O_APPEND);
      const next = lcg(3);
      const total = 300 * scale;
      let bytes = 0;
      for (let i = 0; i < total; i++) {
        const record = new Uint8Array(64 + (next() % 960));
        pattern(record, i + 200000);
        await fh.write(record);
        await fh.datasync();
        bytes += record.length;
      }
      return { ops: total, bytes };
    },
  },
  {
    name: "seq-1m",
    async run(disk, fs, scale) {
      const fh = await fs.open("seq", O_RDWR | O_CREAT | O_DIRECT);
      const buf = disk.alloc(1 << 20);
      const total = 16 * scale;
      for (let i = 0; i < total; i++) {
        pattern(buf, i + 300000);
        await fh.write(buf, 0, buf.length, (i % 32) * buf.length);
      }
      await fh.sync();
      return { ops: total, bytes: total << 20 };
    },
  },
  {
    name: "randrw-70-30",
    async run(disk, fs, scale) {
      const fh = await fs.open("mixed", O_RDWR | O_CREAT | O_DIRECT);
      const blocks = 2048;
      const fill = disk.alloc(1 << 20);
      pattern(fill, 400000);
      for (let at = 0; at < blocks * 4096; at += 1 << 20) await fh.write(fill, 0, fill.length, at);
      disk.free(fill);
      const buf = disk.alloc(4096);
      const next = lcg(5);
      const total = 2000 * scale;
      let sum = 0;
      for (let i = 0; i < total; i++) {
        const offset = (next() % blocks) * 4096;
        if (next() % 100 < 70) {
          await fh.read(buf, 0, 4096, offset);
          sum = (sum + buf[i % 4096]) >>> 0;
        } else {
          pattern(buf, i + 500000 + sum);
          await fh.write(buf, 0, 4096, offset);
        }
      }
      return { ops: total, bytes: total * 4096 };
    },
  },
];

/** FNV-1a over the whole image as the device returns it. */
async function imageChecksum(disk: Disk): Promise<string> {
  let hash = 0x811c9dc5;
  const sectorsPerChunk = 2048;
  for (let sector = 0; sector < disk.size / 512; sector += sectorsPerChunk) {
    const chunk = await disk.readSectors(sector, Math.min(sectorsPerChunk, disk.size / 512 - sector));
    for (let i = 0; i < chunk.length; i++) hash = Math.imul(hash ^ chunk[i], 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/** Runs the suite at `size`; `progress` names the workload running. */
export async function runWasmSuite(size: "smoke" | "full", progress?: (line: string) => void): Promise<WasmSuiteResult[]> {
  const scale = size === "smoke" ? 1 : 20;
  const results: WasmSuiteResult[] = [];
  for (const workload of WORKLOADS) {
    progress?.(`${workload.name} (${size})`);
    const disk = await Disk.create({ size: 64 << 20, cacheBytes: 8 << 20, arenaBytes: 8 << 20, executor: "inline", seed: 20261125 });
    await mkfs(disk, { blockSize: 4096, inodes: 16 });
    let tick = 1_700_000_000_000;
    const fs = await mount(disk, { semantics: "seed", clock: () => (tick += 1000) });
    const t0 = performance.now();
    const { ops, bytes } = await workload.run(disk, fs, scale);
    const ms = performance.now() - t0;
    await fs.unmount();
    const checksum = await imageChecksum(disk);
    await disk.close();
    results.push({ name: workload.name, ops, mib: bytes / (1 << 20), ms, opsPerSecond: ops / (ms / 1000), checksum });
  }
  return results;
}
