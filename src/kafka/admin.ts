// The few admin operations replay and status need, behind a narrow interface.
import type { KafkaConfig } from 'kafkajs';
import { Kafka, logLevel } from './kafkajs.ts';
import { ConfigError, PgsinkError } from '../util/errors.ts';
import { kafkaStartError } from './source.ts';

export interface GroupMember {
  memberId: string;
  clientId: string;
  clientHost: string;
}

export interface Watermarks {
  low: number;
  high: number;
}

export interface GroupAdmin {
  groupMembers(groupId: string): Promise<{ state: string; members: GroupMember[] }>;
  /** Partition ids of a topic; throws a PgsinkError UNKNOWN_TOPIC when it does not exist. */
  partitions(topic: string): Promise<number[]>;
  watermarks(topic: string): Promise<Map<number, Watermarks>>;
  /** The group's committed offsets (-1 where none). */
  committed(groupId: string, topic: string): Promise<Map<number, number>>;
  /** Per partition, the first offset whose timestamp is >= ms (the high watermark if none). */
  offsetsForTime(topic: string, ms: number): Promise<Map<number, number>>;
  setCommitted(groupId: string, topic: string, offsets: ReadonlyMap<number, number>): Promise<void>;
  close(): Promise<void>;
}

export async function connectAdmin(
  connection: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl' | 'connectionTimeout'>,
  clientId: string,
): Promise<GroupAdmin> {
  const brokers = connection.brokers as string[];
  const kafka = new Kafka({ clientId, ...connection, logLevel: logLevel.NOTHING, retry: { retries: 3 } });
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (err) {
    // Credentials or a certificate the brokers refuse: a configuration error; else retriable.
    const e = kafkaStartError(err, brokers);
    if (e instanceof ConfigError) throw e;
    throw new PgsinkError(
      'kafka',
      `cannot connect to Kafka at ${brokers.join(',')}: ${(err as Error).message}`,
      {
        code: 'CONNECT_FAILED',
        retriable: true,
        cause: err,
      },
    );
  }
  return {
    async groupMembers(groupId) {
      const { groups } = await admin.describeGroups([groupId]);
      const g = groups[0];
      return {
        state: g?.state ?? 'Dead',
        members: (g?.members ?? []).map((m) => ({
          memberId: m.memberId,
          clientId: m.clientId,
          clientHost: m.clientHost,
        })),
      };
    },
    async partitions(topic) {
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
        return topics[0]!.partitions.map((p) => p.partitionId).sort((a, b) => a - b);
      } catch (err) {
        const type = (err as { type?: string }).type;
        if (type === 'UNKNOWN_TOPIC_OR_PARTITION') {
          throw new PgsinkError('kafka', `topic '${topic}' does not exist`, {
            code: type,
            retriable: false,
            cause: err,
          });
        }
        throw err;
      }
    },
    async watermarks(topic) {
      const res = await admin.fetchTopicOffsets(topic);
      return new Map(res.map((p) => [p.partition, { low: Number(p.low), high: Number(p.high) }]));
    },
    async committed(groupId, topic) {
      const [res] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map((res?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    },
    async offsetsForTime(topic, ms) {
      const res = await admin.fetchTopicOffsetsByTimestamp(topic, ms);
      return new Map(res.map((p) => [p.partition, Number(p.offset)]));
    },
    async setCommitted(groupId, topic, offsets) {
      await admin.setOffsets({
        groupId,
        topic,
        partitions: [...offsets].map(([partition, offset]) => ({ partition, offset: String(offset) })),
      });
    },
    async close() {
      await admin.disconnect();
    },
  };
}
