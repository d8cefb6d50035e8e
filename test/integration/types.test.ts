// Exact type mapping, property-based: random records (and hand-picked edge values) of a
// schema with every supported Avro type go through Kafka and COPY into a table pgsink
// creates itself (autoCreate), and every value reads back equal to what was produced.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ALL_TYPES_EDGES,
  ALL_TYPES_SCHEMA,
  allTypesRecord,
  type AllTypesRecord,
} from '../support/all-types.ts';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

function expectedDecimal(unscaled: bigint, scale: number): string {
  const neg = unscaled < 0n;
  const digits = (neg ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

const jsonable = (v: unknown): unknown =>
  typeof v === 'bigint'
    ? Number(v)
    : Array.isArray(v)
      ? v.map(jsonable)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]))
        : v;

describe('type mapping', () => {
  it(
    'round-trips every supported Avro type exactly through Kafka and COPY',
    { timeout: 120_000 },
    async () => {
      const samples = fc.sample(allTypesRecord, { numRuns: 250, seed: 20261121 });
      const base = samples[0]!;
      const records: AllTypesRecord[] = [...ALL_TYPES_EDGES.map((e) => ({ ...base, ...e })), ...samples].map(
        (r, id) => ({
          ...r,
          id,
        }),
      );
      const type = typeForSchema(ALL_TYPES_SCHEMA as AvroSchema);
      const dir = mkdtempSync(join(tmpdir(), 'pgsink-types-'));
      const schemaFile = join(dir, 'all.avsc');
      writeFileSync(schemaFile, JSON.stringify(ALL_TYPES_SCHEMA));

      const topic = uniqueName('types_t');
      const schema = uniqueName('types_s');
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await createTopic(kafka, topic, 2);
      const producer = await connectedProducer(kafka);
      await producer.send({
        topic,
        messages: records.map((r) => ({
          key: String(r.id),
          value: frame(1, type.toBuffer({ ...r, dec: decimalBytes(r.dec) })),
        })),
      });
      await producer.disconnect();

      const route = routeSchema.parse({
        topic,
        table: `${schema}.all_types`,
        schema: schemaFile,
        autoCreate: true,
      });
      const f = { topic, groupId: uniqueName('types_g'), table: `"${schema}".all_types`, schema, route };
      const p = createPipeline(testConfig(f), { logger: createLogger('error') });
      await p.service.start();
      try {
        await waitFor(
          'all records',
          async () => (await countRows(pool, f.table)) + p.stats.deadLettered,
          (n) => n >= records.length,
        );
      } finally {
        await p.service.stop();
      }
      expect(p.stats.deadLettered).toBe(0);

      const { rows } = await pool.query<Record<string, string | null>>(`
      SELECT id, b::text, i::text, l::text, f::float8::text AS f, d::text, s, encode(by, 'hex') AS by, encode(fx, 'hex') AS fx, e,
             dec::text, u::text, (dt - date '1970-01-01')::text AS dt,
             (extract(epoch from tms) * 1000)::bigint::text AS tms, (extract(epoch from tus) * 1000000)::bigint::text AS tus,
             (extract(epoch from tsm) * 1000)::bigint::text AS tsm, (extract(epoch from tsu) * 1000000)::bigint::text AS tsu,
             (extract(epoch from lts) * 1000000)::bigint::text AS lts, ns, uni::text, rec::text, m::text,
             to_json(ai)::text AS ai, to_json("as")::text AS "as", to_json(an)::text AS an
        FROM ${f.table} ORDER BY id`);
      expect(rows).toHaveLength(records.length);
      const num = (s: string | null | undefined) => Number(s);
      for (const r of records) {
        const row = rows[r.id]!;
        const got = {
          b: row['b'],
          i: row['i'],
          l: row['l'],
          f: Object.is(num(row['f']), r.f) || (Number.isNaN(r.f) && Number.isNaN(num(row['f']))),
          d: Object.is(num(row['d']), r.d),
          s: row['s'],
          by: row['by'],
          fx: row['fx'],
          e: row['e'],
          dec: row['dec'],
          u: row['u'],
          dt: row['dt'],
          tms: row['tms'],
          tus: row['tus'],
          tsm: row['tsm'],
          tsu: row['tsu'],
          lts: row['lts'],
          ns: row['ns'],
          uni: row['uni'] === null ? null : JSON.parse(row['uni']!),
          rec: JSON.parse(row['rec']!),
          m: JSON.parse(row['m']!),
          ai: JSON.parse(row['ai']!),
          as: JSON.parse(row['as']!),
          an: JSON.parse(row['an']!),
        };
        expect({ id: r.id, ...got }).toEqual({
          id: r.id,
          b: String(r.b),
          i: String(r.i),
          l: r.l.toString(),
          f: true,
          d: true,
          s: r.s,
          by: r.by.toString('hex'),
          fx: r.fx.toString('hex'),
          e: r.e,
          dec: expectedDecimal(r.dec, 4),
          u: r.u,
          dt: String(r.dt),
          tms: String(r.tms),
          tus: r.tus.toString(),
          tsm: r.tsm.toString(),
          tsu: r.tsu.toString(),
          lts: r.lts.toString(),
          ns: r.ns,
          uni: jsonable(r.uni),
          rec: r.rec,
          m: jsonable(r.m),
          ai: r.ai,
          as: r.as,
          an: r.an,
        });
      }
    },
  );
});
