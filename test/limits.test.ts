// Queue limits: Linux's defaults and blk_validate_limits()'s rules (spec 5.1, assertion 53,
// example I), and every rejected value with a message that names it.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Disk, DioError, validateLimits } from "../host/index.js";

test("a driver that sets no limits gets Linux's defaults (assertion 53)", () => {
  const l = validateLimits({});
  assert.is(l.logicalBlockSize, 512);
  assert.is(l.physicalBlockSize, 512);
  assert.is(l.maxHwSectors, 255);
  assert.is(l.maxSectors, 255);
  assert.is(l.maxSegments, 128);
  assert.is(l.maxSegmentSize, 65536);
  assert.is(l.segBoundaryMask, 0xffffffff);
  assert.is(l.virtBoundaryMask, 0);
  assert.is(l.chunkSectors, 0);
  assert.is(l.writeCache, true);
  assert.is(l.fua, true);
});

test("with a 4096-byte logical block the 255-sector default rounds down to 248 (example I)", () => {
  const l = validateLimits({}, { logicalBlockSize: 4096 });
  assert.is(l.maxHwSectors, 248);
  assert.is(l.maxSectors, 248);
});

test("max_sectors is capped at 2560 sectors when only the hardware limit is large", () => {
  assert.is(validateLimits({ maxHwSectors: 65535 }).maxSectors, 2560);
  assert.is(validateLimits({ maxHwSectors: 1000 }).maxSectors, 1000);
});

test("a user max_sectors caps the hardware limit and is rounded down to the logical block", () => {
  assert.is(validateLimits({ maxHwSectors: 1024, maxSectors: 300 }).maxSectors, 300);
  const big = validateLimits({ maxSectors: 300 }, { logicalBlockSize: 4096 });
  assert.is(big.maxSectors, 296);
  assert.is(big.maxHwSectors, 296);
  assert.is(validateLimits({ maxHwSectors: 128, maxSectors: 256 }).maxSectors, 128);
  assert.is(validateLimits({ maxSectors: 256 }).maxSectors, 256);
});

test("the physical block is raised to at least the logical block", () => {
  assert.is(validateLimits({}, { logicalBlockSize: 4096, physicalBlockSize: 512 }).physicalBlockSize, 4096);
  assert.is(validateLimits({}, { logicalBlockSize: 512, physicalBlockSize: 4096 }).physicalBlockSize, 4096);
});

test("FUA is cleared when there is no write cache", () => {
  assert.is(validateLimits({}, { writeCache: false }).fua, false);
  assert.is(validateLimits({}, { writeCache: false, fua: true }).fua, false);
  assert.is(validateLimits({}, { writeCache: true, fua: false }).fua, false);
});

test("a virt boundary makes the segment size unlimited", () => {
  assert.is(validateLimits({ virtBoundaryMask: 4095 }).maxSegmentSize, 0xffffffff);
});

function rejects(fn: () => unknown, field: string): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, DioError);
    const e = error as DioError;
    assert.is(e.code, "EINVAL");
    assert.is(e.errno, -22);
    assert.ok(e.message.includes(field), `message "${e.message}" should name ${field}`);
    return;
  }
  assert.unreachable(`${field}: expected EINVAL`);
}

test("impossible limits are refused with EINVAL naming the field and the rule", () => {
  rejects(() => validateLimits({}, { logicalBlockSize: 768 }), "logicalBlockSize 768");
  rejects(() => validateLimits({}, { logicalBlockSize: 256 }), "logicalBlockSize 256");
  rejects(() => validateLimits({}, { logicalBlockSize: 8192 }), "logicalBlockSize 8192");
  rejects(() => validateLimits({}, { physicalBlockSize: 1000 }), "physicalBlockSize 1000");
  rejects(() => validateLimits({ maxSegmentSize: 2048 }), "maxSegmentSize 2048");
  rejects(() => validateLimits({ segBoundaryMask: 2047 }), "segBoundaryMask 2047");
  rejects(() => validateLimits({ segBoundaryMask: 0x12345 }), "segBoundaryMask");
  rejects(() => validateLimits({ maxHwSectors: 4 }), "maxHwSectors 4");
  rejects(() => validateLimits({ maxSectors: 7 }), "maxSectors 7");
  rejects(() => validateLimits({ maxSegments: 0 }), "maxSegments 0");
  rejects(() => validateLimits({ chunkSectors: 12 }, { logicalBlockSize: 4096 }), "chunkSectors 12");
  rejects(() => validateLimits({ virtBoundaryMask: 100 }), "virtBoundaryMask 100");
  rejects(() => validateLimits({ virtBoundaryMask: 4095, maxSegmentSize: 65536 }), "maxSegmentSize 65536");
  rejects(() => validateLimits({ logicalBlockSize: 512 }, { logicalBlockSize: 4096 }), "logicalBlockSize");
});

async function createRejects(opts: Parameters<typeof Disk.create>[0], field: string, code = "EINVAL"): Promise<void> {
  try {
    await Disk.create(opts);
  } catch (error) {
    assert.instance(error, DioError);
    assert.is((error as DioError).code, code);
    assert.is((error as DioError).syscall, "Disk.create");
    assert.ok((error as DioError).message.includes(field), `message "${(error as DioError).message}" should name ${field}`);
    return;
  }
  assert.unreachable(`${field}: expected ${code}`);
}

test("Disk.create refuses a size that is not a multiple of the logical block or cannot fit wasm32", async () => {
  await createRejects({ size: 1000 }, "size 1000");
  await createRejects({ size: 4096 * 3 + 512, logicalBlockSize: 4096 }, "size 12800");
  await createRejects({ size: 5 * 2 ** 30 }, "wasm32");
  await createRejects({ size: 0 }, "size 0");
  await createRejects({ size: -4096 }, "size -4096");
  await createRejects({ size: 1 << 20, limits: { maxSegmentSize: 1024 } }, "maxSegmentSize 1024");
  await createRejects({ size: 1 << 20, cacheBytes: 1000 }, "cacheBytes 1000");
  await createRejects({ size: 1 << 20, seed: -1 }, "seed -1");
  await createRejects({ size: 1 << 20, backing: { path: "/tmp/x.img" } }, "file backing", "ENOTSUP");
});

test("Disk.create exposes the validated limits", async () => {
  const disk = await Disk.create({ size: 1 << 20, logicalBlockSize: 4096, writeCache: false });
  assert.is(disk.limits.logicalBlockSize, 4096);
  assert.is(disk.limits.maxSectors, 248);
  assert.is(disk.limits.fua, false);
  assert.is(disk.size, 1 << 20);
  assert.ok(Object.isFrozen(disk.limits));
  await disk.close();
});

test.run();
