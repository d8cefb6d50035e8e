// Pure encoders for PostgreSQL's COPY text format. A row is fields joined by TAB and ended
// by LF; NULL is \N; backslash, TAB, LF and CR inside a field are backslash-escaped.
// Routes whose columns all have a binary encoder use COPY binary (src/sink/copy-binary.ts);
// text is the fallback for the others, and `copyFormat: text`: Postgres parses each value
// against the target column's own type, so any column type that takes the text works.
import { DAY_MICROS, DAY_MILLIS, emptyDecimal, timeOutOfRange } from '../avro/strict.ts';
import { RecordError } from '../util/errors.ts';

export const NULL_FIELD = '\\N';

const NEEDS_ESCAPE = /[\\\t\n\r\0]/;

export function nulInString(): RecordError {
  return new RecordError(
    'internal',
    'NUL_IN_STRING',
    'string contains a NUL (U+0000) character, which PostgreSQL text and jsonb cannot store',
  );
}

export function escapeText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s;
  if (s.includes('\0')) throw nulInString();
  return s.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r',
  );
}

/** bytea in hex form; the leading backslash is itself escaped for COPY. */
export function byteaField(buf: Uint8Array): string {
  return `\\\\x${Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex')}`;
}

export function floatField(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0 && 1 / n < 0) return '-0';
  return String(n);
}

const pad = (n: number | bigint, width: number): string => String(n).padStart(width, '0');

const DAY_MS = 86_400_000n;

/** Proleptic Gregorian civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
function civilFromDays(days: bigint): { y: bigint; m: number; d: number } {
  const z = days + 719468n;
  const era = (z >= 0n ? z : z - 146096n) / 146097n;
  const doe = z - era * 146097n;
  const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const d = Number(doy - (153n * mp + 2n) / 5n + 1n);
  const m = Number(mp < 10n ? mp + 3n : mp - 9n);
  const y = yoe + era * 400n + (m <= 2 ? 1n : 0n);
  return { y, m, d };
}

/** 'YYYY-MM-DD' or 'YYYY-MM-DD BC' (Postgres has no year 0: year 0 is 1 BC). */
export function formatDate(days: bigint): string {
  const { y, m, d } = civilFromDays(days);
  if (y <= 0n) return `${pad(1n - y, 4)}-${pad(m, 2)}-${pad(d, 2)} BC`;
  return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}`;
}

const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};

/**
 * A timestamp from an integer count of `unitsPerSecond` since the epoch, exact to the unit:
 * 'YYYY-MM-DD HH:MM:SS.ffffff' (+ '+00' when `utc`), with ' BC' for years before 1.
 */
export function formatTimestamp(
  long: number | bigint,
  unitsPerSecond: 1000n | 1000000n,
  utc: boolean,
): string {
  const fast = formatTimestampFast(long, unitsPerSecond, utc);
  if (fast !== undefined) return fast;
  const value = BigInt(long);
  const unitsPerDay = DAY_MS * (unitsPerSecond / 1000n);
  const days = floorDiv(value, unitsPerDay);
  let rest = value - days * unitsPerDay;
  const fracDigits = unitsPerSecond === 1000n ? 3 : 6;
  const frac = rest % unitsPerSecond;
  rest /= unitsPerSecond;
  const hh = rest / 3600n;
  const mm = (rest % 3600n) / 60n;
  const ss = rest % 60n;
  const { y, m, d } = civilFromDays(days);
  const bc = y <= 0n;
  const year = bc ? 1n - y : y;
  const tz = utc ? '+00' : '';
  return `${pad(year, 4)}-${pad(m, 2)}-${pad(d, 2)} ${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}.${pad(frac, fracDigits)}${tz}${bc ? ' BC' : ''}`;
}

// Years 1..9999 with a safe-integer count: Date does the calendar (the hot path: every
// timestamp column of every row). The BigInt path above handles everything else exactly.
export const MIN_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z
export const MAX_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const FRAC3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
const TWO = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
export const DAY = 86_400_000;
// Timestamps of a stream cluster in a few days: the calendar date is computed once per day.
let cachedDay = Number.NaN;
let cachedDate = '';

function formatTimestampFast(
  value: number | bigint,
  unitsPerSecond: 1000n | 1000000n,
  utc: boolean,
): string | undefined {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(n)) return undefined;
  const micros = unitsPerSecond === 1000000n;
  const ms = micros ? Math.floor(n / 1000) : n;
  if (ms < MIN_MS || ms > MAX_MS) return undefined;
  const day = Math.floor(ms / DAY);
  if (day !== cachedDay) {
    cachedDay = day;
    cachedDate = new Date(day * DAY).toISOString().slice(0, 10);
  }
  let rest = ms - day * DAY;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const sec = rest % 60;
  rest = (rest - sec) / 60;
  const min = rest % 60;
  const hour = (rest - min) / 60;
  const frac = micros ? FRAC3[milli]! + FRAC3[n - ms * 1000]! : FRAC3[milli]!;
  return `${cachedDate} ${TWO[hour]!}:${TWO[min]!}:${TWO[sec]!}.${frac}${utc ? '+00' : ''}`;
}

/**
 * Time of day from an integer count of units since midnight: 'HH:MM:SS.fff' (or .ffffff),
 * which is also ISO 8601. A count outside one day is TIME_OUT_OF_RANGE (a BodyFault).
 */
export function formatTime(value: bigint, unitsPerSecond: 1000n | 1000000n): string {
  const micros = unitsPerSecond === 1000000n;
  if (value < 0n || value >= BigInt(micros ? DAY_MICROS : DAY_MILLIS))
    throw timeOutOfRange('', value, micros);
  const fracDigits = unitsPerSecond === 1000n ? 3 : 6;
  const frac = value % unitsPerSecond;
  const secs = value / unitsPerSecond;
  return `${pad(secs / 3600n, 2)}:${pad((secs % 3600n) / 60n, 2)}:${pad(secs % 60n, 2)}.${pad(frac, fracDigits)}`;
}

/**
 * Avro decimal: big-endian two's complement unscaled integer, then the scale. The text is
 * also a JSON number with exactly `scale` fraction digits. No bytes is EMPTY_DECIMAL (a
 * BodyFault): the value is not written, not read as 0.
 */
/** An Avro decimal's unscaled value from src[start..stop) (1 to 6 bytes), as a double. */
export function smallDecimal(src: Uint8Array, start: number, stop: number): number {
  let n = 0;
  for (let i = start; i < stop; i++) n = n * 256 + src[i]!;
  if (src[start]! & 0x80) n -= 2 ** ((stop - start) * 8);
  return n;
}

/**
 * The sign and decimal digits of an Avro decimal's unscaled value (big-endian two's complement,
 * at least one byte).
 */
export function unscaledDigits(bytes: Uint8Array): { negative: boolean; digits: string } {
  if (bytes.length <= 6) {
    // Up to 48 bits is exact in a double: no BigInt on the common path (money amounts).
    const n = smallDecimal(bytes, 0, bytes.length);
    return { negative: n < 0, digits: String(n < 0 ? -n : n) };
  }
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  if (bytes[0]! & 0x80) n -= 1n << BigInt(bytes.length * 8);
  return { negative: n < 0n, digits: (n < 0n ? -n : n).toString() };
}

export function formatDecimal(bytes: Uint8Array, scale: number): string {
  if (bytes.length === 0) throw emptyDecimal('');
  const parts = unscaledDigits(bytes);
  const negative = parts.negative;
  let digits = parts.digits;
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

/**
 * An astronomical year (0 is 1 BC, -1 is 2 BC) as ISO 8601 writes it: four digits for 0000 to
 * 9999, otherwise a sign and at least six digits (ISO 8601's expanded form, as
 * Date.prototype.toISOString writes it): -000001, +010000, +5881580.
 */
function isoYear(y: bigint): string {
  if (y >= 0n && y <= 9999n) return pad(y, 4);
  return `${y < 0n ? '-' : '+'}${pad(y < 0n ? -y : y, 6)}`;
}

/** 'YYYY-MM-DD' (ISO 8601, proleptic Gregorian, astronomical years) from days since 1970-01-01. */
export function isoDate(days: bigint): string {
  const { y, m, d } = civilFromDays(days);
  return `${isoYear(y)}-${pad(m, 2)}-${pad(d, 2)}`;
}

/**
 * 'YYYY-MM-DDTHH:MM:SS.fff' (.ffffff for micros; 'Z' appended when `utc`) from an integer
 * count of units since the epoch, exact to the unit, any year.
 */
export function isoTimestamp(long: number | bigint, unitsPerSecond: 1000n | 1000000n, utc: boolean): string {
  const value = BigInt(long);
  const unitsPerDay = DAY_MS * (unitsPerSecond / 1000n);
  const days = floorDiv(value, unitsPerDay);
  const time = formatTime(value - days * unitsPerDay, unitsPerSecond);
  return `${isoDate(days)}T${time}${utc ? 'Z' : ''}`;
}

/** A double (or float) in jsonb: a JSON number, or a string for the values JSON has no number for. */
export function jsonFloat(n: number): string {
  if (Number.isNaN(n)) return '"NaN"';
  if (n === Infinity) return '"Infinity"';
  if (n === -Infinity) return '"-Infinity"';
  // jsonb's numeric has no negative zero: -0 would come back as 0.
  if (n === 0 && 1 / n < 0) return '"-0"';
  return String(n);
}

/** A JSON string; a NUL is NUL_IN_STRING (jsonb refuses \u0000). */
export function jsonString(s: string): string {
  if (s.includes('\0')) throw nulInString();
  return JSON.stringify(s);
}

/**
 * bytes and fixed in jsonb: a string, \x then lowercase hex (Postgres' bytea hex format, so
 * `decode(substr(v, 3), 'hex')` gives the bytes back); the JSON text is "\\x0a1b".
 */
export function jsonBytes(buf: Uint8Array): string {
  return `"\\\\x${Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('hex')}"`;
}

/** Postgres array literal ('{"a","b",NULL}') from element texts (null → NULL). */
export function arrayLiteral(elements: ReadonlyArray<string | null>): string {
  let out = '{';
  for (let i = 0; i < elements.length; i++) {
    if (i > 0) out += ',';
    const e = elements[i];
    out += e === null || e === undefined ? 'NULL' : `"${e.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${out}}`;
}
