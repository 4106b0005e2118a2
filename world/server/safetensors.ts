/**
 * Tiny but valid safetensors shards holding every tensor name of a real Llama 3 8B Hugging Face
 * checkpoint, and the deterministic pseudo-random bytes that fill them.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length, a JSON
 * header `{ "__metadata__": {...}, "<name>": { dtype, shape, data_offsets: [begin, end] } }`
 * (offsets relative to the end of the header), then the data. The reference loader insists that
 * `end - begin == product(shape) * dtype size` and that the tensors cover the data section with no
 * hole, so shards are made bigger by growing a tensor, never by leaving gaps.
 */
import { createHash } from "node:crypto";

/** Every real dimension is divided by this: hidden 4096 → 64, vocab 128256 → 2004. */
export const SHAPE_DIVISOR = 64;
export const SHARD_COUNT = 4;

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

const BF16_BYTES = 2;

export function tensorBytes(tensor: TensorSpec): number {
  return tensor.shape.reduce((product, dim) => product * dim, 1) * BF16_BYTES;
}

/** Tensors of a Llama-3-8B HF checkpoint in checkpoint order (embeddings, layers 0..31, norm, head). */
export function llama3TensorSpecs(): TensorSpec[] {
  const d = (real: number) => real / SHAPE_DIVISOR;
  const hidden = d(4096);
  const intermediate = d(14336);
  const vocab = d(128256);
  const kv = d(8 * 128); // 8 KV heads of head dim 128 (grouped-query attention)
  const tensors: TensorSpec[] = [{ name: "model.embed_tokens.weight", shape: [vocab, hidden] }];
  for (let layer = 0; layer < 32; layer++) {
    const p = `model.layers.${layer}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [hidden] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [hidden] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [hidden, intermediate] },
    );
  }
  tensors.push({ name: "model.norm.weight", shape: [hidden] }, { name: "lm_head.weight", shape: [vocab, hidden] });
  return tensors;
}

export function shardFileName(index: number, count = SHARD_COUNT): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** Splits tensors, in order, into `count` shards of about equal byte size (as HF's sharding does). */
export function planShards(tensors: readonly TensorSpec[], count = SHARD_COUNT): TensorSpec[][] {
  const total = tensors.reduce((sum, t) => sum + tensorBytes(t), 0);
  const shards: TensorSpec[][] = Array.from({ length: count }, () => []);
  let filled = 0;
  for (const tensor of tensors) {
    // A tensor goes to the shard its first byte falls in, so no shard stays empty.
    const index = Math.min(count - 1, Math.floor((filled * count) / total));
    shards[index]?.push(tensor);
    filled += tensorBytes(tensor);
  }
  return shards;
}

export interface ShardLayout {
  /** The 8-byte length prefix plus the JSON header (space-padded to a multiple of 8). */
  readonly head: Buffer;
  readonly dataBytes: number;
  readonly size: number;
  readonly tensors: readonly TensorSpec[];
}

/** Header and sizes of one shard; tensors are stored sorted by name, like the reference writer. */
export function shardLayout(tensors: readonly TensorSpec[]): ShardLayout {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const tensor of sorted) {
    const end = offset + tensorBytes(tensor);
    header[tensor.name] = { dtype: "BF16", shape: tensor.shape, data_offsets: [offset, end] };
    offset = end;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const jsonBytes = Buffer.from(json, "utf8");
  const head = Buffer.alloc(8 + jsonBytes.length);
  head.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  jsonBytes.copy(head, 8);
  return { head, dataBytes: offset, size: head.length + offset, tensors: sorted };
}

/**
 * Grows the shard's largest tensor along its first dimension until the file is as close to
 * `bytesPerShard` as whole rows allow (never above it). This keeps the file valid; the price is
 * that the grown tensor's shape no longer matches its siblings, which only benchmarks ask for.
 */
export function padShard(tensors: readonly TensorSpec[], bytesPerShard: number): ShardLayout {
  const natural = shardLayout(tensors);
  if (bytesPerShard <= natural.size) return natural;
  let biggest = 0;
  tensors.forEach((t, i) => {
    const current = tensors[biggest];
    if (current && tensorBytes(t) > tensorBytes(current)) biggest = i;
  });
  const target = tensors[biggest];
  if (!target) return natural;
  const [rows = 1, ...rest] = target.shape;
  const rowBytes = rest.reduce((p, dim) => p * dim, 1) * BF16_BYTES;
  let extraRows = Math.floor((bytesPerShard - natural.size) / rowBytes);
  for (;;) {
    const grown = tensors.map((t, i) => (i === biggest ? { name: t.name, shape: [rows + extraRows, ...rest] } : t));
    const layout = shardLayout(grown);
    // The header grows by a few digits with the shape, hence the (rarely taken) step back.
    if (layout.size <= bytesPerShard || extraRows === 0) return layout;
    extraRows--;
  }
}

/** A 32-bit seed from any string (e.g. repo id + file path + commit generation). */
export function seedFrom(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32LE(0) | 1;
}

const CHUNK_BYTES = 1 << 20;

/**
 * Deterministic pseudo-random bytes, `size` of them, in chunks of 1 MiB: xorshift32 per 4 bytes,
 * fast enough for multi-GB benchmark files. With `bf16`, every 16-bit word is a finite bf16
 * of magnitude in [2^-7, 2^-6), so a loader that reads the values sees no NaN or Inf.
 */
export function* noiseChunks(seed: number, size: number, bf16: boolean): Generator<Uint8Array> {
  let state = seed >>> 0 || 1;
  for (let produced = 0; produced < size; ) {
    const length = Math.min(CHUNK_BYTES, size - produced);
    const words = new Uint32Array(Math.ceil(length / 4));
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      // sign + 7 mantissa bits random, exponent fixed at 120 (0x3C00 | 0x0000..0x807F).
      words[i] = bf16 ? ((state & 0x807f807f) | 0x3c003c00) >>> 0 : state >>> 0;
    }
    yield new Uint8Array(words.buffer, 0, length);
    produced += length;
  }
}

/** The bytes of one shard file: its header, then bf16 noise for the data section. */
export function* shardChunks(layout: ShardLayout, seed: number): Generator<Uint8Array> {
  yield layout.head;
  yield* noiseChunks(seed, layout.dataBytes, true);
}

/** `model.safetensors.index.json`: total tensor bytes and the tensor → shard map, sorted by name. */
export function safetensorsIndexJson(shards: ReadonlyArray<{ file: string; layout: ShardLayout }>): string {
  const entries: Array<[string, string]> = [];
  let totalSize = 0;
  for (const { file, layout } of shards) {
    totalSize += layout.dataBytes;
    for (const tensor of layout.tensors) entries.push([tensor.name, file]);
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify({ metadata: { total_size: totalSize }, weight_map: Object.fromEntries(entries) }, null, 2) + "\n";
}
