/**
 * CRC32C (Castagnoli: reflected polynomial 0x82f63b78, initial value and final XOR 0xffffffff), the checksum
 * of the `.onebit` format (format.ts). Written out here rather than imported from the crc-32 package the
 * checkpoints use (io/tensor-file.ts), because the engine stands alone: it loads no package, so it runs in a
 * browser without a bundler. src/engine/format.test.ts checks it against that package.
 */

const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC32C of `bytes`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
