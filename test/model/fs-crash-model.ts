// The crash oracle of the filesystem: a plain model of what a power cut may leave behind, written
// from the durability rules of the filesystem (names, sizes and block maps are committed as one
// copy-on-write snapshot of the whole filesystem; data is durable once its file was synced), not
// from the implementation.
//
// The test tells the model every operation it ran, in order, each with a flag saying whether the
// operation completed (awaited and returned) or was in flight when the power went out. The model
// keeps:
// - file identities: one per creation, so an unlink and a re-create under the same name are two
//   different files. Each identity has its current contents and size, a log of every write (a
//   truncate that cuts bytes off is a write of zeros there), and its sync points: the contents and
//   size at each completed fsync / fdatasync / O_*SYNC write / fs.sync / unmount;
// - commit snapshots: names -> (identity, size) at each operation that commits or may commit;
// - "worlds": the set of snapshots that may be the last commit that actually completed. fs.sync()
//   and unmount always commit: one world is left. A sync of one file F commits what F needs:
//   - fsync (fh.sync(), an O_SYNC write) commits when F changed since the last commit (it was
//     created, written or truncated since), and may skip the commit when nothing of F changed (the
//     rules say where commits happen, not that a sync of a clean file makes one);
//   - a data sync (fh.datasync(), an O_DSYNC write, any write on a `sync` mount) commits when F's
//     size changed since the last commit; when only its allocation (invisible to the test) or
//     nothing changed (a new, still empty file included), it may or may not commit.
//   So a sync of F keeps every world whose snapshot already had F's state, and adds its own.
//
// After the crash the recovered names and sizes must equal one allowed snapshot (a world, or the
// snapshot of the sync-type operation that was in flight), and each recovered file's bytes must obey
// the data rule, checked byte by byte:
// - if some completed sync point s of the file had o < s.size, take the latest such s: the byte is
//   s's value at o, or a value some later write (seq > s.seq) put at o;
// - otherwise the byte is zero or a value written to o after the file's last sync point.

/** A small seeded PRNG (mulberry32), independent of the emulator's. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0;
    for (let i = 0; i < 4; i++) this.next();
  }
  /** A uint32. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** A write (or the zeros of a truncate) to one file identity. */
interface LogEntry {
  seq: number;
  start: number;
  end: number;
  /** null: zeros (a truncate cut these bytes off). */
  data: Uint8Array | null;
  what: string;
}

/** A completed sync of one file identity: its size and contents at that moment. */
interface SyncPoint {
  seq: number;
  size: number;
  content: Uint8Array;
  what: string;
}

/** One file identity (one creation). */
export interface FileIdentity {
  id: number;
  /** The name it had when created (for messages). */
  born: string;
  size: number;
  /** Contents; the bytes in [size, content.length) are zero. */
  content: Uint8Array;
  log: LogEntry[];
  syncs: SyncPoint[];
  /** Seq of the operation that created it (0: it was there at mount). */
  created: number;
  /** Seq of the last operation that changed the size; -1 if none since creation. */
  lastSizeChange: number;
  /** Seq of the last write, or truncate that changed the size; -1 if none since creation. */
  lastChange: number;
}

/** The namespace as one commit would record it. */
export interface Snapshot {
  /** Seq of the operation that commits it. */
  seq: number;
  label: string;
  files: Map<string, { id: number; size: number }>;
}

/** A recovered file, as read back after the remount. */
export interface RecoveredFile {
  name: string;
  size: number;
  content: Uint8Array;
}

export interface CheckResult {
  ok: boolean;
  /** The snapshot that matched the names, sizes and data (when ok). */
  snapshot?: Snapshot;
  /** What went wrong (when not ok). */
  detail: string;
}

function describeSnapshot(s: Snapshot): string {
  const files = [...s.files.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, f]) => `${name}=#${f.id}:${f.size}`).join(" ");
  return `{${files}} (${s.label}, seq ${s.seq})`;
}

export class FsCrashModel {
  private seq = 0;
  readonly files = new Map<number, FileIdentity>();
  readonly names = new Map<string, number>();
  private readonly commits: Snapshot[] = [];
  /** Indices in `commits` of the snapshots that may be the last completed commit. */
  private worlds = new Set<number>();
  /** The snapshot of the sync-type operation in flight at the crash, if any. */
  private inflightSnapshot: Snapshot | null = null;
  private nextId = 1;

  /**
   * A model of a freshly mounted filesystem whose durable state is `initial` (the recovered files
   * of a previous crash, or nothing after mkfs): that state is the first commit, and every file's
   * contents are durable (synced at seq 0).
   */
  constructor(initial: readonly RecoveredFile[] = [], label = "mkfs") {
    for (const f of initial) {
      const id = this.nextId++;
      const content = new Uint8Array(Math.max(f.size, 1));
      content.set(f.content.subarray(0, f.size));
      this.files.set(id, { id, born: f.name, size: f.size, content, log: [], syncs: [], created: 0, lastSizeChange: -1, lastChange: -1 });
      this.names.set(f.name, id);
      this.files.get(id)!.syncs.push({ seq: 0, size: f.size, content: content.slice(0, f.size), what: label });
    }
    this.commits.push(this.snapshot(label));
    this.worlds.add(0);
  }

  /** Starts the next operation; returns its seq. */
  begin(): number {
    return ++this.seq;
  }

  lookup(name: string): number | undefined {
    return this.names.get(name);
  }

  file(id: number): FileIdentity {
    const f = this.files.get(id);
    if (f === undefined) throw new Error(`model: no file #${id}`);
    return f;
  }

  /** The current contents of `id` (a copy, exactly `size` bytes). */
  contentOf(id: number): Uint8Array {
    const f = this.file(id);
    return f.content.slice(0, f.size);
  }

  /** Creates an empty file named `name` (the name must be free). */
  create(name: string): number {
    if (this.names.has(name)) throw new Error(`model: ${name} exists`);
    const id = this.nextId++;
    this.files.set(id, {
      id, born: name, size: 0, content: new Uint8Array(4096), log: [], syncs: [], created: this.seq, lastSizeChange: -1, lastChange: -1,
    });
    this.names.set(name, id);
    return id;
  }

  unlink(name: string): void {
    if (!this.names.delete(name)) throw new Error(`model: unlink of missing ${name}`);
  }

  private ensure(f: FileIdentity, bytes: number): void {
    if (bytes <= f.content.length) return;
    let cap = f.content.length;
    while (cap < bytes) cap *= 2;
    const grown = new Uint8Array(cap);
    grown.set(f.content);
    f.content = grown;
  }

  /** A write of `data` at `pos` (the hole between the old size and pos reads as zeros). */
  write(id: number, pos: number, data: Uint8Array, what: string): void {
    const f = this.file(id);
    const end = pos + data.length;
    this.ensure(f, end);
    f.content.set(data, pos);
    f.log.push({ seq: this.seq, start: pos, end, data: data.slice(), what });
    f.lastChange = this.seq;
    if (end > f.size) {
      f.size = end;
      f.lastSizeChange = this.seq;
    }
  }

  /** truncate(2): the bytes cut off count as written with zeros; growing leaves a hole. */
  truncate(id: number, size: number, what: string): void {
    const f = this.file(id);
    if (size < f.size) {
      f.content.fill(0, size, f.size);
      f.log.push({ seq: this.seq, start: size, end: f.size, data: null, what });
    }
    this.ensure(f, size);
    if (size !== f.size) {
      f.lastSizeChange = this.seq;
      f.lastChange = this.seq;
    }
    f.size = size;
  }

  /** A completed sync of the data of `id` (fsync, fdatasync, O_*SYNC write, fs.sync, unmount). */
  synced(id: number, what: string): void {
    const f = this.file(id);
    f.syncs.push({ seq: this.seq, size: f.size, content: f.content.slice(0, f.size), what });
  }

  private snapshot(label: string): Snapshot {
    const files = new Map<string, { id: number; size: number }>();
    for (const [name, id] of this.names) files.set(name, { id, size: this.file(id).size });
    return { seq: this.seq, label, files };
  }

  /** A commit of the whole filesystem (fs.sync(), unmount): it is the last commit once it completed. */
  commitAll(label: string, inflight: boolean): void {
    const snap = this.snapshot(label);
    if (inflight) {
      this.inflightSnapshot = snap;
      return;
    }
    this.commits.push(snap);
    this.worlds = new Set([this.commits.length - 1]);
  }

  /**
   * The commit of a sync of file `id`: fsync (`datasync` false: fh.sync(), an O_SYNC write) or a
   * data sync (fh.datasync(), an O_DSYNC write, a write on a `sync` mount). In flight, it may or may
   * not have made it. Completed, it is the last commit, unless the last commit already had what it
   * must persist (see the header): then that one may still be.
   */
  commitFile(id: number, datasync: boolean, label: string, inflight: boolean): void {
    const snap = this.snapshot(label);
    if (inflight) {
      this.inflightSnapshot = snap;
      return;
    }
    const f = this.file(id);
    const clean = (w: Snapshot) => datasync ? f.lastSizeChange <= w.seq : f.created <= w.seq && f.lastChange <= w.seq;
    const kept = [...this.worlds].filter((w) => clean(this.commits[w]));
    this.commits.push(snap);
    this.worlds = new Set([...kept, this.commits.length - 1]);
  }

  /** The snapshots the recovered filesystem may equal, newest commit first, the in-flight op's last. */
  allowedSnapshots(): Snapshot[] {
    const out = [...this.worlds].sort((a, b) => b - a).map((w) => this.commits[w]);
    if (this.inflightSnapshot !== null) out.push(this.inflightSnapshot);
    return out;
  }

  /** Which allowed snapshot `s` is: the newest commit, an older one that may be the last, or the in-flight op's. */
  kindOf(s: Snapshot): "newest" | "older" | "inflight" {
    if (s === this.inflightSnapshot) return "inflight";
    return s === this.commits[this.commits.length - 1] ? "newest" : "older";
  }

  describeAllowed(): string {
    return this.allowedSnapshots().map(describeSnapshot).join("\n    ");
  }

  /** Whether one recovered byte is allowed; null if it is, else why not. */
  private checkByte(f: FileIdentity, o: number, actual: number): string | null {
    let covering: SyncPoint | undefined;
    for (let i = f.syncs.length - 1; i >= 0; i--) {
      if (o < f.syncs[i].size) {
        covering = f.syncs[i];
        break;
      }
    }
    let base: number;
    let after: number;
    let basis: string;
    if (covering !== undefined) {
      base = covering.content[o];
      after = covering.seq;
      basis = `synced value ${base} (${covering.what}, seq ${covering.seq}, size ${covering.size})`;
    } else {
      base = 0;
      after = f.syncs.length > 0 ? f.syncs[f.syncs.length - 1].seq : -1;
      basis = `no sync covers it: zero, or a write after seq ${after}`;
    }
    if (actual === base) return null;
    const later: string[] = [];
    for (const e of f.log) {
      if (e.seq <= after || o < e.start || o >= e.end) continue;
      const value = e.data === null ? 0 : e.data[o - e.start];
      if (value === actual) return null;
      later.push(`${value} (${e.what}, seq ${e.seq})`);
    }
    return `byte ${o} is ${actual}; allowed: ${basis}${later.length > 0 ? `; later writes: ${later.join(", ")}` : "; no later write"}`;
  }

  /** Checks one recovered file against identity `id`; null if it obeys the data rule. */
  checkData(id: number, got: RecoveredFile): string | null {
    const f = this.file(id);
    for (let o = 0; o < got.size; o++) {
      const why = this.checkByte(f, o, got.content[o]);
      if (why !== null) return `${got.name} (file #${id}): ${why}`;
    }
    return null;
  }

  /**
   * Checks the recovered filesystem: its names and sizes equal one allowed snapshot, and the data
   * of every file obeys the data rule for the identity that snapshot gives the name.
   */
  check(recovered: readonly RecoveredFile[]): CheckResult {
    const actual = [...recovered].sort((a, b) => (a.name < b.name ? -1 : 1));
    const actualText = `{${actual.map((f) => `${f.name}:${f.size}`).join(" ")}}`;
    const allowed = this.allowedSnapshots();
    const matching = allowed.filter((s) =>
      s.files.size === actual.length && actual.every((f) => s.files.get(f.name)?.size === f.size));
    if (matching.length === 0) {
      return { ok: false, detail: `recovered names/sizes ${actualText} equal no allowed snapshot:\n    ${this.describeAllowed()}` };
    }
    const failures: string[] = [];
    for (const s of matching) {
      const why = actual.map((f) => this.checkData(s.files.get(f.name)!.id, f)).find((x) => x !== null);
      if (why === undefined || why === null) return { ok: true, snapshot: s, detail: "" };
      failures.push(`against ${describeSnapshot(s)}: ${why}`);
    }
    return { ok: false, detail: `recovered ${actualText}; data violates the rule ${failures.join("\n    ")}` };
  }
}
