// Crash consistency of the filesystem: random operation sequences cut by a power cut, checked
// against the oracle in model/fs-crash-model.ts (names and sizes of one commit snapshot, synced
// bytes durable), plus deterministic cases of fsync, fdatasync, O_DSYNC and unlink.
//
// The seeded test: per seed a fresh disk (block size, write cache, FUA, cache size, torn or clean
// power cut, `sync` mount, small or big files with a small IO arena so writeback starts by
// itself), random ops (create/open with O_DSYNC, O_SYNC, O_APPEND, O_TRUNC; buffered writes at
// random and sparse offsets; truncate; unlink; fsync; fdatasync; fs.sync(); close; unmount +
// mount; reads checked against the model), then a power cut between two ops or while one is in
// flight (after 0-30 setImmediate turns); remount, fsck, and the model's check. About 30% of the
// seeds continue on the recovered filesystem and crash a second time.
//
// Environment: SEED=n replays one seed of the seeded test (and prints its history);
// SEEDS=lo-hi runs a range instead of the default; VERBOSE=1 prints every failing seed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  Disk, mkfs, mount, DioError, FileHandle, Filesystem,
  O_RDONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_DSYNC, O_SYNC,
} from "../host/index.js";
import { FsCrashModel, Rng, type RecoveredFile } from "./model/fs-crash-model.js";

const NAMES = ["a", "b", "c", "d", "e"];
/**
 * Files stay below this many bytes (times Config.scale), so the disk never runs short of space: at
 * most 5 names and 6 open handles of 64 KiB on 8 MiB, or of 512 KiB on 24 MiB.
 */
const FILE_CAP = 64 << 10;
const SEED_TIMEOUT_MS = 20_000;

const isSync = (flags: number) => (flags & O_SYNC) === O_SYNC;
const isDsync = (flags: number) => (flags & O_DSYNC) === O_DSYNC;

function flagText(flags: number): string {
  const parts: string[] = [];
  if (isSync(flags)) parts.push("O_SYNC");
  else if (isDsync(flags)) parts.push("O_DSYNC");
  if (flags & O_APPEND) parts.push("O_APPEND");
  if (flags & O_TRUNC) parts.push("O_TRUNC");
  return parts.length > 0 ? `|${parts.join("|")}` : "";
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function newDisk(
  seed: number, opts: { writeCache?: boolean; fua?: boolean; cacheBytes?: number; size?: number; arenaBytes?: number } = {},
) {
  return Disk.create({
    size: opts.size ?? 8 << 20, arenaBytes: opts.arenaBytes ?? 4 << 20, cacheBytes: opts.cacheBytes ?? 256 << 10, seed,
    writeCache: opts.writeCache, fua: opts.fua,
  });
}

async function readAll(fh: FileHandle, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let done = 0;
  while (done < size) {
    const { bytesRead } = await fh.read(out, done, size - done, done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  if (done !== size) throw new Error(`short read: ${done} of ${size} bytes`);
  return out;
}

/** Every file of a mounted filesystem: name, size (stat) and contents (read). */
async function readBack(fs: Filesystem): Promise<RecoveredFile[]> {
  const out: RecoveredFile[] = [];
  for (const name of await fs.readdir()) {
    const { size } = await fs.stat(name);
    const fh = await fs.open(name, O_RDONLY);
    out.push({ name, size, content: await readAll(fh, size) });
    await fh.close();
  }
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} != ${b[i]}`;
  return a.length === b.length ? "equal" : `lengths ${a.length} != ${b.length}`;
}

// ---------------------------------------------------------------------------------------------
// The seeded test

interface Config {
  blockSize: 1024 | 2048 | 4096;
  writeCache: boolean;
  fua: boolean;
  cacheBytes: number;
  torn: boolean;
  syncMount: boolean;
  crashes: 1 | 2;
  /**
   * 1, or 8 for seeds with big files, bulk writes and a 1 MiB IO arena: past the page cache's dirty
   * limit (about a quarter of the arena), writeback starts by itself, in the middle of a write.
   */
  scale: 1 | 8;
}

type Op =
  | { k: "open"; name: string; flags: number }
  | { k: "write"; h: number; pos: number | null; data: Uint8Array }
  | { k: "read"; h: number }
  | { k: "truncate"; h: number; size: number }
  | { k: "fsync"; h: number }
  | { k: "fdatasync"; h: number }
  | { k: "close"; h: number }
  | { k: "unlink"; name: string }
  | { k: "syncfs" }
  | { k: "remount" };

interface Handle {
  hid: number;
  fh: FileHandle;
  /** The model's file identity. */
  id: number;
  name: string;
  flags: number;
}

/** A failed check of a seed (its message already has the seed and the history). */
class SeedFailure extends Error {}

class SeedRun {
  readonly rng: Rng;
  readonly history: string[] = [];
  disk!: Disk;
  fs!: Filesystem;
  model = new FsCrashModel();
  handles: Handle[] = [];
  syncMount = false;
  private nextHid = 1;
  /** In-flight crashes whose op had not settled / had settled when the power went. */
  inflightCut = 0;
  inflightDone = 0;
  /** Which allowed snapshot each recovery matched. */
  readonly recovered = { newest: 0, older: 0, inflight: 0 };

  constructor(readonly seed: number, readonly config: Config) {
    this.rng = new Rng(seed);
  }

  fail(what: string): never {
    const c = this.config;
    throw new SeedFailure(
      `seed ${this.seed} (blockSize ${c.blockSize}, writeCache ${c.writeCache}, fua ${c.fua}, cacheBytes ${c.cacheBytes}, ` +
      `torn ${c.torn}, sync mount ${c.syncMount}, file scale ${c.scale}, crashes ${c.crashes}): ${what}\n  history:\n    ${this.history.join("\n    ")}`);
  }

  private handle(hid: number): Handle {
    const h = this.handles.find((x) => x.hid === hid);
    if (h === undefined) throw new Error(`no handle h${hid}`);
    return h;
  }

  private sizeOf(h: Handle): number {
    return this.model.file(h.id).size;
  }

  chooseOp(): Op {
    const rng = this.rng;
    const named = NAMES.filter((n) => this.model.lookup(n) !== undefined);
    const weights: [Op["k"], number][] = this.handles.length === 0
      ? [["open", 10], ["syncfs", 1], ["unlink", named.length > 0 ? 1 : 0]]
      : [["open", this.handles.length < 6 ? 12 : 0], ["write", 34], ["read", 4], ["truncate", 8], ["fsync", 7],
        ["fdatasync", 7], ["syncfs", 4], ["close", 8], ["unlink", named.length > 0 ? 7 : 0], ["remount", 2]];
    let r = rng.int(weights.reduce((s, [, w]) => s + w, 0));
    let kind: Op["k"] = "open";
    for (const [k, w] of weights) {
      if (r < w) { kind = k; break; }
      r -= w;
    }
    const h = this.handles.length > 0 ? rng.pick(this.handles) : undefined;
    switch (kind) {
      case "open": {
        const r2 = rng.int(100);
        const extra = r2 < 52 ? 0 : r2 < 64 ? O_DSYNC : r2 < 74 ? O_SYNC : r2 < 84 ? O_APPEND
          : r2 < 92 ? O_TRUNC : O_APPEND | O_DSYNC;
        return { k: "open", name: rng.pick(NAMES), flags: O_RDWR | O_CREAT | extra };
      }
      case "write": {
        const size = this.sizeOf(h!);
        const bs = this.config.blockSize;
        const x = this.config.scale;
        let pos: number;
        let len: number;
        const shape = rng.int(10);
        if (x > 1 && rng.chance(0.3)) { // bulk
          pos = rng.int(size + 1);
          len = rng.range(32 << 10, 256 << 10);
        } else if (shape < 3) { // block-aligned whole blocks
          pos = rng.int(Math.floor((size + 2 * bs) / bs) + 1) * bs;
          len = rng.range(1, 4) * bs;
        } else {
          const where = rng.int(10);
          pos = where < 4 ? rng.int(size + 1) : where < 7 ? size + rng.int(12000 * x) : rng.int(40000 * x);
          len = shape < 6 ? rng.range(1, 200) : rng.range(1, 6000 * Math.min(x, 4));
        }
        if (h!.flags & O_APPEND) pos = size;
        pos = Math.min(pos, FILE_CAP * x - 4096);
        len = Math.max(1, Math.min(len, FILE_CAP * x - pos));
        return { k: "write", h: h!.hid, pos: h!.flags & O_APPEND ? null : pos, data: rng.bytes(len) };
      }
      case "read": return { k: "read", h: h!.hid };
      case "truncate": {
        const size = this.sizeOf(h!);
        const r2 = rng.int(10);
        const x = this.config.scale;
        const to = r2 < 4 ? rng.int(size + 1) : r2 < 7 ? size + rng.int(8000 * x) : rng.int(30000 * x);
        return { k: "truncate", h: h!.hid, size: Math.min(to, FILE_CAP * x) };
      }
      case "fsync": return { k: "fsync", h: h!.hid };
      case "fdatasync": return { k: "fdatasync", h: h!.hid };
      case "close": return { k: "close", h: h!.hid };
      case "unlink": return { k: "unlink", name: rng.pick(named) };
      case "syncfs": return { k: "syncfs" };
      case "remount": return { k: "remount" };
    }
  }

  /** Whether `op` syncs (and may commit). */
  syncs(op: Op): boolean {
    if (op.k === "write") return this.syncMount || isDsync(this.handle(op.h).flags);
    return op.k === "fsync" || op.k === "fdatasync" || op.k === "syncfs" || op.k === "remount";
  }

  describe(op: Op): string {
    const h = "h" in op ? this.handle(op.h) : undefined;
    const who = h !== undefined ? `h${h.hid}(${h.name}#${h.id}${flagText(h.flags)})` : "";
    switch (op.k) {
      case "open": return `open(${op.name}, O_RDWR|O_CREAT${flagText(op.flags)})`;
      case "write": return `${who}.write(pos=${op.pos ?? `append@${this.sizeOf(h!)}`}, len=${op.data.length})${this.syncMount ? " [sync mount]" : ""}`;
      case "read": return `${who}.read()`;
      case "truncate": return `${who}.truncate(${op.size}) from ${this.sizeOf(h!)}`;
      case "fsync": return `${who}.sync()`;
      case "fdatasync": return `${who}.datasync()`;
      case "close": return `${who}.close()`;
      case "unlink": return `unlink(${op.name}#${this.model.lookup(op.name)})`;
      case "syncfs": return "fs.sync()";
      case "remount": return "unmount + mount";
    }
  }

  /** Runs `op` on the filesystem; the value is the new handle of an open. */
  async exec(op: Op): Promise<FileHandle | undefined> {
    switch (op.k) {
      case "open": return this.fs.open(op.name, op.flags);
      case "write": {
        const h = this.handle(op.h);
        const { bytesWritten } = await h.fh.write(op.data, 0, op.data.length, op.pos);
        if (bytesWritten !== op.data.length) this.fail(`short write: ${bytesWritten} of ${op.data.length}`);
        return undefined;
      }
      case "read": {
        const h = this.handle(op.h);
        const want = this.model.contentOf(h.id);
        const st = await h.fh.stat();
        if (st.size !== want.length) this.fail(`before the crash, ${h.name}#${h.id} has size ${st.size}, the model ${want.length}`);
        const got = await readAll(h.fh, want.length);
        const diff = firstDifference(got, want);
        if (diff !== "equal") this.fail(`before the crash, reading ${h.name}#${h.id} differs from the model at ${diff}`);
        return undefined;
      }
      case "truncate": await this.handle(op.h).fh.truncate(op.size); return undefined;
      case "fsync": await this.handle(op.h).fh.sync(); return undefined;
      case "fdatasync": await this.handle(op.h).fh.datasync(); return undefined;
      case "close": await this.handle(op.h).fh.close(); return undefined;
      case "unlink": await this.fs.unlink(op.name); return undefined;
      case "syncfs": await this.fs.sync(); return undefined;
      case "remount": await this.fs.unmount(); return undefined;
    }
  }

  /** Every identity that fs.sync() or unmount writes back: named, or open. */
  private liveIds(): number[] {
    const ids = new Set<number>();
    for (const name of NAMES) {
      const id = this.model.lookup(name);
      if (id !== undefined) ids.add(id);
    }
    for (const h of this.handles) ids.add(h.id);
    return [...ids];
  }

  /**
   * Tells the model what `op` did. `inflight`: the op had not completed when the power went (its
   * mutations may or may not have happened; its commit may or may not have made it; it synced
   * nothing).
   */
  async apply(op: Op, inflight: boolean, result: FileHandle | undefined): Promise<void> {
    const m = this.model;
    m.begin();
    const label = this.describe(op);
    switch (op.k) {
      case "open": {
        let id = m.lookup(op.name);
        if (id === undefined) id = m.create(op.name);
        else if (op.flags & O_TRUNC) m.truncate(id, 0, `O_TRUNC ${label}`);
        if (!inflight) this.handles.push({ hid: this.nextHid++, fh: result!, id, name: op.name, flags: op.flags });
        return;
      }
      case "write": {
        const h = this.handle(op.h);
        m.write(h.id, op.pos ?? m.file(h.id).size, op.data, label);
        if (isSync(h.flags)) m.commitFile(h.id, false, label, inflight);
        else if (isDsync(h.flags) || this.syncMount) m.commitFile(h.id, true, label, inflight);
        else return;
        if (!inflight) m.synced(h.id, label);
        return;
      }
      case "read": return;
      case "truncate": m.truncate(this.handle(op.h).id, op.size, label); return;
      case "fsync":
      case "fdatasync": {
        const id = this.handle(op.h).id;
        m.commitFile(id, op.k === "fdatasync", label, inflight);
        if (!inflight) m.synced(id, label);
        return;
      }
      case "close": if (!inflight) this.handles = this.handles.filter((h) => h.hid !== op.h); return;
      case "unlink": m.unlink(op.name); return;
      case "syncfs":
      case "remount": {
        m.commitAll(label, inflight);
        if (inflight) return;
        for (const id of this.liveIds()) m.synced(id, label);
        if (op.k === "remount") {
          this.handles = [];
          this.fs = await mount(this.disk, { sync: this.syncMount });
          this.record("  mounted again");
        }
        return;
      }
    }
  }

  record(line: string): void {
    this.history.push(line);
  }

  async step(op: Op): Promise<void> {
    const label = this.describe(op);
    this.record(`#${this.history.length} ${label}`);
    let result: FileHandle | undefined;
    try {
      result = await this.exec(op);
    } catch (e) {
      if (e instanceof SeedFailure) throw e;
      this.fail(`${label} failed before any crash: ${(e as Error).message}`);
    }
    await this.apply(op, false, result);
  }

  /** One round: ops, then the power cut (between two ops or during one). */
  async round(ops: number): Promise<void> {
    const rng = this.rng;
    for (let i = 0; i < ops; i++) await this.step(this.chooseOp());
    const torn = this.config.torn;
    if (rng.chance(0.5)) {
      this.record(`CRASH between ops${torn ? " (torn)" : ""}`);
      await this.disk.crash({ torn });
      return;
    }
    // Mostly an op that syncs, so the crash cuts commits at every stage.
    let op = this.chooseOp();
    for (let tries = 0; op.k === "read" || (tries < 3 && !this.syncs(op)); tries++) op = this.chooseOp();
    const label = this.describe(op);
    // Every operation completes within about 8 turns: cut it at any stage, or (rarely) after.
    const turns = rng.chance(0.9) ? rng.int(9) : rng.int(30);
    let settled: "pending" | "resolved" | "rejected" = "pending";
    let error: unknown;
    let result: FileHandle | undefined;
    const running = this.exec(op).then(
      (value) => { settled = "resolved"; result = value; },
      (e) => { settled = "rejected"; error = e; });
    for (let t = 0; t < turns; t++) await turn();
    const state = settled as "pending" | "resolved" | "rejected";
    if (state === "rejected") this.fail(`${label} (to be cut by the crash) failed before it: ${(error as Error).message}`);
    const completed = state === "resolved";
    if (completed) this.inflightDone++;
    else this.inflightCut++;
    this.record(`#${this.history.length} ${label} -- ${completed ? "completed" : "in flight"} after ${turns} turns: CRASH${torn ? " (torn)" : ""}`);
    await this.apply(op, !completed, result);
    await this.disk.crash({ torn });
    await running;
    const end = settled as "pending" | "resolved" | "rejected";
    if (end === "rejected" && !(error instanceof DioError && error.code === "EIO")) {
      this.fail(`${label}, cut by the crash, rejected with ${(error as Error).message}, not EIO`);
    }
  }

  /** Remount after the crash and check everything against the model. */
  async recover(): Promise<void> {
    this.syncMount = this.config.syncMount && this.rng.chance(0.7);
    try {
      this.fs = await mount(this.disk, { sync: this.syncMount });
    } catch (e) {
      this.fail(`mount after the crash failed: ${(e as Error).message}`);
    }
    this.record(`  mounted${this.syncMount ? " -o sync" : ""} after the crash`);
    const check = await this.fs.fsck();
    if (!check.ok) this.fail(`fsck after the crash: ${check.errors.join("; ")}`);
    const files = await readBack(this.fs);
    const result = this.model.check(files);
    if (!result.ok) this.fail(result.detail);
    this.recovered[this.model.kindOf(result.snapshot!)]++;
    this.record(`  recovered ${result.snapshot!.label} (seq ${result.snapshot!.seq}): ` +
      `{${files.map((f) => `${f.name}:${f.size}`).sort().join(" ")}}`);
    this.model = new FsCrashModel(files, "recovered");
    this.handles = [];
  }

  async run(): Promise<void> {
    const c = this.config;
    this.disk = await newDisk(this.seed, { ...c, size: c.scale > 1 ? 24 << 20 : 8 << 20, arenaBytes: c.scale > 1 ? 1 << 20 : 4 << 20 });
    try {
      await mkfs(this.disk, { blockSize: c.blockSize, inodes: 64 });
      this.syncMount = c.syncMount;
      this.fs = await mount(this.disk, { sync: this.syncMount });
      this.record(`mkfs, mount${this.syncMount ? " -o sync" : ""}`);
      await this.round(this.rng.range(4, 36));
      await this.recover();
      if (c.crashes === 2) {
        await this.round(this.rng.range(2, 20));
        await this.recover();
      }
    } finally {
      await this.disk.close();
    }
  }
}

function configFor(seed: number): Config {
  const rng = new Rng(seed * 7919 + 13);
  return {
    blockSize: rng.pick([1024, 2048, 4096] as const),
    writeCache: rng.chance(0.8),
    fua: rng.chance(0.5),
    cacheBytes: rng.pick([64 << 10, 256 << 10]),
    torn: rng.chance(0.4),
    syncMount: rng.chance(0.15),
    crashes: rng.chance(0.3) ? 2 : 1,
    scale: rng.chance(0.2) ? 8 : 1,
  };
}

function seedRange(): [number, number] {
  if (process.env.SEED !== undefined) {
    const n = Number(process.env.SEED);
    return [n, n];
  }
  const m = /^(\d+)-(\d+)$/.exec(process.env.SEEDS ?? "");
  return m !== null ? [Number(m[1]), Number(m[2])] : [1, 2000];
}

test("seeded: random ops, a power cut between or during an op, remount: one snapshot, synced data kept", async () => {
  const [lo, hi] = seedRange();
  console.log(`fs-crash: seeds ${lo}..${hi} (SEED=n replays one)`);
  const started = Date.now();
  const failures: string[] = [];
  let cut = 0;
  let done = 0;
  let twice = 0;
  let big = 0;
  const recovered = { newest: 0, older: 0, inflight: 0 };
  for (let seed = lo; seed <= hi; seed++) {
    const run = new SeedRun(seed, configFor(seed));
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        run.run(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`seed ${seed}: no progress in ${SEED_TIMEOUT_MS} ms\n  history:\n    ${run.history.join("\n    ")}`)), SEED_TIMEOUT_MS);
        }),
      ]);
      if (lo === hi) console.log(`seed ${seed} passed; history:\n    ${run.history.join("\n    ")}`);
    } catch (e) {
      failures.push((e as Error).message);
      if (process.env.VERBOSE) console.log((e as Error).message);
    } finally {
      clearTimeout(timer);
    }
    cut += run.inflightCut;
    done += run.inflightDone;
    if (run.config.crashes === 2) twice++;
    if (run.config.scale > 1) big++;
    for (const k of ["newest", "older", "inflight"] as const) recovered[k] += run.recovered[k];
  }
  console.log(`fs-crash: ${hi - lo + 1} seeds in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
    `${twice} with two crashes, ${big} with big files; crashes during an op: ${cut} cut it, ${done} came after it completed; ` +
    `recovered: the newest commit ${recovered.newest}x, else an older possible last commit ${recovered.older}x, ` +
    `else the cut op's commit ${recovered.inflight}x; ${failures.length} failed`);
  if (failures.length > 0) {
    const seeds = failures.map((f) => /^seed (\d+)/.exec(f)?.[1] ?? "?");
    assert.unreachable(`${failures.length} seeds failed (${seeds.join(", ")}); the first:\n${failures.slice(0, 2).join("\n\n")}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Deterministic cases

test("an fsync'ed file survives a crash with its exact content and size (50 seeds)", async () => {
  for (let seed = 1; seed <= 50; seed++) {
    const rng = new Rng(seed + 5000);
    const blockSize = ([1024, 2048, 4096] as const)[seed % 3];
    const torn = seed % 2 === 0;
    const disk = await newDisk(seed, { writeCache: seed % 5 !== 0, fua: seed % 4 < 2 });
    await mkfs(disk, { blockSize, inodes: 64 });
    const fs = await mount(disk);
    const fh = await fs.open("f", O_RDWR | O_CREAT);
    let want = new Uint8Array(0);
    const log = [`blockSize ${blockSize}, torn ${torn}`, "open(f)"];
    for (let i = rng.range(1, 4); i > 0; i--) {
      const pos = rng.int(want.length + 9000); // sometimes past EOF: a hole
      const data = rng.bytes(rng.range(1, 12000));
      const grown = new Uint8Array(Math.max(want.length, pos + data.length));
      grown.set(want);
      grown.set(data, pos);
      want = grown;
      await fh.write(data, 0, data.length, pos);
      log.push(`f.write(${pos}, ${data.length})`);
    }
    await fh.sync();
    // Unsynced traffic to another file after the fsync.
    const other = await fs.open("g", O_RDWR | O_CREAT);
    await other.write(rng.bytes(20000), 0, 20000, 0);
    await disk.crash({ torn });
    log.push("f.sync()", "open(g)", "g.write(0, 20000)", "crash");
    const what = `seed ${seed} (${log.join(", ")})`;
    const err = await fh.write(new Uint8Array(1), 0, 1, 0).then(() => null, (e) => e);
    assert.ok(err instanceof DioError && err.code === "EIO", `${what}: a handle of the dead mount rejects with EIO`);
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `${what}: fsck ${fsck.errors.join("; ")}`);
    assert.equal(await again.readdir(), ["f"], `${what}: only f was committed`);
    const { size } = await again.stat("f");
    assert.is(size, want.length, `${what}: size`);
    const got = await readAll(await again.open("f", O_RDONLY), size);
    assert.is(firstDifference(got, want), "equal", `${what}: content`);
    await disk.close();
  }
});

test("a file written but never synced may be lost; fsck is clean every time (seeds 1..100)", async () => {
  const lost: number[] = [];
  const kept: number[] = [];
  for (let seed = 1; seed <= 100; seed++) {
    const rng = new Rng(seed + 6000);
    const disk = await newDisk(seed, { writeCache: seed % 3 !== 0, fua: seed % 2 === 0 });
    await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3], inodes: 64 });
    const fs = await mount(disk);
    const model = new FsCrashModel();
    const history: string[] = [];
    // A synced file "x", so the filesystem has a commit of its own.
    const x = await fs.open("x", O_RDWR | O_CREAT);
    const xData = rng.bytes(3000);
    await x.write(xData, 0, xData.length, 0);
    await x.sync();
    model.begin(); const xid = model.create("x");
    model.begin(); model.write(xid, 0, xData, "x.write"); model.commitFile(xid, false, "x.sync", false); model.synced(xid, "x.sync");
    // "f": written, never synced.
    const f = await fs.open("f", O_RDWR | O_CREAT);
    model.begin(); const fid = model.create("f");
    const len = rng.range(1, 30000);
    const fData = rng.bytes(len);
    await f.write(fData, 0, len, 0);
    model.begin(); model.write(fid, 0, fData, "f.write");
    history.push(`x.write(0, 3000), x.sync(), open(f), f.write(0, ${len})`);
    const mode = seed % 3;
    if (mode === 1) {
      // Another file's fsync commits f's name and size, but not f's data.
      const xMore = rng.bytes(100);
      await x.write(xMore, 0, 100, 3000);
      await x.sync();
      model.begin(); model.write(xid, 3000, xMore, "x.write"); model.commitFile(xid, false, "x.sync", false); model.synced(xid, "x.sync");
      history.push("x.write(3000, 100), x.sync(), crash");
    } else if (mode === 2) {
      // fs.sync() cut by the power after a few turns: f may or may not have made it.
      const turns = seed % 11;
      const running = fs.sync().catch(() => undefined);
      for (let t = 0; t < turns; t++) await turn();
      model.begin(); model.commitAll("fs.sync in flight", true);
      history.push(`fs.sync() in flight, crash after ${turns} turns`);
      await disk.crash({ torn: seed % 4 === 0 });
      await running;
    }
    if (mode === 0) history.push("crash");
    if (mode !== 2) await disk.crash({ torn: seed % 4 === 0 });
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `seed ${seed} (${history.join("; ")}): fsck ${fsck.errors.join("; ")}`);
    const files = await readBack(again);
    const verdict = model.check(files);
    assert.ok(verdict.ok, `seed ${seed} (${history.join("; ")}): ${verdict.detail}`);
    const fBack = files.find((file) => file.name === "f");
    if (mode === 0) assert.is(fBack, undefined, `seed ${seed} (${history.join("; ")}): f is back with no commit after its creation`);
    if (fBack === undefined || fBack.size < len) lost.push(seed);
    else kept.push(seed);
    await disk.close();
  }
  assert.ok(lost.length >= 1, `the unsynced file was kept whole for every seed: ${kept.join(",")}`);
});

test("fdatasync persists the size (and data) of an extending write", async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = new Rng(seed + 7000);
    const disk = await newDisk(seed, { writeCache: seed % 4 !== 0, fua: seed % 2 === 1 });
    await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3], inodes: 64 });
    const fs = await mount(disk);
    const fh = await fs.open("f", O_RDWR | O_CREAT);
    const first = rng.bytes(rng.range(1, 5000));
    await fh.write(first, 0, first.length, 0);
    await fh.sync();
    // Extend (sometimes past a hole), then fdatasync: the new size must be committed.
    const pos = first.length + (seed % 2 === 0 ? rng.int(10000) : 0);
    const more = rng.bytes(rng.range(1, 9000));
    await fh.write(more, 0, more.length, pos);
    await fh.datasync();
    const want = new Uint8Array(pos + more.length);
    want.set(first);
    want.set(more, pos);
    await disk.crash({ torn: seed % 3 === 0 });
    const what = `seed ${seed} (f.write(0, ${first.length}), f.sync(), f.write(${pos}, ${more.length}), f.datasync(), crash${seed % 3 === 0 ? " torn" : ""})`;
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `${what}: fsck ${fsck.errors.join("; ")}`);
    const { size } = await again.stat("f");
    assert.is(size, want.length, `${what}: the size the fdatasync persisted`);
    const got = await readAll(await again.open("f", O_RDONLY), size);
    assert.is(firstDifference(got, want), "equal", `${what}: content`);
    await disk.close();
  }
});

test("O_DSYNC writes (and writes on a sync mount) are durable when write() returns", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Rng(seed + 8000);
    const syncMount = seed % 4 === 0;
    const disk = await newDisk(seed, { writeCache: seed % 5 !== 0, fua: seed % 2 === 0 });
    await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3], inodes: 64 });
    const fs = await mount(disk, { sync: syncMount });
    const fh = await fs.open("f", O_RDWR | O_CREAT | (syncMount ? 0 : O_DSYNC));
    let want = new Uint8Array(0);
    const writes = rng.range(1, 6);
    const log: string[] = [];
    for (let i = 0; i < writes; i++) {
      const pos = rng.chance(0.5) ? rng.int(want.length + 1) : want.length + rng.int(6000);
      const data = rng.bytes(rng.range(1, 7000));
      await fh.write(data, 0, data.length, pos);
      log.push(`write(${pos}, ${data.length})`);
      const grown = new Uint8Array(Math.max(want.length, pos + data.length));
      grown.set(want);
      grown.set(data, pos);
      want = grown;
    }
    await disk.crash({ torn: seed % 3 === 0 });
    const what = `seed ${seed}${syncMount ? " (sync mount)" : " (O_DSYNC)"}: ${log.join(", ")}`;
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `${what}: fsck ${fsck.errors.join("; ")}`);
    assert.equal(await again.readdir(), ["f"], `${what}: names`);
    const { size } = await again.stat("f");
    assert.is(size, want.length, `${what}: size`);
    const got = await readAll(await again.open("f", O_RDONLY), size);
    assert.is(firstDifference(got, want), "equal", `${what}: content`);
    await disk.close();
  }
});

test("unlink + fs.sync() is durable; an unlink without a sync is undone by the crash", async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = new Rng(seed + 9000);
    const disk = await newDisk(seed, { writeCache: seed % 4 !== 0, fua: seed % 2 === 0 });
    await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3], inodes: 64 });
    const fs = await mount(disk);
    const data = rng.bytes(rng.range(1, 20000));
    const fh = await fs.open("f", O_RDWR | O_CREAT);
    await fh.write(data, 0, data.length, 0);
    await fh.sync();
    const keep = await fs.open("k", O_RDWR | O_CREAT);
    const kData = rng.bytes(500);
    await keep.write(kData, 0, 500, 0);
    await keep.sync();
    await fh.close();
    await fs.unlink("f");
    const synced = seed % 2 === 0;
    // New, unsynced writes to k want blocks; f's must stay untouched while a commit may still name them.
    await keep.write(rng.bytes(30000), 0, 30000, 500);
    if (synced) await fs.sync();
    await disk.crash({ torn: seed % 3 === 0 });
    const what = `seed ${seed} (f.write(0, ${data.length}), f.sync(), k.write(0, 500), k.sync(), f.close(), unlink(f), ` +
      `k.write(500, 30000)${synced ? ", fs.sync()" : ""}, crash${seed % 3 === 0 ? " torn" : ""})`;
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `${what}: fsck ${fsck.errors.join("; ")}`);
    const names = (await again.readdir()).sort();
    if (synced) {
      assert.equal(names, ["k"], `${what}: unlink(f) + fs.sync(): f must stay gone`);
    } else {
      assert.equal(names, ["f", "k"], `${what}: unlink(f) with no commit after it: f comes back`);
      const { size } = await again.stat("f");
      assert.is(size, data.length, `${what}: f's synced size`);
      const got = await readAll(await again.open("f", O_RDONLY), size);
      assert.is(firstDifference(got, data), "equal", `${what}: f's synced content`);
      assert.is((await again.stat("k")).size, 500, `${what}: k's synced size`);
    }
    await disk.close();
  }
});

test("a name unlinked and created again is a new file: after fs.sync() the new one is recovered", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = new Rng(seed + 9500);
    const disk = await newDisk(seed, { writeCache: true, fua: seed % 2 === 0 });
    await mkfs(disk, { blockSize: ([1024, 2048, 4096] as const)[seed % 3], inodes: 64 });
    const fs = await mount(disk);
    const old = rng.bytes(rng.range(5000, 15000));
    const a = await fs.open("f", O_RDWR | O_CREAT);
    await a.write(old, 0, old.length, 0);
    await a.sync();
    await fs.unlink("f");
    const fresh = rng.bytes(rng.range(1, 4000));
    const b = await fs.open("f", O_RDWR | O_CREAT);
    await b.write(fresh, 0, fresh.length, 0);
    // The old file is still open and keeps taking writes; they must not show up in the new one.
    await a.write(rng.bytes(3000), 0, 3000, 0);
    await fs.sync();
    await disk.crash({ torn: seed % 2 === 1 });
    const what = `seed ${seed} (f#1.write(0, ${old.length}), f#1.sync(), unlink(f), open(f) = f#2, f#2.write(0, ${fresh.length}), ` +
      `f#1.write(0, 3000), fs.sync(), crash${seed % 2 === 1 ? " torn" : ""})`;
    const again = await mount(disk);
    const fsck = await again.fsck();
    assert.ok(fsck.ok, `${what}: fsck ${fsck.errors.join("; ")}`);
    assert.equal(await again.readdir(), ["f"], `${what}: names`);
    const { size } = await again.stat("f");
    assert.is(size, fresh.length, `${what}: the new f's size`);
    const got = await readAll(await again.open("f", O_RDONLY), size);
    assert.is(firstDifference(got, fresh), "equal", `${what}: the new f's content`);
    await disk.close();
  }
});

test("mount succeeds after every one of many power cuts (a dead mount's page cache does not keep the IO arena)", async () => {
  // A 1 MiB arena: the page cache of each mount may use it all; after the power cut that mount
  // is dead, and the next mount (and its reads) must still find room.
  const disk = await newDisk(1, { arenaBytes: 1 << 20, size: 16 << 20 });
  await mkfs(disk, { blockSize: 4096, inodes: 64 });
  let fs = await mount(disk);
  const rng = new Rng(4242);
  const want = new Map<string, Uint8Array>();
  for (const [name, size] of [["b", 239586], ["d", 168434], ["e", 176861]] as const) {
    const data = rng.bytes(size);
    const fh = await fs.open(name, O_RDWR | O_CREAT);
    await fh.write(data, 0, size, 0);
    await fh.close();
    want.set(name, data);
  }
  await fs.sync();
  for (let cycle = 1; cycle <= 6; cycle++) {
    await disk.crash();
    try {
      fs = await mount(disk);
    } catch (e) {
      assert.unreachable(`crash ${cycle}: mount failed: ${(e as Error).message}`);
    }
    const fsck = await fs.fsck();
    assert.ok(fsck.ok, `crash ${cycle}: fsck ${fsck.errors.join("; ")}`);
    for (const [name, data] of want) {
      const got = await readAll(await fs.open(name, O_RDONLY), (await fs.stat(name)).size);
      assert.is(firstDifference(got, data), "equal", `crash ${cycle}: ${name}'s synced content`);
    }
  }
  await disk.close();
});

test.run();
