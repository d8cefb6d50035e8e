// Bulk produce for the demo and the benchmark: chunks sent with a few requests in flight, so
// the producer is not the bottleneck of what it feeds.
import type { Message, Producer } from 'kafkajs';

export interface ProduceOptions {
  chunk?: number;
  inFlight?: number;
}

/** Sends every message (acks=1) and returns how many and their value bytes. */
export async function produceAll(
  producer: Producer,
  topic: string,
  messages: Iterable<Message & { value: Buffer }>,
  { chunk = 5_000, inFlight = 4 }: ProduceOptions = {},
): Promise<{ count: number; bytes: number }> {
  let batch: Message[] = [];
  const pending: Array<Promise<unknown>> = [];
  let count = 0;
  let bytes = 0;
  for (const m of messages) {
    batch.push(m);
    count++;
    bytes += m.value.length;
    if (batch.length === chunk) {
      pending.push(producer.send({ topic, messages: batch, acks: 1 }));
      batch = [];
      if (pending.length >= inFlight) await pending.shift();
    }
  }
  if (batch.length) pending.push(producer.send({ topic, messages: batch, acks: 1 }));
  await Promise.all(pending);
  return { count, bytes };
}
