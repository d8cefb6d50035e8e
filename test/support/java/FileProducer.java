// The Java client as a test producer (test/support/java.ts): sends pre-encoded records from a
// file with the compression the test asks for, so that the batches the broker stores are the
// Java client's own (xerial-framed snappy, KafkaLZ4BlockOutputStream's lz4 frames, zstd-jni).
//
//   java -cp <classes>:<kafka libs>/* FileProducer BROKERS TOPIC COMPRESSION RECORDS_FILE
//
// RECORDS_FILE (big-endian): int32 count, then per record int32 partition, int32 key length
// (-1: null) + bytes, int32 value length (-1: null) + bytes. Records are sent in file order,
// idempotently (a retried send cannot write a record twice), and all of them are awaited; the
// last line on stdout is "sent <count>", any failure exits 1 with the error on stderr.
import java.io.DataInputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class FileProducer {
  private static byte[] bytes(DataInputStream in) throws java.io.IOException {
    int n = in.readInt();
    if (n < 0) return null;
    byte[] b = new byte[n];
    in.readFully(b);
    return b;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: FileProducer BROKERS TOPIC COMPRESSION RECORDS_FILE");
      System.exit(2);
    }
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, args[2]);
    // Several records per batch, so that each compressed batch holds many records.
    p.put(ProducerConfig.LINGER_MS_CONFIG, "20");
    p.put(ProducerConfig.BATCH_SIZE_CONFIG, String.valueOf(64 * 1024));
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    int count;
    try (DataInputStream in = new DataInputStream(Files.newInputStream(Paths.get(args[3])));
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      count = in.readInt();
      List<Future<RecordMetadata>> sent = new ArrayList<>(count);
      for (int i = 0; i < count; i++) {
        int partition = in.readInt();
        byte[] key = bytes(in);
        byte[] value = bytes(in);
        sent.add(producer.send(new ProducerRecord<>(args[1], partition, key, value)));
      }
      producer.flush();
      for (Future<RecordMetadata> f : sent) f.get();
    }
    System.out.println("sent " + count);
  }
}
