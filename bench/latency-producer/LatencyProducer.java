// The latency phase's open-loop load generator (bench/run.ts, latencyPhase). It runs on the same
// machine as pgsink, so it should cost as little CPU as it can: kafkajs' producer needs about
// 8 µs per event here (JS CRC-32C, a Buffer per record), the Java client a fraction of that.
//
//   java -cp <kafka libs> LatencyProducer BROKERS TOPIC PARTITIONS RATE TOTAL RING_FILE OUT_FILE
//
// RING_FILE: int32 count, then per value int32 length + bytes (big-endian). Event i goes to
// partition i % PARTITIONS with key String(i) and value ring[i % count]. The generator prints
// "ready" once the topic's metadata is loaded, then waits for "go <startMs>" on stdin: event i is
// due at startMs + i * 1000 / RATE (wall clock, ms). Every 5 ms it sends what is due, without
// waiting for earlier sends. OUT_FILE gets, per partition, int32 n and n int32 event indexes by
// offset (-1 where unknown); stdout ends with one line "done <maxBehindMs> <errors> <lastSendMs>".
import java.io.BufferedReader;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class LatencyProducer {
  public static void main(String[] args) throws Exception {
    if (args.length != 7) {
      System.err.println("usage: LatencyProducer BROKERS TOPIC PARTITIONS RATE TOTAL RING_FILE OUT_FILE");
      System.exit(2);
    }
    String brokers = args[0];
    String topic = args[1];
    int partitions = Integer.parseInt(args[2]);
    double rate = Double.parseDouble(args[3]);
    int total = Integer.parseInt(args[4]);

    byte[][] ring;
    try (DataInputStream in = new DataInputStream(Files.newInputStream(Paths.get(args[5])))) {
      ring = new byte[in.readInt()][];
      for (int i = 0; i < ring.length; i++) {
        ring[i] = new byte[in.readInt()];
        in.readFully(ring[i]);
      }
    }

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(ProducerConfig.ACKS_CONFIG, "1");
    // All events due in one 5 ms tick go out together: a request per tick, not per record.
    p.put(ProducerConfig.LINGER_MS_CONFIG, "2");
    p.put(ProducerConfig.BATCH_SIZE_CONFIG, String.valueOf(256 * 1024));
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
    p.put(ProducerConfig.BUFFER_MEMORY_CONFIG, String.valueOf(128L * 1024 * 1024));
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

    int perPartition = total / partitions + 2;
    int[][] byOffset = new int[partitions][perPartition];
    for (int[] a : byOffset) Arrays.fill(a, -1);
    AtomicLong errors = new AtomicLong();

    BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      producer.partitionsFor(topic);
      System.out.println("ready");
      System.out.flush();
      String go = stdin.readLine();
      if (go == null || !go.startsWith("go ")) throw new IllegalStateException("expected 'go <startMs>', got " + go);
      double startMs = Double.parseDouble(go.substring(3).trim());
      long startNanos = System.nanoTime() + (long) ((startMs - System.currentTimeMillis()) * 1e6);
      double gapNanos = 1e9 / rate;
      double behindMs = 0;
      double lastSendMs = startMs;
      int sent = 0;
      while (sent < total) {
        long now = System.nanoTime();
        int due = (int) Math.min(total, Math.floor((now - startNanos) / gapNanos));
        if (due > sent) {
          behindMs = Math.max(behindMs, (now - (startNanos + sent * gapNanos)) / 1e6);
          lastSendMs = startMs + (now - startNanos) / 1e6;
          for (int i = sent; i < due; i++) {
            final int index = i;
            byte[] key = Integer.toString(i).getBytes(StandardCharsets.UTF_8);
            producer.send(
                new ProducerRecord<>(topic, i % partitions, key, ring[i % ring.length]),
                (md, ex) -> {
                  if (ex != null) errors.incrementAndGet();
                  else if (md.offset() < perPartition) byOffset[md.partition()][(int) md.offset()] = index;
                });
          }
          sent = due;
        }
        LockSupport.parkNanos(5_000_000L);
      }
      producer.flush();
      try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(Paths.get(args[6])))) {
        for (int[] a : byOffset) {
          out.writeInt(a.length);
          for (int v : a) out.writeInt(v);
        }
      }
      System.out.println("done " + behindMs + " " + errors.get() + " " + lastSendMs);
    }
  }
}
