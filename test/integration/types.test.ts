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
  expectAllTypesLanded,
  type AllTypesRecord,
} from '../support/all-types.ts';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

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

      await expectAllTypesLanded(pool, f.table, records);
    },
  );
});
