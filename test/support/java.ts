// The Java Kafka client in tests, compiled against the jars of the broker under test (as the
// benchmark's latency producer is, bench/run.ts javaGenerator): stack/kafka.sh libs prints the
// client jars' directory of $KAFKA_VERSION, which test/run.ts sets for each integration run.
// Java is part of the stack (the broker is a JVM), so a missing javac fails the test loudly.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kafkaBrokers } from './services.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE = join(root, 'test/support/java/FileProducer.java');

let classPath: string | undefined;

/** Compiles FileProducer once per Kafka version (.cache/test-java/kafka-<version>/). */
function javaClassPath(): string {
  if (classPath) return classPath;
  const libs = execFileSync(join(root, 'stack/kafka.sh'), ['libs'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
  const classes = join(root, '.cache/test-java', basename(dirname(libs)));
  const built = join(classes, 'FileProducer.class');
  if (!existsSync(built) || statSync(built).mtimeMs < statSync(SOURCE).mtimeMs) {
    mkdirSync(classes, { recursive: true });
    // log4j2 (the 4.x jars) finds this on the class path: errors only, to stderr.
    writeFileSync(
      join(classes, 'log4j2.properties'),
      'appender.err.type=Console\nappender.err.name=ERR\nappender.err.target=SYSTEM_ERR\n' +
        'appender.err.layout.type=PatternLayout\nappender.err.layout.pattern=%p %m (%c)%n\n' +
        'rootLogger.level=ERROR\nrootLogger.appenderRef.err.ref=ERR\n',
    );
    execFileSync('javac', ['-cp', `${libs}/*`, '-d', classes, SOURCE], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }
  classPath = `${classes}:${libs}/*`;
  return classPath;
}

export interface JavaRecord {
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * Sends the records with the Java producer (idempotent, acks=all, compression.type as given:
 * none, gzip, snappy, lz4 or zstd) and resolves once every send is acknowledged.
 */
export async function produceWithJava(
  topic: string,
  compression: string,
  records: readonly JavaRecord[],
): Promise<void> {
  const cp = javaClassPath();
  const parts: Buffer[] = [int32(records.length)];
  for (const r of records) {
    parts.push(int32(r.partition));
    for (const b of [r.key, r.value]) parts.push(...(b === null ? [int32(-1)] : [int32(b.length), b]));
  }
  const file = join(root, '.cache/test-java', `records-${process.pid}-${Date.now()}-${topic}.bin`);
  writeFileSync(file, Buffer.concat(parts));
  const stdout = await new Promise<string>((resolve, reject) => {
    const done = (err: Error | undefined, out: string) => {
      rmSync(file, { force: true });
      if (err) reject(err);
      else resolve(out);
    };
    execFile(
      'java',
      [
        '-Xmx192m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        // The 3.9 jars' log4j 1 reads this instead of log4j2.properties.
        '-Dlog4j.configuration=file:/dev/null',
        '-cp',
        cp,
        'FileProducer',
        kafkaBrokers().join(','),
        topic,
        compression,
        file,
      ],
      { timeout: 60_000, maxBuffer: 1024 * 1024 },
      (err, out, errOut) =>
        done(
          err ? new Error(`FileProducer (${compression}) failed: ${err.message}\n${errOut}`) : undefined,
          out,
        ),
    );
  });
  const last = stdout.trim().split('\n').pop();
  if (last !== `sent ${records.length}`)
    throw new Error(`FileProducer (${compression}) said ${JSON.stringify(last)}`);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}
