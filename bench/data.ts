// The benchmark's events: schemas/bench-orders.avsc (13 fields, about 225 bytes of Avro per
// event), deterministic for a seed, so every phase and every process sees the same rows.
// Event i goes to partition i % partitions, so its offset in a fresh topic is
// floor(i / partitions).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { routeSchema, type ConfigInput, type RouteConfig } from '../src/config/schema.ts';
import { decimalBytes, prng } from '../src/cli/sample-data.ts';
import { typeForSchema, type AvroSchema, type AvroType } from '../src/avro/types.ts';
import { frame } from '../src/avro/wire.ts';

export const BENCH_SCHEMA_PATH = fileURLToPath(new URL('../schemas/bench-orders.avsc', import.meta.url));
export const SCHEMA_ID = 1;

export function benchType(): AvroType {
  return typeForSchema(JSON.parse(readFileSync(BENCH_SCHEMA_PATH, 'utf8')) as AvroSchema);
}

export type RouteInput = ConfigInput['routes'][number];

/** The route pgsink and the baselines use: every field, plus partition and offset columns. */
export function benchRoute(topic: string, table: string): RouteInput {
  return {
    topic,
    table,
    schema: BENCH_SCHEMA_PATH,
    mode: 'append',
    metadata: { partition: '_partition', offset: '_offset' },
  };
}

/** The same route with every default filled in, as pgsink sees it after validation. */
export function benchRouteConfig(topic: string, table: string): RouteConfig {
  return routeSchema.parse(benchRoute(topic, table));
}

const STATUSES = ['CREATED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED'];
const CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY', 'CHF'];
const FIRST = [
  'ana',
  'joão',
  'lena',
  'marek',
  'yuki',
  'amara',
  'luc',
  'sigríður',
  'diego',
  'priya',
  'tomasz',
  'chloé',
];
const LAST = [
  'silva',
  'müller',
  'kowalski',
  'tanaka',
  'okafor',
  'tremblay',
  'jónsdóttir',
  'garcía',
  'sharma',
  'dubois',
];
const DOMAINS = ['example.com', 'mail.example.org', 'shop-customers.example.net', 'corp.example.co.uk'];
const STREETS = [
  'Rua Augusta',
  'Friedrichstraße',
  'Avenida Paulista',
  'Bahnhofstrasse',
  'ulica Floriańska',
  'Dōtonbori-dōri',
  'Rue Sainte-Catherine Ouest',
  'Moi Avenue',
  'Laugavegur',
];
const CITIES = [
  '1100-048 Lisboa, Portugal',
  '10117 Berlin, Germany',
  '01310-100 São Paulo, Brazil',
  '8001 Zürich, Switzerland',
  '31-010 Kraków, Poland',
  '542-0071 Osaka, Japan',
  'Montréal, QC H3B 1A7, Canada',
  '00100 Nairobi, Kenya',
  '101 Reykjavík, Iceland',
];
const PRODUCTS = [
  'Espresso machine, stainless steel, 15 bar',
  'Running shoes (men, size 43, blue/white)',
  'Noise-cancelling headphones, over-ear',
  'Ceramic dinner set, 18 pieces, matte grey',
  'Mechanical keyboard, ISO-DE layout, brown switches',
  'Organic green tea, 12 × 100 g tins',
  'Children’s bicycle 20", 6 gears, helmet included',
  'Standing desk frame, dual motor, black',
];
const NOTES = [
  'gift wrap please, no invoice in the parcel',
  'leave with the neighbour at no. 12 if not at home',
  'call before delivery; the door bell is broken',
  'deliver after 18:00 on weekdays only, thank you',
];

const pick = <T>(list: readonly T[], rand: () => number): T => list[Math.floor(rand() * list.length)]!;
const hex8 = (rand: () => number): string => ((rand() * 0x1_0000_0000) >>> 0).toString(16).padStart(8, '0');

function uuid(rand: () => number): string {
  const a = hex8(rand);
  const b = hex8(rand);
  const c = hex8(rand);
  const d = hex8(rand);
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-a${c.slice(1, 4)}-${c.slice(4)}${d}`;
}

/** One event as avsc wants it for schemas/bench-orders.avsc (longs as BigInt). */
export function benchOrder(
  i: number,
  rand: () => number,
  nowMs = 1_790_000_000_000,
): Record<string, unknown> {
  const created = BigInt(nowMs - Math.floor(rand() * 86_400_000));
  const first = pick(FIRST, rand);
  const last = pick(LAST, rand);
  return {
    order_id: BigInt(i),
    customer_id: uuid(rand),
    customer_email: `${first}.${last}${Math.floor(rand() * 1000)}@${pick(DOMAINS, rand)}`,
    status: pick(STATUSES, rand),
    amount: decimalBytes(BigInt(Math.floor(rand() * 10_000_000))),
    currency: pick(CURRENCIES, rand),
    item_count: 1 + Math.floor(rand() * 20),
    is_priority: rand() < 0.1,
    created_at: created,
    updated_at: created * 1000n + BigInt(Math.floor(rand() * 1000)),
    shipping_address: `${1 + Math.floor(rand() * 400)} ${pick(STREETS, rand)}, apt ${1 + Math.floor(rand() * 90)}, ${pick(CITIES, rand)}`,
    product_summary: `${1 + Math.floor(rand() * 4)} × ${pick(PRODUCTS, rand)}`,
    note: rand() < 0.3 ? `${pick(NOTES, rand)} (ref ${Math.floor(rand() * 1e6)})` : null,
  };
}

export interface BenchMessage {
  index: number;
  partition: number;
  key: string;
  value: Buffer;
}

/** Confluent-framed events [from, from + count), each with its partition. */
export function* benchMessages(
  type: AvroType,
  from: number,
  count: number,
  partitions: number,
  seed = 7,
): Generator<BenchMessage> {
  const rand = prng(seed + from);
  for (let i = from; i < from + count; i++) {
    const value = frame(SCHEMA_ID, type.toBuffer(benchOrder(i, rand)));
    yield { index: i, partition: i % partitions, key: String(i), value };
  }
}
