/**
 * Reading a single image for `onebit predict --image`: a PNG decoded with pngjs into raw 8-bit pixels in
 * the model's C x H x W layout. One channel: grayscale (color images become luminance, 0.299 R + 0.587 G +
 * 0.114 B); three channels: RGB. Transparent pixels are composited over black, the background of the
 * MNIST-style data sets.
 *
 * Whatever the bytes, decoding ends in a decoded image or an ImageError naming the file (a fuzz test holds
 * this): the signature and the size in the IHDR chunk are checked before pngjs runs, so a file that is not a
 * PNG says what it starts with, and one whose header announces another size is refused before it is
 * inflated (a few kilobytes can announce gigabytes of pixels); pngjs's own complaint is wrapped.
 */
import { ImageError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * The width and height in the IHDR chunk (which must come first, right after the signature), or null when
 * the chunk is not there whole: then pngjs says what is wrong.
 */
function headerSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.byteLength < 24) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]);
  if (view.getUint32(8) !== 13 || type !== 'IHDR') return null;
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Decodes a PNG of exactly `shape` = [C, H, W] (C = 1 or 3) into C*H*W bytes, channel-major. */
export function decodePngImage(
  bytes: Uint8Array,
  shape: readonly [number, number, number],
  file = '<png>',
): Uint8Array {
  const [channels, height, width] = shape;
  if (bytes.byteLength < PNG_SIGNATURE.length || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new ImageError(
      file,
      `not a valid PNG: expected the PNG signature ${hexBytes(Uint8Array.from(PNG_SIGNATURE))}, found ` +
        (bytes.byteLength === 0 ? 'an empty file' : `bytes ${hexBytes(bytes.subarray(0, 8))}`),
    );
  }
  const announced = headerSize(bytes);
  if (announced !== null && (announced.width !== width || announced.height !== height)) {
    throw new ImageError(
      file,
      `the model takes ${width}x${height} images, this one is ${announced.width}x${announced.height}`,
    );
  }
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new ImageError(
      file,
      `not a valid PNG (pngjs: ${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (png.width !== width || png.height !== height) {
    throw new ImageError(
      file,
      `the model takes ${width}x${height} images, this one is ${png.width}x${png.height}`,
    );
  }
  if (channels !== 1 && channels !== 3)
    throw new ImageError(file, `models with ${channels} input channels cannot take a PNG`);
  const plane = width * height;
  const out = new Uint8Array(channels * plane);
  const rgba = png.data; // always RGBA, 8 bits per channel, after pngjs's conversion
  if (!(rgba instanceof Uint8Array) || rgba.length < 4 * plane)
    throw new ImageError(file, `not a valid PNG (it decodes to fewer than ${width}x${height} pixels)`);
  for (let p = 0; p < plane; p++) {
    const alpha = rgba[4 * p + 3] / 255;
    const r = rgba[4 * p] * alpha;
    const g = rgba[4 * p + 1] * alpha;
    const b = rgba[4 * p + 2] * alpha;
    if (channels === 1) out[p] = Math.min(255, Math.round(0.299 * r + 0.587 * g + 0.114 * b));
    else {
      out[p] = Math.round(r);
      out[plane + p] = Math.round(g);
      out[2 * plane + p] = Math.round(b);
    }
  }
  return out;
}

export function readPngImage(path: string, shape: readonly [number, number, number]): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ImageError(path, `cannot read (${error instanceof Error ? error.message : String(error)})`);
  }
  return decodePngImage(bytes, shape, path);
}

/** Encodes C x H x W bytes (C = 1: grayscale, C = 3: RGB) as a PNG (tests and examples). */
export function encodePngImage(pixels: Uint8Array, shape: readonly [number, number, number]): Uint8Array {
  const [channels, height, width] = shape;
  const plane = width * height;
  const png = new PNG({ width, height, colorType: 6 });
  for (let p = 0; p < plane; p++) {
    const r = pixels[p];
    png.data[4 * p] = r;
    png.data[4 * p + 1] = channels === 3 ? pixels[plane + p] : r;
    png.data[4 * p + 2] = channels === 3 ? pixels[2 * plane + p] : r;
    png.data[4 * p + 3] = 255;
  }
  return PNG.sync.write(png);
}
