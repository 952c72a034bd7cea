// The on-disk format of a dioemu filesystem (docs/format.md draws it): geometry, the two
// superblock slots, and the metadata blob that a commit writes copy-on-write. Pure encode/decode:
// no IO here.
import { crc32c } from "./crc32c.js";

export const FORMAT_VERSION = 1;
export const SUPER_MAGIC = "DIOEMUFS";
export const META_MAGIC = "DIOMETA1";
export const SUPER_BYTES = 512;
export const SUPER_CHECKSUM_AT = 508;
export const META_HEADER_BYTES = 32;
export const INODE_RECORD_BYTES = 48;
export const EXTENT_RECORD_BYTES = 12;
export const NAME_BYTES_MAX = 255;
export const INODE_REGULAR = 1;
/** The two superblock slots sit at fixed byte offsets, whatever the block size, so that mount can
 *  find them before it knows the block size; each is written as one logical block. */
export const SUPER_SLOT_OFFSETS = [0, 4096] as const;
export const SUPER_REGION_BYTES = 8192;

/** Where everything lives, in fs blocks. */
export interface Geometry {
  blockSize: number;
  blockCount: number;
  /** Inode numbers run 1..inodeCount. */
  inodeCount: number;
  metaAreaBlocks: number;
  /** First block of metadata area 0 and 1; data blocks start at firstDataBlock. */
  metaAreaStart: [number, number];
  firstDataBlock: number;
}

/** The geometry mkfs lays out; null when the disk is too small for it. */
export function planGeometry(diskBytes: number, blockSize: number, inodeCount: number): Geometry | null {
  const blockCount = Math.floor(diskBytes / blockSize);
  // Worst case blob: every inode with a longest name, every block its own extent.
  const blobBytesMax = META_HEADER_BYTES + inodeCount * (INODE_RECORD_BYTES + NAME_BYTES_MAX) + blockCount * EXTENT_RECORD_BYTES;
  const metaAreaBlocks = Math.ceil(blobBytesMax / blockSize);
  const superBlocks = SUPER_REGION_BYTES / blockSize;
  const firstDataBlock = superBlocks + 2 * metaAreaBlocks;
  if (firstDataBlock + 1 > blockCount) return null;
  return {
    blockSize, blockCount, inodeCount, metaAreaBlocks,
    metaAreaStart: [superBlocks, superBlocks + metaAreaBlocks], firstDataBlock,
  };
}

/** One superblock slot (slot s lives at SUPER_SLOT_OFFSETS[s] and points at metadata area s). */
export interface Superblock {
  version: number;
  blockSize: number;
  blockCount: number;
  inodeCount: number;
  metaAreaBlocks: number;
  slot: number;
  generation: number;
  metaBytes: number;
  metaChecksum: number;
}

function writeAscii(view: DataView, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) view.setUint8(at + i, text.charCodeAt(i));
}
function readAscii(view: DataView, at: number, length: number): string {
  let text = "";
  for (let i = 0; i < length; i++) text += String.fromCharCode(view.getUint8(at + i));
  return text;
}

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const bytes = new Uint8Array(SUPER_BYTES);
  const view = new DataView(bytes.buffer);
  writeAscii(view, 0, SUPER_MAGIC);
  view.setUint32(8, sb.version, true);
  view.setUint32(12, sb.blockSize, true);
  view.setUint32(16, sb.blockCount, true);
  view.setUint32(20, sb.inodeCount, true);
  view.setUint32(24, sb.metaAreaBlocks, true);
  view.setUint32(28, sb.slot, true);
  view.setFloat64(32, sb.generation, true);
  view.setUint32(40, sb.metaBytes, true);
  view.setUint32(44, sb.metaChecksum, true);
  view.setUint32(SUPER_CHECKSUM_AT, crc32c(bytes.subarray(0, SUPER_CHECKSUM_AT)), true);
  return bytes;
}

/** What a superblock slot holds: nothing of ours, a superblock, or a damaged/unknown one. */
export type SuperblockRead =
  | { kind: "absent" }
  | { kind: "ok"; sb: Superblock }
  | { kind: "newer"; version: number }
  | { kind: "bad-checksum" };

export function decodeSuperblock(bytes: Uint8Array): SuperblockRead {
  const view = new DataView(bytes.buffer, bytes.byteOffset, SUPER_BYTES);
  if (readAscii(view, 0, 8) !== SUPER_MAGIC) return { kind: "absent" };
  if (crc32c(bytes.subarray(0, SUPER_CHECKSUM_AT)) !== view.getUint32(SUPER_CHECKSUM_AT, true)) return { kind: "bad-checksum" };
  const version = view.getUint32(8, true);
  if (version > FORMAT_VERSION) return { kind: "newer", version };
  return {
    kind: "ok",
    sb: {
      version, blockSize: view.getUint32(12, true), blockCount: view.getUint32(16, true),
      inodeCount: view.getUint32(20, true), metaAreaBlocks: view.getUint32(24, true),
      slot: view.getUint32(28, true), generation: view.getFloat64(32, true),
      metaBytes: view.getUint32(40, true), metaChecksum: view.getUint32(44, true),
    },
  };
}

/** One file as the metadata blob records it. */
export interface InodeRecord {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  name: string;
  /** [fileBlock, diskBlock, length] triples, sorted by file block. */
  extents: Uint32Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The metadata blob for `generation`: header, inode records, extents, names. */
export function encodeMeta(generation: number, inodes: readonly InodeRecord[]): Uint8Array {
  const names = inodes.map((inode) => encoder.encode(inode.name));
  const extentCount = inodes.reduce((sum, inode) => sum + inode.extents.length / 3, 0);
  const nameBytes = names.reduce((sum, name) => sum + name.length, 0);
  const total = META_HEADER_BYTES + inodes.length * INODE_RECORD_BYTES + extentCount * EXTENT_RECORD_BYTES + nameBytes;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  writeAscii(view, 0, META_MAGIC);
  view.setFloat64(8, generation, true);
  view.setUint32(16, inodes.length, true);
  view.setUint32(20, extentCount, true);
  view.setUint32(24, nameBytes, true);
  let at = META_HEADER_BYTES;
  let nameAt = 0;
  inodes.forEach((inode, i) => {
    view.setUint32(at, inode.ino, true);
    view.setUint32(at + 4, INODE_REGULAR, true);
    view.setFloat64(at + 8, inode.size, true);
    view.setFloat64(at + 16, inode.mtimeMs, true);
    view.setFloat64(at + 24, inode.ctimeMs, true);
    view.setUint32(at + 32, inode.extents.length / 3, true);
    view.setUint32(at + 36, nameAt, true);
    view.setUint32(at + 40, names[i].length, true);
    at += INODE_RECORD_BYTES;
    nameAt += names[i].length;
  });
  for (const inode of inodes) {
    for (let k = 0; k < inode.extents.length; k++) {
      view.setUint32(at, inode.extents[k], true);
      at += 4;
    }
  }
  for (const name of names) {
    bytes.set(name, at);
    at += name.length;
  }
  return bytes;
}

/** Decodes a blob; throws an Error describing the first structural problem found. */
export function decodeMeta(bytes: Uint8Array): { generation: number; inodes: InodeRecord[] } {
  if (bytes.length < META_HEADER_BYTES) throw new Error(`metadata is ${bytes.length} bytes, shorter than its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (readAscii(view, 0, 8) !== META_MAGIC) throw new Error("metadata magic is wrong");
  const generation = view.getFloat64(8, true);
  const inodeCount = view.getUint32(16, true);
  const extentCount = view.getUint32(20, true);
  const nameBytes = view.getUint32(24, true);
  const expected = META_HEADER_BYTES + inodeCount * INODE_RECORD_BYTES + extentCount * EXTENT_RECORD_BYTES + nameBytes;
  if (expected !== bytes.length) throw new Error(`metadata length ${bytes.length} does not match its counts (${expected})`);
  const extentsAt = META_HEADER_BYTES + inodeCount * INODE_RECORD_BYTES;
  const namesAt = extentsAt + extentCount * EXTENT_RECORD_BYTES;
  const inodes: InodeRecord[] = [];
  let extentIndex = 0;
  for (let i = 0; i < inodeCount; i++) {
    const at = META_HEADER_BYTES + i * INODE_RECORD_BYTES;
    const count = view.getUint32(at + 32, true);
    const nameAt = view.getUint32(at + 36, true);
    const nameLength = view.getUint32(at + 40, true);
    if (view.getUint32(at + 4, true) !== INODE_REGULAR) throw new Error(`inode record ${i} has an unknown type`);
    if (extentIndex + count > extentCount) throw new Error(`inode record ${i} claims more extents than the metadata holds`);
    if (nameAt + nameLength > nameBytes || nameLength === 0 || nameLength > NAME_BYTES_MAX) throw new Error(`inode record ${i} has a bad name range`);
    const extents = new Uint32Array(count * 3);
    for (let k = 0; k < count * 3; k++) extents[k] = view.getUint32(extentsAt + (extentIndex * 3 + k) * 4, true);
    extentIndex += count;
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(namesAt + nameAt, namesAt + nameAt + nameLength));
    } catch {
      throw new Error(`inode record ${i} has a name that is not UTF-8`);
    }
    inodes.push({
      ino: view.getUint32(at, true), size: view.getFloat64(at + 8, true), mtimeMs: view.getFloat64(at + 16, true),
      ctimeMs: view.getFloat64(at + 24, true), name, extents,
    });
  }
  if (extentIndex !== extentCount) throw new Error("metadata holds extents no inode claims");
  return { generation, inodes };
}

/**
 * Structural checks of decoded metadata against the geometry: every problem, as sentences.
 * Used by mount (refuse a corrupt image) and fsck.
 */
export function checkMeta(geometry: Geometry, inodes: readonly InodeRecord[]): string[] {
  const errors: string[] = [];
  const seenIno = new Set<number>();
  const seenName = new Set<string>();
  const runs: [number, number, number][] = [];
  for (const inode of inodes) {
    const label = `inode ${inode.ino} ("${inode.name}")`;
    if (!Number.isInteger(inode.ino) || inode.ino < 1 || inode.ino > geometry.inodeCount) errors.push(`${label}: number out of range 1..${geometry.inodeCount}`);
    if (seenIno.has(inode.ino)) errors.push(`${label}: inode number used twice`);
    seenIno.add(inode.ino);
    if (seenName.has(inode.name)) errors.push(`${label}: name used twice`);
    seenName.add(inode.name);
    if (inode.name.includes("/") || inode.name === "." || inode.name === "..") errors.push(`${label}: invalid name`);
    if (!Number.isSafeInteger(inode.size) || inode.size < 0) errors.push(`${label}: size ${inode.size} is not a byte count`);
    let previousEnd = 0;
    for (let k = 0; k < inode.extents.length; k += 3) {
      const [fileBlock, diskBlock, length] = [inode.extents[k], inode.extents[k + 1], inode.extents[k + 2]];
      if (length === 0) errors.push(`${label}: extent ${k / 3} is empty`);
      if (fileBlock < previousEnd) errors.push(`${label}: extent ${k / 3} at file block ${fileBlock} overlaps or is out of order`);
      if (diskBlock < geometry.firstDataBlock || diskBlock + length > geometry.blockCount) {
        errors.push(`${label}: extent ${k / 3} (disk blocks ${diskBlock}+${length}) lies outside the data area ${geometry.firstDataBlock}..${geometry.blockCount - 1}`);
      }
      previousEnd = fileBlock + length;
      runs.push([diskBlock, length, inode.ino]);
    }
  }
  runs.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < runs.length; i++) {
    const [start, , ino] = runs[i];
    const [prevStart, prevLength, prevIno] = runs[i - 1];
    if (prevStart + prevLength > start) errors.push(`disk block ${start} is mapped by inode ${prevIno} and inode ${ino}`);
  }
  return errors;
}
