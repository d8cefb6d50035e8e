// Deterministic sample order events for the demo, the benchmark and the tests.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { typeForSchema, type AvroSchema, type AvroType } from '../avro/types.ts';
import { frame } from '../avro/wire.ts';

export const ORDERS_SCHEMA_PATH = fileURLToPath(new URL('../../schemas/orders.avsc', import.meta.url));

export function ordersType(): AvroType {
  return typeForSchema(JSON.parse(readFileSync(ORDERS_SCHEMA_PATH, 'utf8')) as AvroSchema);
}

export interface Order {
  order_id: bigint;
  customer_id: string;
  status: string;
  amount: Buffer;
  currency: string;
  item_count: number;
  weight_kg: number;
  is_priority: boolean;
  created_at: bigint;
  updated_at: bigint;
  shipping_city: string;
  note: string | null;
}

const STATUSES = ['CREATED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED'];
const CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY', 'CHF'];
const CITIES = [
  'Lisboa',
  'Berlin',
  'São Paulo',
  'Zürich',
  'Kraków',
  'Osaka',
  'Montréal',
  'Nairobi',
  'Reykjavík',
];

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two's complement big-endian bytes of an unscaled decimal (Avro decimal on bytes). */
export function decimalBytes(unscaled: bigint): Buffer {
  let hex = (unscaled < 0n ? -unscaled : unscaled).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if (unscaled < 0n) {
    const n = (1n << BigInt((bytes.length + 1) * 8)) + unscaled;
    let h = n.toString(16);
    if (h.length % 2) h = `0${h}`;
    bytes = Buffer.from(h, 'hex');
    while (bytes.length > 1 && bytes[0] === 0xff && (bytes[1]! & 0x80) !== 0) bytes = bytes.subarray(1);
  } else if (bytes.length === 0 || (bytes[0]! & 0x80) !== 0) {
    bytes = Buffer.concat([Buffer.from([0]), bytes]);
  }
  return bytes;
}

function uuid(rand: () => number): string {
  const h = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function sampleOrder(i: number, rand: () => number, nowMs = 1_790_000_000_000): Order {
  const created = BigInt(nowMs - Math.floor(rand() * 86_400_000));
  return {
    order_id: BigInt(i),
    customer_id: uuid(rand),
    status: STATUSES[Math.floor(rand() * STATUSES.length)]!,
    amount: decimalBytes(BigInt(Math.floor(rand() * 10_000_000))),
    currency: CURRENCIES[Math.floor(rand() * CURRENCIES.length)]!,
    item_count: 1 + Math.floor(rand() * 20),
    weight_kg: Math.round(rand() * 100_000) / 1000,
    is_priority: rand() < 0.1,
    created_at: created,
    updated_at: created * 1000n + BigInt(Math.floor(rand() * 1000)),
    shipping_city: CITIES[Math.floor(rand() * CITIES.length)]!,
    note: rand() < 0.3 ? `gift wrap please, ref ${Math.floor(rand() * 1e6)}` : null,
  };
}

/** Confluent-framed Avro values for orders [from, from+count). */
export function* orderValues(
  type: AvroType,
  schemaId: number,
  from: number,
  count: number,
  seed = 42,
): Generator<{ key: string; value: Buffer }> {
  const rand = prng(seed + from);
  for (let i = from; i < from + count; i++) {
    yield { key: String(i), value: frame(schemaId, type.toBuffer(sampleOrder(i, rand))) };
  }
}
