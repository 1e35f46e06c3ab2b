/** Argument checks shared by the reference kernels: a kernel given too short a buffer throws instead of reading junk. */
import type { KernelArray } from '../backend.js';

/** Throws a RangeError unless `buffer` holds at least `length` entries. */
export function need(kernel: string, what: string, buffer: KernelArray, length: number): void {
  if (!Number.isInteger(length) || length < 0) {
    throw new RangeError(`${kernel}: ${what} length ${length} is not a non-negative integer`);
  }
  if (buffer.length < length) {
    throw new RangeError(`${kernel}: ${what} has ${buffer.length} entries, needs ${length}`);
  }
}

/** Throws a RangeError unless every size is a non-negative integer. */
export function sizes(kernel: string, values: Record<string, number>): void {
  for (const [key, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 0)
      throw new RangeError(`${kernel}: ${key} = ${v} is not a non-negative integer`);
  }
}
