// The benchmark suite (dioemu bench): the job-file parser (every supported option, every error with
// its line), fio's JSON shape read back by a reader written against fio's documented format,
// verify catching a block corrupted behind the filesystem's back, the WebAssembly suite's recorded
// checksums, and the command line's exit codes. No timing is asserted.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseJobFile, JobFileError, SUPPORTED_OPTIONS, RAW_DEVICE } from "../host/bench/jobfile.js";
import { runJob } from "../host/bench/runner.js";
import { fioJson } from "../host/bench/report.js";
import { runWasmSuite } from "../host/bench/wasmsuite.js";

const cli = fileURLToPath(new URL("../host/cli.js", import.meta.url));
const jobsDir = fileURLToPath(new URL("../../bench/jobs/", import.meta.url));

function parseError(text: string): JobFileError {
  try {
    parseJobFile(text, "t.fio");
  } catch (error) {
    assert.instance(error, JobFileError);
    return error as JobFileError;
  }
  assert.unreachable(`expected a JobFileError for ${JSON.stringify(text)}`);
  throw new Error("unreachable");
}

test("the parser reads every supported option, [global] defaults and fio's units", () => {
  const [a, b] = parseJobFile(`
; a comment
# another
[global]
bs=8k
size=4m
direct=1
ioengine=libaio
iodepth=16
runtime=1500ms
time_based

[first]
rw=randrw
rwmixread=70
sync=dsync
fsync=4
numjobs=2
verify=crc32c
randseed=99
filename=data

[second]
readwrite=write
blocksize=1m
size=2g
buffered=1
sync=1
fdatasync=8
ioengine=psync
rwmixwrite=25
filename=${RAW_DEVICE}
name=renamed
`, "t.fio");
  assert.equal({ name: a.name, rw: a.rw, rwmixread: a.rwmixread, bs: a.bs, size: a.size, iodepth: a.iodepth, direct: a.direct, sync: a.sync,
    fsync: a.fsync, numjobs: a.numjobs, runtime: a.runtime, time_based: a.time_based, verify: a.verify, randseed: a.randseed, filename: a.filename, ioengine: a.ioengine },
  { name: "first", rw: "randrw", rwmixread: 70, bs: 8192, size: 4 << 20, iodepth: 16, direct: true, sync: "dsync", fsync: 4, numjobs: 2, runtime: 1.5, time_based: true, verify: "crc32c", randseed: 99, filename: "data", ioengine: "libaio" });
  assert.equal({ name: b.name, rw: b.rw, bs: b.bs, size: b.size, direct: b.direct, sync: b.sync, fdatasync: b.fdatasync, ioengine: b.ioengine, rwmixread: b.rwmixread, filename: b.filename },
    { name: "renamed", rw: "write", bs: 1 << 20, size: 2 ** 31, direct: false, sync: "sync", fdatasync: 8, ioengine: "psync", rwmixread: 75, filename: RAW_DEVICE });
  assert.is(a.where, "t.fio:13");
  // Every option the documentation lists is one the parser takes.
  assert.ok(SUPPORTED_OPTIONS.includes("verify") && SUPPORTED_OPTIONS.includes("rwmixread") && SUPPORTED_OPTIONS.length >= 18);
  // Defaults: fio's 4k, psync, depth 1, buffered, no sync; the file is named after the job.
  const [d] = parseJobFile("[only]\nrw=read\n");
  assert.equal([d.bs, d.ioengine, d.iodepth, d.direct, d.sync, d.filename], [4096, "psync", 1, false, "none", "only"]);
});

test("every parser error names the file, the line and the option", () => {
  const cases: [string, number, string][] = [
    ["[j]\nrw=randread\nbogus=1\n", 3, `unknown or unsupported option "bogus"`],
    ["rw=read\n", 1, "outside any section"],
    ["[j]\nrw=sideways\n", 2, "rw=sideways"],
    ["[j]\nbs=4q\n", 2, "bs=4q is not a size"],
    ["[j]\nbs=0\n", 2, "positive size"],
    ["[j]\niodepth=0\n", 2, "iodepth=0 must be between 1"],
    ["[j]\niodepth=lots\n", 2, "not a whole number"],
    ["[j]\ndirect=maybe\n", 2, "direct=maybe must be 0 or 1"],
    ["[j]\nsync=osync\n", 2, "sync=osync"],
    ["[j]\nioengine=posixaio\n", 2, "ioengine=posixaio"],
    ["[j]\nverify=md5\n", 2, "verify=md5"],
    ["[j]\nruntime=soon\n", 2, "runtime=soon"],
    ["[j]\nrwmixread=101\n", 2, "rwmixread=101"],
    ["[j]\nfilename=a/b\n", 2, "filename=a/b"],
    ["[j]\nsize=\n", 2, "needs a value"],
    ["[j]\nbs=4k\nsize=10k\n", 1, "not a multiple of bs"],
    ["[global]\nbs=4k\n", 2, "no job sections"],
    ["[j]\nsize=3g\n", 1, "more than an in-memory dioemu disk holds"],
    ["[j]\nbs=1m\nsize=1m\nioengine=libaio\niodepth=64\n", 1, "iodepth 64 x bs 1048576"],
    ["[j]\nbs=8k\nsize=4k\n", 1, "smaller than bs"],
  ];
  for (const [text, line, words] of cases) {
    const error = parseError(text);
    assert.is(error.line, line, `${JSON.stringify(text)}: ${error.message}`);
    assert.ok(error.message.startsWith(`t.fio:${line}: `), error.message);
    assert.ok(error.message.includes(words), `${error.message} should mention ${words}`);
  }
});

/** A reader of fio's JSON written against fio's documented output (HOWTO, "JSON output"). */
function readFioJson(text: string): { jobs: { name: string; read: Dir; write: Dir }[] } {
  const doc = JSON.parse(text) as Record<string, unknown>;
  const need = (cond: boolean, what: string) => { if (!cond) throw new Error(`not fio JSON: ${what}`); };
  need(typeof doc["fio version"] === "string", "fio version");
  need(typeof doc.timestamp === "number" && typeof doc.time === "string", "timestamp/time");
  need(Array.isArray(doc.jobs), "jobs[]");
  const dir = (d: Record<string, unknown>, where: string): Dir => {
    for (const key of ["io_bytes", "io_kbytes", "bw_bytes", "bw", "iops", "runtime", "total_ios"]) need(typeof d[key] === "number", `${where}.${key}`);
    for (const lat of ["slat_ns", "clat_ns", "lat_ns"]) {
      const l = d[lat] as Record<string, unknown>;
      for (const key of ["min", "max", "mean", "stddev", "N"]) need(typeof l?.[key] === "number", `${where}.${lat}.${key}`);
    }
    return d as unknown as Dir;
  };
  return {
    jobs: (doc.jobs as Record<string, unknown>[]).map((j, i) => {
      need(typeof j.jobname === "string" && typeof j.error === "number" && typeof j["job options"] === "object", `jobs[${i}] header`);
      return { name: j.jobname as string, read: dir(j.read as Record<string, unknown>, `jobs[${i}].read`), write: dir(j.write as Record<string, unknown>, `jobs[${i}].write`) };
    }),
  };
}
interface Dir { io_bytes: number; io_kbytes: number; bw_bytes: number; bw: number; iops: number; runtime: number; total_ios: number; clat_ns: { min: number; max: number; mean: number; N: number; percentile?: Record<string, number> }; lat_ns: { mean: number; N: number } }

test("the JSON is fio's shape and units: bw in KiB/s, iops per second, latencies in ns with percentiles", async () => {
  const [spec] = parseJobFile("[j]\nrw=randrw\nrwmixread=50\nbs=4k\nsize=2m\ndirect=1\nioengine=libaio\niodepth=4\n");
  const result = await runJob(spec, 0, { semantics: "seed", executor: "inline" });
  const json = fioJson([result], "test");
  const { jobs } = readFioJson(JSON.stringify(json));
  const { read, write } = jobs[0];
  assert.is(read.total_ios + write.total_ios, 512, "each of the 512 blocks once");
  for (const d of [read, write]) {
    assert.ok(d.total_ios > 0);
    assert.is(d.io_bytes, d.total_ios * 4096);
    assert.is(d.io_kbytes, d.io_bytes / 1024);
    assert.ok(Math.abs(d.bw - d.bw_bytes / 1024) <= 1, `bw ${d.bw} KiB/s vs bw_bytes ${d.bw_bytes}`);
    assert.ok(Math.abs(d.iops - d.total_ios / (result.runtimeMs / 1000)) < 1e-6 * d.iops + 1e-9);
    assert.is(d.clat_ns.N, d.total_ios);
    assert.ok(d.clat_ns.min > 0 && d.clat_ns.min <= d.clat_ns.mean && d.clat_ns.mean <= d.clat_ns.max);
    // Nanoseconds: a 4 KiB request in this process takes between 100 ns and 10 s.
    assert.ok(d.clat_ns.min >= 100 && d.clat_ns.max < 1e10, `clat ${d.clat_ns.min}..${d.clat_ns.max}`);
    const p = d.clat_ns.percentile!;
    for (const key of ["1.000000", "50.000000", "90.000000", "99.000000", "99.900000", "99.990000"]) assert.type(p[key], "number", key);
    assert.ok(p["50.000000"] <= p["99.000000"] && p["99.000000"] <= p["99.990000"]);
    assert.ok(d.lat_ns.mean >= d.clat_ns.mean * 0.999, "total latency includes completion latency");
  }
});

test("verify=crc32c reads every written block back and catches one corrupted behind the filesystem's back", async () => {
  const [spec] = parseJobFile("[v]\nrw=randwrite\nbs=4k\nsize=1m\ndirect=1\nioengine=libaio\niodepth=8\nverify=crc32c\n");
  const clean = await runJob(spec, 0, { semantics: "seed", executor: "inline" });
  assert.is(clean.verified, 256);
  assert.equal(clean.verifyErrors, []);
  const corrupted = await runJob(spec, 0, {
    semantics: "seed", executor: "inline",
    async beforeVerify({ disk, fs, fh }) {
      // File block 5 on disk: overwrite its sectors with junk through the block layer.
      const map = fs!.mapBlocks(fh.inode, 5, 1, false, "test");
      const junk = disk.alloc(4096);
      junk.fill(0x5a);
      const status = await disk.queue.submitBioWait({ op: "write", sector: map.diskBlock * 8, segments: [{ buf: junk }] });
      assert.is(status, 0);
    },
  });
  assert.is(corrupted.verifyErrors.length, 1);
  assert.is(corrupted.verifyErrors[0].offset, 5 * 4096);
  assert.match(corrupted.verifyErrors[0].message, /bad magic/);
  // A block put back to an older, well-formed version (a lost write) is caught too.
  const stale = await runJob(spec, 0, {
    semantics: "seed", executor: "inline",
    async beforeVerify({ disk, fs, fh }) {
      const map = fs!.mapBlocks(fh.inode, 7, 1, false, "test");
      const older = disk.alloc(4096);
      await fh.read(older, 0, 4096, 7 * 4096); // the last write's block, well formed
      const view = new DataView(older.buffer, older.byteOffset, 24);
      view.setUint32(16, view.getUint32(16, true) - 1, true); // an earlier generation...
      const { crc32c } = await import("../host/fs/crc32c.js");
      view.setUint32(4, crc32c(older.subarray(8)), true); // ...with a valid checksum
      assert.is(await disk.queue.submitBioWait({ op: "write", sector: map.diskBlock * 8, segments: [{ buf: older }] }), 0);
    },
  });
  assert.is(stale.verifyErrors.length, 1);
  assert.match(stale.verifyErrors[0].message, /stale data/);
});

test("psync jobs on O_DIRECT files and on the raw device run through the synchronous calls, and verify clean", async () => {
  const { FileHandle } = await import("../host/fs/filehandle.js");
  const { BlockDeviceHandle } = await import("../host/bdev.js");
  const calls = { writeSync: 0, readSync: 0, datasyncSync: 0 };
  const originals = { writeSync: FileHandle.prototype.writeSync, readSync: FileHandle.prototype.readSync, datasyncSync: FileHandle.prototype.datasyncSync };
  const deviceDatasync = BlockDeviceHandle.prototype.datasyncSync;
  const spy = (name: keyof typeof calls, original: (...args: unknown[]) => unknown) => function (this: unknown, ...args: unknown[]) {
    calls[name]++;
    return original.apply(this, args);
  };
  for (const name of ["writeSync", "readSync", "datasyncSync"] as const) {
    (FileHandle.prototype as unknown as Record<string, unknown>)[name] = spy(name, originals[name] as (...args: unknown[]) => unknown);
  }
  BlockDeviceHandle.prototype.datasyncSync = spy("datasyncSync", deviceDatasync as (...args: unknown[]) => unknown) as () => void;
  try {
    for (const target of ["", `filename=${RAW_DEVICE}\n`]) {
      const [spec] = parseJobFile(`[p]\nrw=randrw\nrwmixread=50\nbs=4k\nsize=1m\ndirect=1\nioengine=psync\nfdatasync=16\nverify=crc32c\nrandseed=7\n${target}`);
      const before = { ...calls };
      const result = await runJob(spec, 0, { semantics: "seed", executor: "inline" });
      assert.equal(result.verifyErrors, [], target);
      assert.is(result.errors, 0);
      // The random order visits each of the 256 blocks once, read or written. Every written
      // block is checked after the job; a block read is checked when its contents are known: the
      // laid-out file's are, the raw device's (never written by the job: visited once) are not.
      assert.is(result.verified, target === "" ? 256 : result.write.ios, `${target} verified`);
      const ios = result.read.ios + result.write.ios;
      assert.is(ios, 256, "size= bytes of IO");
      // Every IO of the job went through a synchronous call (the file has no hole: laid out first).
      assert.is(calls.writeSync - before.writeSync, result.write.ios, `${target} writes`);
      assert.ok(calls.readSync - before.readSync >= result.read.ios, `${target} reads`);
      assert.is(calls.datasyncSync - before.datasyncSync, Math.floor(result.write.ios / 16), `${target} fdatasync=16`);
    }
    // libaio keeps the asynchronous interface, even one request at a time (fio's default depth).
    const [aio] = parseJobFile("[a]\nrw=randwrite\nbs=4k\nsize=256k\ndirect=1\nioengine=libaio\nverify=crc32c\n");
    const before = { ...calls };
    const result = await runJob(aio, 0, { semantics: "seed", executor: "inline" });
    assert.is(result.write.ios, 64);
    assert.equal(result.verifyErrors, []);
    assert.equal(calls, before, "no synchronous call for libaio");
  } finally {
    Object.assign(FileHandle.prototype, originals);
    BlockDeviceHandle.prototype.datasyncSync = deviceDatasync;
  }
});

test("the WebAssembly suite's smoke run reproduces its recorded checksums", async () => {
  const results = await runWasmSuite("smoke");
  assert.equal(Object.fromEntries(results.map((r) => [r.name, r.checksum])), {
    "aio-randwrite": "765cfdf7",
    "aio-dsync": "a4dc5147",
    "wal-append": "d7d814f6",
    "seq-1m": "8124789b",
    "randrw-70-30": "0860d8b9",
  });
  for (const r of results) assert.ok(r.ops > 0 && r.mib > 0 && r.ms > 0, r.name);
});

test("the package's bin (what `npx dioemu` runs) is an executable file that runs on its own", () => {
  // npm makes a bin executable when it links it, but not the copy a build leaves in a checkout.
  const run = spawnSync(cli, ["--help"], { encoding: "utf8", timeout: 60000 });
  assert.is(run.error, undefined, `running ${cli} directly: ${String(run.error)}`);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /usage:/);
});

test("the command line: shipped jobs as fio JSON, exit 2 naming a bad option and its line, exit 1 on a verify failure", () => {
  const files = ["randwrite-4k-qd32.fio", "randread-4k-qd1.fio", "verify.fio"].map((f) => join(jobsDir, f));
  const run = spawnSync(process.execPath, [cli, "bench", ...files, "--output-format", "json", "--runtime", "0.3", "--executor", "inline"], { encoding: "utf8", timeout: 120000 });
  assert.is(run.status, 0, run.stderr);
  const { jobs } = readFioJson(run.stdout);
  assert.equal(jobs.map((j) => j.name), ["randwrite-4k-qd32", "randread-4k-qd1", "verify-crc32c"]);
  assert.ok(jobs[0].write.total_ios > 0 && jobs[0].read.total_ios === 0);
  assert.ok(jobs[1].read.total_ios > 0 && jobs[1].write.total_ios === 0);

  const dir = mkdtempSync("/tmp/dioemu-bench-test-");
  try {
    const bad = join(dir, "bad.fio");
    writeFileSync(bad, "[global]\nbs=4k\n\n[j]\nrw=randwrite\nzonemode=zbd\n");
    const refused = spawnSync(process.execPath, [cli, "bench", bad], { encoding: "utf8" });
    assert.is(refused.status, 2);
    assert.ok(refused.stderr.includes(`${bad}:6: unknown or unsupported option "zonemode"`), refused.stderr);
    const badFlag = spawnSync(process.execPath, [cli, "bench", "--output-format", "xml"], { encoding: "utf8" });
    assert.is(badFlag.status, 2);
    assert.match(badFlag.stderr, /--output-format must be normal or json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const smoke = spawnSync(process.execPath, [cli, "bench", "--wasm-suite", "smoke"], { encoding: "utf8", timeout: 120000 });
  assert.is(smoke.status, 0, smoke.stderr);
  assert.match(smoke.stdout, /^aio-randwrite\s+2000 ops .* checksum 765cfdf7$/m);
});

test("a sequential write job's file is laid out before it runs (fio preallocates a write job's file), so the job overwrites", async () => {
  // 1 ms of a time-based job over a 4 MiB file makes a few 1 MiB writes at most: the file's size
  // and allocation can only be whole if the runner wrote it first.
  const [spec] = parseJobFile("[s]\nrw=write\nbs=1m\nsize=4m\ndirect=1\nioengine=psync\nruntime=1ms\ntime_based\n");
  let size = -1;
  let allocated = -1;
  const result = await runJob(spec, 0, {
    semantics: "seed", executor: "inline",
    async beforeVerify({ fs, fh }) {
      size = (await fh.stat()).size;
      const extents = fs!.extentsOf(fh.inode.ino); // [file block, disk block, length] triples
      allocated = 0;
      for (let i = 2; i < extents.length; i += 3) allocated += extents[i];
    },
  });
  assert.ok(result.write.ios >= 1);
  assert.is(size, 4 << 20, "the file is whole before the job's first write");
  assert.is(allocated, 1024, "every block of the file is allocated");
});

test("bench/compare refuses a bad --repeat or --runtime and an unknown option with exit status 2", () => {
  const compare = fileURLToPath(new URL("../bench/compare.js", import.meta.url));
  for (const args of [["--repeat", "0"], ["--repeat", "1.5"], ["--runtime", "-1"], ["--bogus"]]) {
    const run = spawnSync(process.execPath, [compare, ...args], { encoding: "utf8", timeout: 60000 });
    assert.is(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, args[0], "the message names the option");
  }
});

test.run();
