// kafkajs connection options (brokers, TLS, SASL) from the config, shared by the consumer
// and the admin client.
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import type { Config } from '../config/schema.ts';
import { readTlsFile } from '../util/tls.ts';

export function kafkaConnection(
  config: Config,
): Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl' | 'connectionTimeout'> {
  const k = config.kafka;
  const out: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl' | 'connectionTimeout'> = {
    brokers: k.brokers,
    connectionTimeout: k.connectionTimeoutMs,
  };
  if (k.ssl) {
    out.ssl = {
      rejectUnauthorized: k.ssl.rejectUnauthorized,
      ...(k.ssl.ca ? { ca: [readTlsFile(k.ssl.ca, 'kafka.ssl.ca')] } : {}),
      ...(k.ssl.cert ? { cert: readTlsFile(k.ssl.cert, 'kafka.ssl.cert') } : {}),
      ...(k.ssl.key ? { key: readTlsFile(k.ssl.key, 'kafka.ssl.key') } : {}),
    };
  }
  if (k.sasl) {
    out.sasl = {
      mechanism: k.sasl.mechanism,
      username: k.sasl.username,
      password: k.sasl.password,
    } as SASLOptions;
  }
  return out;
}
