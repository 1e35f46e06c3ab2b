/**
 * A first-fit free-list allocator over a kernel module's shared WebAssembly.Memory (the backend's, the
 * float-free kernels' and the engine's each have one).
 *
 * Blocks are 64-byte aligned (a cache line, and more than any SIMD load needs) and adjacent free blocks
 * coalesce, so a plan-once/reuse-forever workload (the training loop) never fragments. When no free block
 * fits, the memory grows; growing a shared memory hands out a new SharedArrayBuffer object but never
 * moves or detaches the old one, so every view made earlier stays valid. `isOurBuffer` therefore accepts
 * any buffer object this memory has ever returned.
 */

import type { WasmMemory } from './api.js';

export const BLOCK_ALIGN = 64;
const PAGE = 65536;

interface Block {
  offset: number;
  size: number;
}

export class WasmHeap {
  /** Free blocks, sorted by offset, never adjacent (they are merged). */
  private readonly freeBlocks: Block[] = [];
  /** Live blocks: offset -> size. */
  private readonly live = new Map<number, number>();
  private readonly buffers = new Set<ArrayBufferLike>();
  private end: number;

  /**
   * @param memory the shared memory the kernels run on
   * @param base first byte the heap may use (the module's __heap_base)
   * @param maxBytes the memory's maximum size in bytes
   * @param label what owns the heap, the prefix of its error messages (e.g. 'wasm backend')
   */
  constructor(
    readonly memory: WasmMemory,
    base: number,
    private readonly maxBytes: number,
    private readonly label: string,
  ) {
    const start = alignUp(base, BLOCK_ALIGN);
    this.end = this.buffer().byteLength;
    if (this.end > start) this.freeBlocks.push({ offset: start, size: this.end - start });
    else this.end = start;
  }

  /** The memory's current buffer (recording it, so views on it are recognised later). */
  buffer(): ArrayBufferLike {
    const buf = this.memory.buffer;
    this.buffers.add(buf);
    return buf;
  }

  /** Whether `buf` is (some incarnation of) this memory's buffer. */
  isOurBuffer(buf: ArrayBufferLike): boolean {
    if (this.buffers.has(buf)) return true;
    // A buffer created by a grow we did not observe yet (e.g. memory.buffer read elsewhere).
    return this.buffer() === buf;
  }

  /** Reserves `bytes` (rounded up to the block size) and returns the block's byte offset. */
  alloc(bytes: number): number {
    const size = Math.max(BLOCK_ALIGN, alignUp(bytes, BLOCK_ALIGN));
    let index = this.freeBlocks.findIndex((b) => b.size >= size);
    if (index < 0) {
      this.grow(size);
      index = this.freeBlocks.findIndex((b) => b.size >= size);
      if (index < 0) throw new Error(`${this.label}: heap corrupt, no block of ${size} bytes after growing`);
    }
    const block = this.freeBlocks[index];
    const offset = block.offset;
    if (block.size === size) this.freeBlocks.splice(index, 1);
    else {
      block.offset += size;
      block.size -= size;
    }
    this.live.set(offset, size);
    return offset;
  }

  /** Returns the block at `offset` to the free list; throws if no live block starts there. */
  release(offset: number): void {
    const size = this.live.get(offset);
    if (size === undefined) throw new Error(`${this.label}: no live block at offset ${offset}`);
    this.live.delete(offset);
    // Insert sorted, then merge with the neighbours.
    let lo = 0;
    let hi = this.freeBlocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.freeBlocks[mid].offset < offset) lo = mid + 1;
      else hi = mid;
    }
    this.freeBlocks.splice(lo, 0, { offset, size });
    this.mergeAround(lo);
  }

  /** Total bytes in live blocks (block sizes, alignment included). */
  liveBytes(): number {
    let total = 0;
    for (const size of this.live.values()) total += size;
    return total;
  }

  /** Grows the memory so that a free block of `size` bytes exists at its end. */
  private grow(size: number): void {
    const last = this.freeBlocks[this.freeBlocks.length - 1];
    const tailFree = last !== undefined && last.offset + last.size === this.end ? last.size : 0;
    const needed = size - tailFree;
    const current = this.end;
    // Grow by at least a quarter of the current size so that a run of allocations grows O(log n) times.
    const target = Math.min(this.maxBytes, Math.max(current + needed, Math.ceil(current * 1.25)));
    if (target < current + needed) {
      throw new RangeError(
        `${this.label}: out of memory: cannot allocate ${size} bytes ` +
          `(memory is ${current} bytes, maximum ${this.maxBytes} bytes)`,
      );
    }
    const pages = Math.ceil((target - this.memory.buffer.byteLength) / PAGE);
    try {
      this.memory.grow(pages);
    } catch (err) {
      throw new RangeError(
        `${this.label}: out of memory: growing by ${pages} pages for ${size} bytes failed (${String(err)})`,
      );
    }
    const newEnd = this.buffer().byteLength;
    this.freeBlocks.push({ offset: current, size: newEnd - current });
    this.end = newEnd;
    this.mergeAround(this.freeBlocks.length - 1);
  }

  private mergeAround(index: number): void {
    const blocks = this.freeBlocks;
    const next = blocks[index + 1];
    if (next !== undefined && blocks[index].offset + blocks[index].size === next.offset) {
      blocks[index].size += next.size;
      blocks.splice(index + 1, 1);
    }
    const prev = blocks[index - 1];
    if (prev !== undefined && prev.offset + prev.size === blocks[index].offset) {
      prev.size += blocks[index].size;
      blocks.splice(index, 1);
    }
  }
}

export function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}
