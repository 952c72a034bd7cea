// CRC-32C (Castagnoli), the checksum of the on-disk superblock and metadata (and of verify=crc32c
// blocks in the benchmark runner). Table-driven (slicing-by-8),
// reflected, initial value and final xor 0xFFFFFFFF, as iSCSI and ext4 metadata use.

/** Slicing-by-8 tables: table k (entries k*256..k*256+255) advances a byte through k more zero
 *  bytes, so that eight bytes are folded in per step (Intel's slicing-by-8). Table 0 is the
 *  classic byte-at-a-time table. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const prev = t[(k - 1) * 256 + n];
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
})();

/** CRC-32C of `bytes`. crc32c("123456789") = 0xe3069283. */
export function crc32c(bytes: Uint8Array): number {
  const t = TABLES;
  const n = bytes.length;
  let crc = 0xffffffff | 0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const low = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = t[1792 + (low & 0xff)] ^ t[1536 + ((low >>> 8) & 0xff)] ^ t[1280 + ((low >>> 16) & 0xff)] ^ t[1024 + (low >>> 24)] ^
      t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < n; i++) crc = t[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
