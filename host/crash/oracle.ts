// The durability oracle: a plain model of what a power cut may and may not take, written from the
// contract user space relies on (spec 6.1, 6.2, 7.1), not from the code it checks.
//
// It records every write a workload makes to a file (its bytes, when it was submitted and when it
// was acknowledged) and every sync (fsync, fdatasync, sync(2)) with when it started and ended.
// A write is *promised durable* once
//   - it was acknowledged on a dsync file or with a per-call sync flag (O_DSYNC, O_SYNC, RWF_DSYNC,
//     RWF_SYNC, an IS_SYNC inode): its return, or its AIO event, is the promise; or
//   - a sync of its file (or of the whole filesystem) that started after the write was
//     acknowledged has completed successfully.
// After a power cut and a remount, every byte of a file covered by a promised-durable write must
// hold the data of the last such write covering it, or of a write that may have come after it: one
// that had not ended (acknowledged or failed) before that write was submitted. A truncate cuts what
// the writes before it promised; an unlink sets the file's writes apart. Writes are checked per
// 512-byte sector of the file, since a torn write may keep some sectors and not others but never
// mixes one sector.

/** One recorded write. */
export interface RecordedWrite {
  id: number;
  file: string;
  offset: number;
  data: Uint8Array;
  /** Order of the submission among every recorded event. */
  submitted: number;
  /** Order of the acknowledgement (return or event); undefined while in flight or if it failed. */
  acked?: number;
  /** The acknowledgement promised durability by itself (a dsync write). */
  dsync: boolean;
  /** How it was acknowledged, for reports ("pwrite returned", "io_getevents event data=3"). */
  how: string;
  /** The device clock when it was acknowledged. */
  ackTime?: number;
  /** Order of its end, acknowledged or failed (a failed write may have reached the disk in part,
   *  but never after something submitted once it had ended). */
  ended?: number;
}

interface RecordedSync {
  /** The file synced, or null for the whole filesystem. */
  file: string | null;
  started: number;
  ended?: number;
  how: string;
}

/** A promised-durable write whose data did not survive. */
export interface DurabilityViolation {
  file: string;
  offset: number;
  length: number;
  write: RecordedWrite;
  /** What promised durability: the ack of a dsync write, or a completed sync. */
  promise: string;
  message: string;
}

/** The recorder the filesystem calls (Filesystem.recorder). */
export interface DurabilityRecorder {
  /** A write starts at `offset`, or at a place not known yet (null: O_APPEND, the file position)
   *  that `place()` gives once the write takes it. Call the result when it is acknowledged or
   *  fails, with the count and whether the acknowledgement promises durability. */
  writeStart(file: string, offset: number | null, buffers: readonly Uint8Array[], how: string): WriteDone;
  syncStart(file: string | null, how: string): (ok: boolean) => void;
  /** The file was cut (or grown) to `size`: what writes put past it no longer has to survive. */
  truncate?(file: string, size: number): void;
  /** The file's name went: its writes no longer have to survive. */
  unlink?(file: string): void;
}

/** Ends a recorded write; place() sets where it lands, when that was not known at its start. */
export interface WriteDone {
  (res: number, dsync: boolean): void;
  place(offset: number): void;
}

/** Files unlinked are renamed with this prefix (no file name can hold a NUL). */
const UNLINKED = "\u0000unlinked#";

/** Compared and reported per sector of the file: the device never mixes bytes within one. */
const SECTOR = 512;

export class DurabilityOracle implements DurabilityRecorder {
  readonly writes: RecordedWrite[] = [];
  private readonly syncs: RecordedSync[] = [];
  private clock = 0;

  /** @param now the device clock, for reports. */
  constructor(private readonly now: () => number = () => 0) {}

  writeStart(file: string, offset: number | null, buffers: readonly Uint8Array[], how: string): WriteDone {
    const total = buffers.reduce((sum, b) => sum + b.byteLength, 0);
    const data = new Uint8Array(total);
    let at = 0;
    for (const b of buffers) {
      data.set(b, at);
      at += b.byteLength;
    }
    // A write whose place is not known yet covers nothing until it is placed.
    const write: RecordedWrite = { id: this.writes.length + 1, file, offset: offset ?? 0, data: offset === null ? data.subarray(0, 0) : data, submitted: ++this.clock, dsync: false, how };
    this.writes.push(write);
    let done = false;
    const end = (res: number, dsync: boolean): void => {
      if (done) return;
      done = true;
      // Only a whole write is acknowledged here. A short write's count promises its prefix: keep it.
      if (res <= 0) {
        write.ended = ++this.clock;
        return;
      }
      if (res < total) write.data = write.data.subarray(0, res);
      write.acked = write.ended = ++this.clock;
      write.dsync = dsync;
      write.ackTime = this.now();
    };
    return Object.assign(end, {
      place: (at: number): void => {
        write.offset = at;
        if (write.data.length === 0) write.data = data;
      },
    });
  }

  syncStart(file: string | null, how: string): (ok: boolean) => void {
    const sync: RecordedSync = { file, started: ++this.clock, how };
    this.syncs.push(sync);
    return (ok) => {
      if (ok && sync.ended === undefined) sync.ended = ++this.clock;
    };
  }

  truncate(file: string, size: number): void {
    for (const w of this.writes) {
      if (w.file !== file || w.offset + w.data.length <= size) continue;
      w.data = w.data.subarray(0, Math.max(0, size - w.offset));
    }
    this.clock++;
  }

  unlink(file: string): void {
    // A later file of the same name is another file: the old one's writes are set apart.
    const gone = `${UNLINKED}${++this.clock}:${file}`;
    for (const w of this.writes) if (w.file === file) w.file = gone;
    for (const s of this.syncs) if (s.file === file) s.file = gone;
    this.clock++;
  }

  /** What made `write` promised durable, or undefined if nothing did. */
  promiseOf(write: RecordedWrite): string | undefined {
    if (write.acked === undefined) return undefined;
    if (write.dsync) return `${write.how} (a sync write's acknowledgement) at tick ${write.ackTime}`;
    const sync = this.syncs.find((s) => s.ended !== undefined && s.started > write.acked! && (s.file === null || s.file === write.file));
    return sync === undefined ? undefined : `${sync.how} completed after the write`;
  }

  /** The writes promised durable. */
  durableWrites(): RecordedWrite[] {
    return this.writes.filter((w) => this.promiseOf(w) !== undefined);
  }

  /** Files the workload wrote. */
  files(): string[] {
    return [...new Set(this.writes.map((w) => w.file))].filter((f) => !f.startsWith(UNLINKED)).sort();
  }

  /**
   * Checks the contents read back after the cut (`read(file)`: the whole file, or null if it does
   * not exist) and returns every violation: one per promised-durable write, per run of bytes.
   * The file is cut into pieces at sector boundaries and at every write's edges; each piece that a
   * promised-durable write covers must hold the last such write's bytes, or those of a write that
   * had not ended before that one was submitted (it may have landed after it).
   */
  async check(read: (file: string) => Promise<Uint8Array | null>): Promise<DurabilityViolation[]> {
    const violations: DurabilityViolation[] = [];
    for (const file of this.files()) {
      const writes = this.writes.filter((w) => w.file === file);
      if (!writes.some((w) => this.promiseOf(w) !== undefined)) continue;
      const content = await read(file);
      // Writes by the sectors they touch.
      const bySector = new Map<number, RecordedWrite[]>();
      for (const w of writes) {
        if (w.data.length === 0) continue;
        for (let sector = Math.floor(w.offset / SECTOR); sector * SECTOR < w.offset + w.data.length; sector++) {
          const list = bySector.get(sector);
          if (list === undefined) bySector.set(sector, [w]);
          else list.push(w);
        }
      }
      const bad = new Map<RecordedWrite, [number, number][]>();
      for (const sector of [...bySector.keys()].sort((a, b) => a - b)) {
        const here = bySector.get(sector)!;
        const edges = new Set([sector * SECTOR, (sector + 1) * SECTOR]);
        for (const w of here) {
          if (w.offset > sector * SECTOR) edges.add(w.offset);
          if (w.offset + w.data.length < (sector + 1) * SECTOR) edges.add(w.offset + w.data.length);
        }
        const cuts = [...edges].sort((a, b) => a - b);
        for (let i = 0; i + 1 < cuts.length; i++) {
          const lo = cuts[i];
          const hi = cuts[i + 1];
          const covering = here.filter((w) => w.offset <= lo && hi <= w.offset + w.data.length);
          let last: RecordedWrite | undefined;
          for (const w of covering) {
            if (this.promiseOf(w) !== undefined && (last === undefined || w.acked! > last.acked!)) last = w;
          }
          if (last === undefined) continue;
          const allowed = covering.filter((w) => w === last || !(w.ended !== undefined && w.ended < last.submitted));
          if (allowed.some((w) => holds(content, w, lo, hi))) continue;
          const runs = bad.get(last) ?? [];
          const prev = runs[runs.length - 1];
          if (prev !== undefined && prev[1] === lo) prev[1] = hi;
          else runs.push([lo, hi]);
          bad.set(last, runs);
        }
      }
      for (const [write, runs] of bad) {
        for (const [lo, hi] of runs) {
          const promise = this.promiseOf(write)!;
          const where = content === null ? "the file is gone" : content.length < hi ? `the file ends at byte ${content.length}` : "other data is there";
          violations.push({
            file, offset: lo, length: hi - lo, write, promise,
            message: `${file}: bytes ${lo}..${hi - 1} of write #${write.id} (${write.data.length} bytes at ${write.offset}, ${write.how}) were lost (${where}); durability was promised by ${promise}`,
          });
        }
      }
    }
    return violations;
  }
}

/** Whether `content` holds `w`'s bytes over [lo, hi), a range `w` covers. */
function holds(content: Uint8Array | null, w: RecordedWrite, lo: number, hi: number): boolean {
  if (content === null || content.length < hi) return false;
  for (let i = lo; i < hi; i++) if (content[i] !== w.data[i - w.offset]) return false;
  return true;
}
