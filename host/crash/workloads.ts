// The built-in crash-test workloads: each a few lines of the code a storage engine would write.
import { ioSetup } from "../aio.js";
import { O_APPEND, O_CREAT, O_DIRECT, O_DSYNC, O_RDWR, O_SYNC } from "../constants.js";
import type { CrashTestContext } from "./crashtest.js";

export interface Workload {
  name: string;
  description: string;
  run(ctx: CrashTestContext): Promise<void>;
  /** Replaces the durability oracle's check (a user's module may bring one). */
  check?(ctx: CrashTestContext): Promise<void>;
}

/** A 4 KiB block filled with a pattern that names its write. */
function stamp(buf: Uint8Array, id: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = (id * 131 + i * 7 + (i >> 8)) & 0xff;
}

export const WORKLOADS: readonly Workload[] = [
  {
    name: "aio-dsync",
    description: "random 4 KiB O_DIRECT|O_DSYNC AIO overwrites of a preallocated file, 8 in flight",
    async run({ disk, fs, random }) {
      const fh = await fs.open("data", O_RDWR | O_CREAT | O_DIRECT | O_DSYNC);
      const blocks = 64;
      const init = disk.alloc(blocks * 4096);
      init.fill(0);
      await fh.write(init, 0, init.length, 0); // allocated and durable (O_DSYNC) before the test
      disk.free(init);
      const ctx = ioSetup(8);
      const bufs = Array.from({ length: 8 }, () => disk.alloc(4096));
      let next = 0;
      const submit = (slot: number) => {
        stamp(bufs[slot], next + 1);
        ctx.submit([{ opcode: "pwrite", fh, buf: bufs[slot], offset: Math.floor(random() * blocks) * 4096, data: slot }]);
        next++;
      };
      for (let slot = 0; slot < 8; slot++) submit(slot);
      for (let done = 0; done < 32; ) {
        for (const event of await ctx.getEvents(1, 8)) {
          if (event.res < 0) throw new Error(`write failed with ${event.res}`);
          done++;
          if (next < 32) submit(event.data as number);
        }
      }
      await ctx.destroy();
    },
  },
  {
    name: "osync-append",
    description: "one 1 MiB extending O_DIRECT|O_SYNC AIO write to an empty file (generic/737)",
    async run({ disk, fs }) {
      const fh = await fs.open("log", O_RDWR | O_CREAT | O_DIRECT | O_SYNC);
      const buf = disk.alloc(1 << 20);
      stamp(buf, 737);
      const ctx = ioSetup(1);
      ctx.submit([{ opcode: "pwrite", fh, buf, offset: 0 }]);
      const [event] = await ctx.getEvents(1, 1);
      if (event.res !== buf.length) throw new Error(`the append returned ${event.res}`);
      await ctx.destroy();
    },
  },
  {
    name: "wal",
    description: "a write-ahead log: buffered appends of 100-1000 bytes, each made durable by fdatasync",
    async run({ fs, random }) {
      const fh = await fs.open("wal", O_RDWR | O_CREAT | O_APPEND);
      for (let i = 0; i < 24; i++) {
        const record = new Uint8Array(100 + Math.floor(random() * 900));
        stamp(record, i + 1);
        await fh.write(record);
        await fh.datasync(); // the commit: the record is acknowledged once this returns
      }
    },
  },
  {
    name: "buffered-fsync",
    description: "buffered random overwrites and appends, with an fsync every 4 writes",
    async run({ fs, random }) {
      const fh = await fs.open("table", O_RDWR | O_CREAT);
      let size = 0;
      for (let i = 0; i < 24; i++) {
        const length = 512 + Math.floor(random() * 8192);
        const at = random() < 0.5 || size === 0 ? size : Math.floor(random() * size);
        const data = new Uint8Array(length);
        stamp(data, i + 1);
        await fh.write(data, 0, length, at);
        size = Math.max(size, at + length);
        if (i % 4 === 3) await fh.sync();
      }
    },
  },
];

export function workloadNamed(name: string): Workload | undefined {
  return WORKLOADS.find((w) => w.name === name);
}
