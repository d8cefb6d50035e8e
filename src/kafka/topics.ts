// Creating a topic and waiting until every partition has a leader. A single-node KRaft
// broker sometimes answers the metadata request right after CreateTopics with
// UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition"), which
// kafkajs' waitForLeaders does not retry: poll the metadata instead, for a bounded time.
import type { Admin } from 'kafkajs';
import { PgsinkError } from '../util/errors.ts';

export async function createTopicAndWait(
  admin: Admin,
  topic: string,
  numPartitions: number,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      // false when it already exists (a retry after a metadata error): not an error here.
      await admin.createTopics({
        topics: [{ topic, numPartitions, replicationFactor: 1 }],
        waitForLeaders: false,
      });
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const parts = topics[0]?.partitions ?? [];
      if (parts.length === numPartitions && parts.every((p) => p.leader >= 0)) return;
      last = new Error(
        `${parts.filter((p) => p.leader >= 0).length}/${numPartitions} partitions have a leader`,
      );
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      throw new PgsinkError(
        'kafka',
        `topic ${topic} is not ready after ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`,
        { code: 'TOPIC_NOT_READY', retriable: true, cause: last },
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
