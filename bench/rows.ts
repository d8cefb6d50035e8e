// Bind parameters for the INSERT baselines (A and B): one value per column of the bench
// route's column plan, in its order, converted the way a hand-written consumer would.
import type { RecordMeta } from '../src/sink/columns.ts';
import { formatDecimal, formatTimestamp } from '../src/sink/copy-text.ts';

export type Param = string | number | boolean | null;
type Convert = (record: Record<string, unknown>, meta: RecordMeta) => Param;

const text =
  (field: string): Convert =>
  (r) =>
    r[field] as string | null;

const CONVERTERS: Record<string, Convert> = {
  order_id: (r) => String(r['order_id'] as bigint),
  customer_id: text('customer_id'),
  customer_email: text('customer_email'),
  status: text('status'),
  amount: (r) => formatDecimal(r['amount'] as Buffer, 2),
  currency: text('currency'),
  item_count: (r) => r['item_count'] as number,
  is_priority: (r) => r['is_priority'] as boolean,
  created_at: (r) => formatTimestamp(r['created_at'] as bigint, 1000n, true),
  updated_at: (r) => formatTimestamp(r['updated_at'] as bigint, 1000000n, true),
  shipping_address: text('shipping_address'),
  product_summary: text('product_summary'),
  note: text('note'),
  _partition: (_r, m) => m.partition,
  _offset: (_r, m) => m.offset,
};

/** Appends one row's parameters to `out`; fails at start-up if a column has no converter. */
export function paramWriter(
  columns: readonly string[],
): (record: Record<string, unknown>, meta: RecordMeta, out: Param[]) => void {
  const convs = columns.map((c) => {
    const f = CONVERTERS[c];
    if (!f) throw new Error(`bench/rows.ts has no parameter converter for column ${c}`);
    return f;
  });
  return (record, meta, out) => {
    for (const f of convs) out.push(f(record, meta));
  };
}

/** `INSERT INTO t (cols) VALUES ($1,…),(…)` for `rows` rows, cached per row count. */
export function insertSql(table: string, columnList: string, columns: number): (rows: number) => string {
  const cache = new Map<number, string>();
  return (rows) => {
    let sql = cache.get(rows);
    if (!sql) {
      const tuples: string[] = [];
      for (let r = 0; r < rows; r++) {
        const ps: string[] = [];
        for (let c = 1; c <= columns; c++) ps.push(`$${r * columns + c}`);
        tuples.push(`(${ps.join(',')})`);
      }
      sql = `INSERT INTO ${table} (${columnList}) VALUES ${tuples.join(',')}`;
      cache.set(rows, sql);
    }
    return sql;
  };
}

/** Postgres allows at most 65535 bind parameters per statement. */
export const MAX_PARAMS = 65_535;
