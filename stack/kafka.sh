#!/usr/bin/env bash
# A single-node Apache Kafka 3.9 broker (KRaft, broker+controller in one JVM) for local
# development and the test suite. Jars come from Maven Central through Maven; nothing is
# installed outside the project folder (.cache/ for jars, $KAFKA_STACK_DIR for state).
#
#   stack/kafka.sh fetch    resolve the jars once (later runs reuse the cache)
#   stack/kafka.sh start    format the log dir if new, start, wait until it answers
#   stack/kafka.sh stop     stop it (SIGTERM, then SIGKILL after a timeout)
#   stack/kafka.sh status   exit 0 when running
#
# Environment: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
# KAFKA_STACK_DIR (.stack/kafka), KAFKA_START_TIMEOUT seconds (60), KAFKA_HEAP (512m), JAVA (java),
# KAFKA_SASL_PORT (none: a SASL/SCRAM listener there, user KAFKA_SASL_USER / KAFKA_SASL_PASSWORD).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/stack/kafka-pom.xml")
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_STACK_DIR=${KAFKA_STACK_DIR:-$root/.stack/kafka}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
JAVA=${JAVA:-java}
# Optional second listener with SASL/SCRAM (SHA-256 and SHA-512) for testing secure clients.
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-}
KAFKA_SASL_USER=${KAFKA_SASL_USER:-pgsink}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-pgsink-secret}
libs="$root/.cache/kafka-$KAFKA_VERSION/libs"
pidfile="$KAFKA_STACK_DIR/kafka.pid"
log="$KAFKA_STACK_DIR/kafka.log"

die() { echo "stack/kafka.sh: $*" >&2; exit 1; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "$JAVA not found. Kafka $KAFKA_VERSION needs a JDK 11+ (e.g. apt-get install openjdk-17-jre-headless), or set KAFKA_BROKERS to use an existing broker."
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fetch() {
  [ -f "$libs/.complete" ] && return 0
  need_java
  command -v mvn >/dev/null 2>&1 || die "mvn not found. It fetches the Kafka jars from Maven Central (apt-get install maven), or set KAFKA_BROKERS to use an existing broker."
  echo "stack/kafka.sh: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)" >&2
  local tmp="$libs.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  if ! timeout 600 mvn -B -q -f "$root/stack/kafka-pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    tail -n 15 "$tmp.log" >&2
    rm -rf "$tmp"
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log above). Fix: check that Maven Central is reachable (proxy or mirror in ~/.m2/settings.xml), or set KAFKA_BROKERS to use an existing broker."
  fi
  rm -f "$tmp.log"
  touch "$tmp/.complete"
  rm -rf "$libs"; mv "$tmp" "$libs"
}

write_config() {
  mkdir -p "$KAFKA_STACK_DIR"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" sasl=""
  if [ -n "$KAFKA_SASL_PORT" ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  cat >"$KAFKA_STACK_DIR/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
$sasl
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_STACK_DIR/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Lets tests use short session timeouts so a killed consumer is evicted quickly.
group.min.session.timeout.ms=1000
log.segment.bytes=268435456
CFG
  cat >"$KAFKA_STACK_DIR/log4j.properties" <<CFG
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
CFG
}

start() {
  if running; then
    echo "stack/kafka.sh: already running (pid $(cat "$pidfile")) on 127.0.0.1:$KAFKA_PORT" >&2
    return 0
  fi
  need_java
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" $KAFKA_SASL_PORT; do
    port_open "$p" && die "port $p on 127.0.0.1 is taken by another process. Fix: stop it, or choose free ports with KAFKA_PORT=<port> (the controller uses KAFKA_PORT+1 or KAFKA_CONTROLLER_PORT)."
  done
  fetch
  write_config
  local cp="$libs/*"
  if [ ! -f "$KAFKA_STACK_DIR/data/meta.properties" ]; then
    local id
    id=$("$JAVA" -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    local scram=()
    if [ -n "$KAFKA_SASL_PORT" ]; then
      # KRaft stores SCRAM credentials in the metadata log; they are written at format time.
      scram=(--add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]"
        --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]")
    fi
    "$JAVA" -Dlog4j.configuration="file:$KAFKA_STACK_DIR/log4j.properties" -cp "$cp" kafka.tools.StorageTool format \
      -t "$id" -c "$KAFKA_STACK_DIR/server.properties" "${scram[@]}" >"$KAFKA_STACK_DIR/format.log" 2>&1 ||
      { cat "$KAFKA_STACK_DIR/format.log" >&2; die "formatting the KRaft log dir $KAFKA_STACK_DIR/data failed (above)"; }
  fi
  # setsid: the broker must not receive the terminal's or make's signals; stop() owns it.
  setsid "$JAVA" -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_STACK_DIR/log4j.properties" \
    -cp "$cp" kafka.Kafka "$KAFKA_STACK_DIR/server.properties" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q 'Kafka Server started' "$log" 2>/dev/null && port_open "$KAFKA_PORT"; do
    if ! running; then
      tail -n 20 "$log" >&2
      rm -f "$pidfile"
      die "the broker exited during start-up (log above, full log in $log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$log" >&2
      stop
      die "the broker did not answer on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (log above); raise KAFKA_START_TIMEOUT on a slow machine"
    fi
    sleep 0.2
  done
  echo "stack/kafka.sh: Kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT (pid $(cat "$pidfile"), state in $KAFKA_STACK_DIR)" >&2
}

stop() {
  running || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stack/kafka.sh: broker $pid did not stop within 30s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: stack/kafka.sh fetch|start|stop|status" >&2; exit 2 ;;
esac
