// Crosses the wire to the real broker: Avro records in the Confluent wire format go out
// through a kafkajs producer and come back through a consumer group, byte for byte.
import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectedProducer, createTopic, kafkaClient, uniqueName } from '../support/services.ts';

const type = avro.Type.forSchema({
  type: 'record',
  name: 'Ping',
  fields: [
    { name: 'id', type: 'int' },
    { name: 'text', type: 'string' },
    { name: 'note', type: ['null', 'string'], default: null },
  ],
});

function frame(schemaId: number, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeInt32BE(schemaId, 1);
  return Buffer.concat([header, body]);
}

describe('Kafka smoke', () => {
  const kafka = kafkaClient();
  const topic = uniqueName('smoke');

  beforeAll(async () => {
    await createTopic(kafka, topic, 3);
  });

  it('produces and consumes Avro records in the Confluent wire format', async () => {
    const sent = Array.from({ length: 300 }, (_, i) => ({
      id: i,
      text: `ping ${i} ✓`,
      note: i % 3 === 0 ? null : `n${i}`,
    }));
    const producer = await connectedProducer(kafka);
    await producer.send({
      topic,
      messages: sent.map((v) => ({ key: String(v.id), value: frame(7, type.toBuffer(v)) })),
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: uniqueName('g') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: Array<{ partition: number; value: unknown }> = [];
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            const buf = m.value!;
            expect(buf.readUInt8(0)).toBe(0);
            expect(buf.readInt32BE(1)).toBe(7);
            received.push({ partition: batch.partition, value: type.fromBuffer(buf.subarray(5)) });
          }
          if (received.length >= sent.length) resolve();
        },
      });
    });
    await done;
    await consumer.disconnect();

    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);
    const byId = [...received.map((r) => r.value as { id: number })].sort((a, b) => a.id - b.id);
    expect(byId).toEqual(sent);
  });

  afterAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });
});
