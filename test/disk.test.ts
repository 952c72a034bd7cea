// Disk: the IO-buffer arena, the block layer's checks on a bio, end-of-device, close, and the
// layout check between host and core. Every rejected call leaves the disk's bytes unchanged.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { Disk, DioError } from "../host/index.js";
import { checkLayout, instantiateCore } from "../host/core.js";
import { LAYOUT_FIELDS } from "../host/layout.js";

async function expectError(promiseOrFn: Promise<unknown> | (() => unknown), code: string, words: string): Promise<DioError> {
  try {
    if (typeof promiseOrFn === "function") promiseOrFn();
    else await promiseOrFn;
  } catch (error) {
    assert.instance(error, DioError);
    const e = error as DioError;
    assert.is(e.code, code);
    assert.ok(e.message.includes(words), `message "${e.message}" should mention "${words}"`);
    return e;
  }
  assert.unreachable(`expected ${code} (${words})`);
  throw new Error("unreachable");
}

/** Fills the disk with a pattern and returns a function that checks nothing changed. */
async function snapshot(disk: Disk): Promise<() => Promise<void>> {
  const sectors = disk.size / 512;
  const before = await disk.readSectors(0, sectors);
  return async () => {
    const after = await disk.readSectors(0, sectors);
    assert.ok(Buffer.compare(Buffer.from(before), Buffer.from(after)) === 0, "disk bytes changed");
  };
}

async function patterned(size = 256 << 10, extra: Partial<Parameters<typeof Disk.create>[0]> = {}): Promise<Disk> {
  const disk = await Disk.create({ size, arenaBytes: 1 << 20, cacheBytes: 64 << 10, ...extra });
  const buf = disk.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 7 + (i >> 9)) & 0xff;
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf, length: Math.min(size, 1 << 20) }] }), 0);
  disk.free(buf);
  return disk;
}

test("alloc hands out aligned, zeroed buffers from the arena", async () => {
  const disk = await Disk.create({ size: 64 << 10, arenaBytes: 1 << 20 });
  const a = disk.alloc(100, 512);
  a.fill(0xaa);
  const b = disk.alloc(4096);
  const c = disk.alloc(8192, 65536);
  assert.is(a.byteOffset % 512, 0);
  assert.is(b.byteOffset % 4096, 0);
  assert.is(c.byteOffset % 65536, 0);
  assert.ok(b.every((x) => x === 0));
  disk.free(a);
  const d = disk.alloc(100, 512);
  assert.ok(d.every((x) => x === 0), "a reused buffer is zeroed");
  await disk.close();
});

test("alloc fails with ENOMEM when the arena is exhausted, and recovers after free", async () => {
  const disk = await Disk.create({ size: 64 << 10, arenaBytes: 64 << 10 });
  const a = disk.alloc(32 << 10);
  const b = disk.alloc(32 << 10);
  await expectError(() => disk.alloc(4096), "ENOMEM", "arena");
  disk.free(a);
  const c = disk.alloc(16 << 10);
  assert.is(c.byteLength, 16 << 10);
  disk.free(b);
  disk.free(c);
  const whole = disk.alloc(64 << 10);
  assert.is(whole.byteLength, 64 << 10, "freed ranges merge back into one");
  await disk.close();
});

test("alloc refuses bad sizes and alignments", async () => {
  const disk = await Disk.create({ size: 64 << 10, arenaBytes: 64 << 10 });
  await expectError(() => disk.alloc(0), "EINVAL", "size 0");
  await expectError(() => disk.alloc(1.5), "EINVAL", "size 1.5");
  await expectError(() => disk.alloc(512, 3), "EINVAL", "align 3");
  await disk.close();
});

test("free of a foreign, sub-view or already-freed buffer is EINVAL and corrupts nothing", async () => {
  const disk = await Disk.create({ size: 64 << 10, arenaBytes: 64 << 10 });
  const keep = disk.alloc(4096);
  keep.fill(0x5a);
  const victim = disk.alloc(4096);
  await expectError(() => disk.free(new Uint8Array(4096)), "EINVAL", "not allocated");
  await expectError(() => disk.free(victim.subarray(512)), "EINVAL", "address");
  await expectError(() => disk.free(victim.subarray(0, 512)), "EINVAL", "512 bytes");
  disk.free(victim);
  await expectError(() => disk.free(victim), "EINVAL", "already freed");
  const again = disk.alloc(4096);
  const again2 = disk.alloc(4096);
  assert.ok(again.byteOffset !== again2.byteOffset, "a double free must not hand one range out twice");
  assert.ok(keep.every((x) => x === 0x5a), "other buffers are untouched");
  await disk.close();
});

test("a malformed bio is refused with EINVAL before anything is written", async () => {
  const disk = await patterned();
  const unchanged = await snapshot(disk);
  const buf = disk.alloc(8192);
  buf.fill(0xee);
  const submit = (bio: object) => disk.queue.submitBioWait(bio as never);
  await expectError(submit({ op: "write", sector: 0, segments: [{ buf: new Uint8Array(512) }] }), "EINVAL", "segment 0 is not a buffer from Disk.alloc()");
  await expectError(submit({ op: "write", sector: 0, segments: [{ buf, length: 1000 }] }), "EINVAL", "length 1000");
  await expectError(submit({ op: "write", sector: 0, segments: [{ buf, offset: 8000, length: 512 }] }), "EINVAL", "offset 8000");
  await expectError(submit({ op: "write", sector: 0.5, segments: [{ buf }] }), "EINVAL", "sector 0.5");
  await expectError(submit({ op: "trim", sector: 0, segments: [{ buf }] }), "EINVAL", "op trim");
  await expectError(submit({ op: "write", sector: 0, segments: [{ buf }], flags: ["BARRIER"] }), "EINVAL", "flag BARRIER");
  await expectError(submit({ op: "write", sector: 0, segments: [] }), "EINVAL", "at least one segment");
  await expectError(submit({ op: "flush", sector: 0, segments: [{ buf }] }), "EINVAL", "no data");
  const many = Array.from({ length: 257 }, () => ({ buf, length: 512 }));
  await expectError(submit({ op: "write", sector: 0, segments: many }), "EINVAL", "257 segments");
  await unchanged();
  await disk.close();
});

test("on a 4096-byte logical block device, bios must be whole blocks at block-aligned sectors", async () => {
  const disk = await patterned(256 << 10, { logicalBlockSize: 4096 });
  const unchanged = await snapshot(disk);
  const buf = disk.alloc(8192);
  await expectError(disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf, length: 512 }] }), "EINVAL", "4096-byte logical block");
  await expectError(disk.queue.submitBioWait({ op: "write", sector: 1, segments: [{ buf, length: 4096 }] }), "EINVAL", "sector 1");
  await unchanged();
  await disk.close();
});

test("a bio past the end of the device completes with -EIO, touching nothing", async () => {
  const disk = await patterned();
  const unchanged = await snapshot(disk);
  const buf = disk.alloc(8192);
  buf.fill(0x11);
  const sectors = disk.size / 512;
  const trace = disk.startTrace();
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: sectors - 8, segments: [{ buf }] }), -5);
  assert.is(await disk.queue.submitBioWait({ op: "read", sector: sectors, segments: [{ buf, length: 512 }] }), -5);
  const records = trace.stop();
  assert.is(records.filter((r) => r.action === "D").length, 0, "no request reaches the device");
  assert.equal(records.filter((r) => r.action === "C").map((r) => r.error), [-5, -5]);
  assert.ok(buf.every((x) => x === 0x11), "the read buffer is untouched");
  await unchanged();
  await disk.close();
});

test("a sector past 2^32 is past the end of the device, not a wrapped-around sector 0", async () => {
  const disk = await patterned();
  const unchanged = await snapshot(disk);
  const buf = disk.alloc(4096);
  buf.fill(0x99);
  const trace = disk.startTrace();
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 2 ** 32, segments: [{ buf }] }), -5);
  assert.is(trace.stop().filter((r) => r.action === "D").length, 0);
  await unchanged();
  await disk.close();
});

test("the core refuses a request whose bvecs lie outside the pool or the arena, and stays usable", async () => {
  const disk = await patterned();
  const unchanged = await snapshot(disk);
  assert.is(disk.core.dev_write(0, 8, 0x0fffffff, 0, 0), -22);
  assert.is(disk.core.dev_read(0, 8, 0x0fffffff, 0), -22);
  assert.is(disk.core.dev_crash_inflight(0, 8, 0x0fffffff, 0, 1, 0), -22);
  await unchanged();
  await disk.close();
});

test("huge max_sectors limits do not overflow the split arithmetic", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, limits: { maxHwSectors: 0xfffffff8, maxSectors: 0xfffffff8 } });
  const a = disk.alloc(4096);
  const b = disk.alloc(4096);
  const trace = disk.startTrace();
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf: a }, { buf: b }] }), 0);
  assert.equal(trace.stop().filter((r) => r.action === "D").map((r) => r.sectors), [16]);
  await disk.close();
});

test("a power cut from a completion fails the rest of that completion batch", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, seed, latency: { writeMin: 1, writeMax: 1 } });
    const a = disk.alloc(4096);
    const b = disk.alloc(4096);
    b.fill(0xbb);
    let firstDone = "";
    const results: Record<string, number> = {};
    const endIo = (name: string) => (status: number) => {
      results[name] = status;
      if (firstDone === "") {
        firstDone = name;
        void disk.crash();
      }
    };
    await Promise.all([
      disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf: a }], endIo: endIo("a") }),
      disk.queue.submitBioWait({ op: "write", sector: 8, segments: [{ buf: b }], endIo: endIo("b") }),
    ]);
    const other = firstDone === "a" ? "b" : "a";
    assert.is(results[other], -5, `seed ${seed}: the write completed after the cut must fail`);
    await disk.close();
  }
});

test("bios waiting for bvec slots at a power cut fail with EIO and write nothing", async () => {
  const disk = await Disk.create({ size: 64 << 20, arenaBytes: 2 << 20, seed: 5 });
  const buf = disk.alloc(4096);
  buf.fill(0x5c);
  const segments = Array.from({ length: 256 }, () => ({ buf, length: 512 }));
  const statuses: Promise<number>[] = [];
  for (let i = 0; i < 257; i++) statuses.push(disk.queue.submitBioWait({ op: "write", sector: i * 256, segments }));
  await disk.crash();
  const all = await Promise.all(statuses);
  assert.is(all[256], -5, "the bio that waited for slots failed");
  const last = await disk.readSectors(256 * 256, 256);
  assert.ok(last.every((x) => x === 0), "and wrote nothing");
  await disk.close();
});

test("reads see the newest write; stats count bios, bytes and dirty data", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const buf = disk.alloc(4096);
  buf.fill(3);
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 8, segments: [{ buf }] }), 0);
  buf.fill(4);
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 9, segments: [{ buf, length: 1024 }] }), 0);
  const back = await disk.readSectors(8, 8);
  assert.equal([back[0], back[512], back[1024], back[1535], back[1536], back[4095]], [3, 4, 4, 4, 3, 3]);
  const stats = disk.stats();
  assert.is(stats.bios, 3);
  assert.is(stats.bytesWritten, 4096 + 1024);
  assert.is(stats.bytesRead, 4096);
  assert.is(stats.dirtyBytes, 4096 + 1024);
  assert.is(await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] }), 0);
  assert.is(disk.stats().dirtyBytes, 0);
  assert.is(disk.stats().flushes, 1);
  await disk.close();
});

test("close waits for IO in flight, then every call fails with EIO", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const buf = disk.alloc(4096);
  let completed = -1;
  disk.queue.submitBio({ op: "write", sector: 0, segments: [{ buf }], endIo: (status) => { completed = status; } });
  await disk.close();
  assert.is(completed, 0, "the write completed before close resolved");
  await expectError(() => disk.alloc(512), "EIO", "closed");
  await expectError(disk.crash(), "EIO", "closed");
});

test("a process that used a disk exits on its own after close", () => {
  const script = `
    import { Disk } from ${JSON.stringify(new URL("../host/index.js", import.meta.url).href)};
    const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
    const buf = disk.alloc(4096);
    await disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf }], flags: ["FUA"] });
    await disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
    await disk.close();
    console.log("closed");`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { timeout: 20000, encoding: "utf8" });
  assert.is(result.error, undefined, "the child did not exit within 20 s");
  assert.is(result.status, 0, result.stderr);
  assert.ok(result.stdout.includes("closed"));
});

test("Disk.open and file backing are refused with ENOTSUP until file backing exists", async () => {
  await expectError(Disk.open("/tmp/none.img"), "ENOTSUP", "/tmp/none.img");
});

test("the host refuses a core whose layout differs, naming the field", async () => {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 2, shared: true });
  const core = await instantiateCore(memory);
  checkLayout(core);
  const wrongAt = LAYOUT_FIELDS.findIndex(([name]) => name === "CTRL_CACHE_HEAD");
  const fake = {
    layout_field_count: () => core.layout_field_count(),
    layout_value: (index: number) => (index === wrongAt ? core.layout_value(index) + 4 : core.layout_value(index)),
  };
  assert.throws(() => checkLayout(fake), /CTRL_CACHE_HEAD/);
  const fewer = { layout_field_count: () => 3, layout_value: (index: number) => core.layout_value(index) };
  assert.throws(() => checkLayout(fewer), /3 fields/);
});

test("without shared memory the same core runs over a plain memory, inline", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, sharedMemory: false });
  assert.is(disk.executor, "inline");
  assert.not.ok(disk.memory.buffer instanceof SharedArrayBuffer);
  const buf = disk.alloc(8192);
  buf.fill(9);
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 16, segments: [{ buf }], flags: ["FUA"] }), 0);
  const back = await disk.readSectors(16, 16);
  assert.ok(back.every((x) => x === 9));
  await disk.close();
  await expectError(Disk.create({ size: 1 << 20, sharedMemory: false, executor: "worker" }), "ENOTSUP", "shared memory");
});

test("a bio given as raw (address, length) bvecs is checked like one given as segments, and moves the same bytes", async () => {
  const disk = await patterned();
  const unchanged = await snapshot(disk);
  const q = disk.queue;
  const buf = disk.alloc(8192);
  buf.fill(0x3c);
  const pair = (addr: number, len: number) => new Uint32Array([addr, len]);
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [], bvecs: new Uint32Array(0) }), "EINVAL", "at least one");
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [], bvecs: new Uint32Array([buf.byteOffset]) }), "EINVAL", "at least one");
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [], bvecs: pair(8, 4096) }), "EINVAL", "outside the IO-buffer arena");
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [], bvecs: pair(buf.byteOffset, 0) }), "EINVAL", "outside the IO-buffer arena");
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [{ buf }], bvecs: pair(buf.byteOffset, 4096) }), "EINVAL", "no segments beside");
  await expectError(() => q.submitBio({ op: "write", sector: 0, segments: [], bvecs: pair(buf.byteOffset, 1000) }), "EINVAL", "logical block");
  await expectError(() => q.submitBio({ op: "flush", sector: 0, segments: [], bvecs: pair(buf.byteOffset, 4096) }), "EINVAL", "no data segments");
  await unchanged();
  // Two bvecs: 4 KiB then 4 KiB of the same buffer, as (address, length) pairs.
  const vecs = new Uint32Array([buf.byteOffset, 4096, buf.byteOffset + 4096, 4096]);
  assert.is(await q.submitBioWait({ op: "write", sector: 16, segments: [], bvecs: vecs }), 0);
  const back = await disk.readSectors(16, 16);
  assert.ok(back.every((x) => x === 0x3c));
  await disk.close();
});

test.run();
