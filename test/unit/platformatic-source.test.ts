// The platformatic adapter's record filter (src/kafka/platformatic-source.ts): what a
// read_committed fetch hands over. The broker lists the aborted transactions that overlap the
// fetch; their batches are dropped until the producer's marker, also when the marker is not
// in this response (@platformatic/kafka itself keeps those), and control batches never reach
// the pipeline. The whole adapter runs against the real broker in the integration suite.
import { IS_CONTROL, IS_TRANSACTIONAL, type RecordsBatch } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { committedMessages } from '../../src/kafka/platformatic-source.ts';

function batch(first: number, count: number, producerId: bigint, attributes = 0): RecordsBatch {
  return {
    firstOffset: BigInt(first),
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes,
    lastOffsetDelta: count - 1,
    firstTimestamp: 1_700_000_000_000n,
    maxTimestamp: 1_700_000_000_000n,
    producerId,
    producerEpoch: 0,
    firstSequence: 0,
    records: Array.from({ length: count }, (_, i) => ({
      length: 0,
      attributes: 0,
      timestampDelta: BigInt(i),
      offsetDelta: i,
      key: Buffer.from(`k${first + i}`),
      value: Buffer.from(`v${first + i}`),
      headers: i === 0 ? [[Buffer.from('traceparent'), Buffer.from('00-abc')] as [Buffer, Buffer]] : [],
    })),
  };
}

const TX = IS_TRANSACTIONAL;
const offsets = (ms: ReturnType<typeof committedMessages>) => ms.map((m) => Number(m.offset));

describe('committedMessages', () => {
  it('drops control batches and the batches of aborted transactions up to their marker', () => {
    const batches = [
      batch(0, 2, 1n), // plain
      batch(2, 2, 7n, TX), // aborted (7 from 2)
      batch(4, 2, 8n, TX), // committed transaction of another producer
      batch(6, 1, 7n, TX | IS_CONTROL), // 7's abort marker
      batch(7, 1, 8n, TX | IS_CONTROL), // 8's commit marker
      batch(8, 2, 7n, TX), // 7 again, a new transaction that is not aborted
    ];
    const ms = committedMessages(batches, [{ producerId: 7n, firstOffset: 2n }], 0n);
    expect(offsets(ms)).toEqual([0, 1, 4, 5, 8, 9]);
    expect(ms[0]).toMatchObject({
      key: Buffer.from('k0'),
      value: Buffer.from('v0'),
      timestamp: '1700000000000',
    });
    expect(ms[0]!.headers).toEqual({ traceparent: Buffer.from('00-abc') });
  });

  it('drops an aborted transaction whose marker is beyond this response, and one that began before the fetch', () => {
    const open = committedMessages([batch(10, 3, 5n, TX)], [{ producerId: 5n, firstOffset: 10n }], 10n);
    expect(offsets(open)).toEqual([]);
    const before = committedMessages(
      [batch(20, 2, 5n, TX), batch(22, 2, 6n)],
      [{ producerId: 5n, firstOffset: 15n }],
      20n,
    );
    expect(offsets(before)).toEqual([22, 23]);
  });

  it('skips records below the fetched offset (a batch that starts before it)', () => {
    expect(offsets(committedMessages([batch(100, 5, 1n)], [], 103n))).toEqual([103, 104]);
  });
});
