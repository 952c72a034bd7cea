// Injected device faults: a failing piece fails its parent bio with its own error, once, after
// every piece (assertion 52); a failing flush fails every request it was serving.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, DioError } from "../host/index.js";

const ENOSPC = 28;

test("a bio split into 3 pieces where piece 2 fails completes once, after all 3, with piece 2's error (assertion 52)", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, limits: { maxSectors: 8 } });
  const before = disk.alloc(12288);
  before.fill(0x77);
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf: before }] }), 0);
  const pages = [disk.alloc(4096), disk.alloc(4096), disk.alloc(4096)];
  pages.forEach((page, i) => page.fill(i + 1));
  disk.injectFault({ op: "write", sector: 8, sectors: 8, errno: ENOSPC });
  const trace = disk.startTrace();
  const calls: { status: number; completionsSeen: number }[] = [];
  await new Promise<void>((resolve) => {
    disk.queue.submitBio({
      op: "write", sector: 0, segments: pages.map((buf) => ({ buf })),
      endIo: (status) => {
        calls.push({ status, completionsSeen: trace.peek().filter((r) => r.action === "C").length });
        setImmediate(resolve);
      },
    });
  });
  const records = trace.stop();
  assert.is(calls.length, 1, "endIo runs exactly once");
  assert.is(calls[0].status, -ENOSPC, "the parent carries piece 2's error");
  assert.is(calls[0].completionsSeen, 3, "the parent completes after all three pieces");
  const dispatched = records.filter((r) => r.action === "D");
  assert.equal(dispatched.map((r) => r.sector), [0, 8, 16]);
  const completions = records.filter((r) => r.action === "C");
  assert.is(completions.length, 3);
  assert.equal(completions.filter((r) => r.error !== undefined).map((r) => [r.sector, r.error]), [[8, -ENOSPC]]);
  // Pieces 1 and 3 completed normally; piece 2 moved no data.
  const back = await disk.readSectors(0, 24);
  assert.ok(back.subarray(0, 4096).every((x) => x === 1));
  assert.ok(back.subarray(4096, 8192).every((x) => x === 0x77), "the failed piece wrote nothing");
  assert.ok(back.subarray(8192).every((x) => x === 3));
  await disk.close();
});

test("the first error wins when two pieces fail, whichever completes first", async () => {
  for (let seed = 1; seed <= 20; seed++) {
    const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20, limits: { maxSectors: 8 }, seed });
    const pages = [disk.alloc(4096), disk.alloc(4096), disk.alloc(4096)];
    disk.injectFault({ op: "write", sector: 0, sectors: 8, errno: 5 });
    disk.injectFault({ op: "write", sector: 16, sectors: 8, errno: ENOSPC });
    const trace = disk.startTrace();
    const status = await disk.queue.submitBioWait({ op: "write", sector: 0, segments: pages.map((buf) => ({ buf })) });
    const firstFailure = trace.stop().find((r) => r.action === "C" && r.error !== undefined);
    assert.is(status, firstFailure?.error, `seed ${seed}`);
    await disk.close();
  }
});

test("a failing flush fails every flush request it served; the next flush succeeds", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const buf = disk.alloc(4096);
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 0, segments: [{ buf }] }), 0);
  disk.injectFault({ op: "flush" });
  const first = disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
  const second = disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
  const third = disk.queue.submitBioWait({ op: "flush", sector: 0, segments: [] });
  assert.is(await first, -5);
  // The second and third arrived while the first was in flight: one new flush serves both.
  assert.is(await second, 0);
  assert.is(await third, 0);
  assert.is(disk.stats().flushes, 2);
  assert.is(disk.stats().dirtyBytes, 0);
  await disk.close();
});

test("a PREFLUSH write whose flush fails ends with the flush's error and writes nothing", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const buf = disk.alloc(4096);
  buf.fill(0x42);
  disk.injectFault({ op: "flush", errno: 5 });
  const trace = disk.startTrace();
  assert.is(await disk.queue.submitBioWait({ op: "write", sector: 64, segments: [{ buf }], flags: ["PREFLUSH"] }), -5);
  assert.is(trace.stop().filter((r) => r.action === "D" && r.op === "write").length, 0);
  const back = await disk.readSectors(64, 8);
  assert.ok(back.every((x) => x === 0));
  await disk.close();
});

test("injectFault refuses malformed rules", async () => {
  const disk = await Disk.create({ size: 1 << 20, arenaBytes: 1 << 20 });
  const bad = [
    [{ op: "trim" }, "op trim"],
    [{ op: "write", sector: -1 }, "sector -1"],
    [{ op: "write", errno: 0 }, "errno 0"],
    [{ op: "write", times: 0 }, "times 0"],
  ] as const;
  for (const [rule, words] of bad) {
    try {
      disk.injectFault(rule as never);
      assert.unreachable(`${words} accepted`);
    } catch (error) {
      assert.instance(error, DioError);
      assert.is((error as DioError).code, "EINVAL");
      assert.ok((error as DioError).message.includes(words), (error as DioError).message);
    }
  }
  assert.is(disk.stats().bios, 0);
  await disk.close();
});

test.run();
