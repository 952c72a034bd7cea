// blktrace-style tracing of the block layer: Q (bio queued), X (split), D (request dispatched to
// the device), C (completed), and a formatter that prints records the way blkparse does.

/** One traced event (API.md), plus the virtual time and order it happened at. */
export interface TraceRecord {
  action: "Q" | "X" | "D" | "C";
  op: "read" | "write" | "flush";
  /** 512-byte units, as bi_sector; for X, the split point (where the remainder starts). */
  sector: number;
  /** Length in 512-byte units (0 for a pure flush); for X, the length of the front piece. */
  sectors: number;
  /** Subset of "SYNC", "FUA", "PREFLUSH". */
  flags: string[];
  /** Negative errno on a failed completion. */
  error?: number;
  /** Device time in ticks when the event happened. */
  time: number;
  /** Position in the trace, from 0. */
  seq: number;
}

/** A recording in progress (Disk.startTrace()). */
export interface Trace {
  /** Ends the recording and returns what it saw, in order. */
  stop(): TraceRecord[];
  /** What the recording has seen so far, without ending it (a live, read-only view). */
  peek(): readonly TraceRecord[];
}

/** Fans trace records out to every recording in progress; cheap when none is. */
export class Tracer {
  private readonly sinks = new Set<TraceRecord[]>();

  get active(): boolean {
    return this.sinks.size > 0;
  }

  start(): Trace {
    const records: TraceRecord[] = [];
    this.sinks.add(records);
    return {
      stop: () => {
        this.sinks.delete(records);
        return records;
      },
      peek: () => records,
    };
  }

  emit(action: TraceRecord["action"], op: TraceRecord["op"], sector: number, sectors: number, flags: string[], time: number, error?: number): void {
    if (this.sinks.size === 0) return;
    for (const sink of this.sinks) {
      const record: TraceRecord = { action, op, sector, sectors, flags, time, seq: sink.length };
      if (error !== undefined && error !== 0) record.error = error;
      sink.push(record);
    }
  }
}

/** The RWBS column of blkparse. see: kernel/trace/blktrace.c blk_fill_rwbs() */
export function rwbs(op: TraceRecord["op"], flags: readonly string[]): string {
  let text = flags.includes("PREFLUSH") ? "F" : "";
  text += op === "write" ? "W" : op === "read" ? "R" : "F";
  if (flags.includes("FUA")) text += "F";
  if (flags.includes("SYNC")) text += "S";
  return text;
}

/** One record as a blkparse line: "  time  A  RWBS sector + sectors [extra]". */
export function formatRecord(record: TraceRecord, device = "8,0"): string {
  const head = `${device.padStart(5)} ${String(record.seq).padStart(6)} ${record.time.toFixed(3).padStart(10)}  ${record.action} ${rwbs(record.op, record.flags).padStart(4)}`;
  switch (record.action) {
    case "X":
      return `${head} ${record.sector - record.sectors} / ${record.sector} [dioemu]`;
    case "C":
      return `${head} ${record.sector} + ${record.sectors} [${record.error ?? 0}]`;
    default:
      return `${head} ${record.sector} + ${record.sectors} [dioemu]`;
  }
}

/** Formats a whole trace, one blkparse line per record. */
export function formatBlkparse(records: readonly TraceRecord[], device = "8,0"): string {
  return records.map((record) => formatRecord(record, device)).join("\n");
}
