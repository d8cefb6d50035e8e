#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker+controller in one JVM), 4.x or 3.9.x, for
# local development and the test suite. Jars come from Maven Central through Maven; nothing is
# installed outside the project folder (.cache/kafka-<version>/libs for jars, $KAFKA_STACK_DIR
# for state) except one small marker file per running broker in $KAFKA_STACK_REGISTRY.
#
#   stack/kafka.sh start          start a broker, or reuse this project's broker already on
#                                 KAFKA_PORT; prints its bootstrap address on stdout
#   stack/kafka.sh address [sasl] print the bootstrap (or SASL) address of the broker this state
#                                 dir started or reused; exit 1 when it has none running
#   stack/kafka.sh stop           stop the broker this state dir started (a reused one is left)
#   stack/kafka.sh stop-all       stop every broker with its state in this checkout's .stack/
#                                 (the demo's, a bench's, test brokers left by a crashed run)
#   stack/kafka.sh status         exit 0 when this state dir's broker (started or reused) runs
#   stack/kafka.sh fetch          resolve the jars of KAFKA_VERSION once (later runs reuse them)
#   stack/kafka.sh libs           print the jar directory of KAFKA_VERSION (fetching it first)
#   stack/kafka.sh version        print KAFKA_VERSION as resolved (4 → 4.4.0, 3.9 → 3.9.2)
#
# A broker of this project's stack is one this script started: each start writes
# $KAFKA_STACK_REGISTRY/kafka-<port> (pid, ports, version, state dir, transient) and stop
# removes it. The registry is per user, shared by every checkout. A marker counts while its pid
# is alive and runs with that state dir's server.properties. When KAFKA_PORT (or the controller
# or SASL port) is taken, start
#   - reuses the broker there when it is this project's, of the same version, with the SASL
#     listener asked for (or none asked), and not transient unless the caller is transient too;
#   - else picks free ports (upwards from KAFKA_PORT+2) and says so in one line.
# Transient brokers (KAFKA_TRANSIENT=1: the benchmark's, the test suite's) are stopped when
# their run ends, so a kept broker (the demo's, make stack-up's) is never a reuse of one.
#
# Environment: KAFKA_VERSION (4.4.0; or 3.9.2, also "4" / "3.9"), KAFKA_PORT (19092),
# KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_STACK_HOME (.stack: where stop-all looks),
# KAFKA_STACK_DIR ($KAFKA_STACK_HOME/kafka-<version>),
# KAFKA_TRANSIENT (0), KAFKA_STACK_REGISTRY (/tmp/pgsink-stack-<uid>), KAFKA_START_TIMEOUT
# seconds (60), KAFKA_HEAP (512m), JAVA (java), KAFKA_SASL_PORT (none: a SASL/SCRAM listener
# there, user KAFKA_SASL_USER / KAFKA_SASL_PASSWORD).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# The versions this stack is tested with (make test runs the integration suite on both).
KAFKA_4_VERSION=4.4.0
KAFKA_39_VERSION=3.9.2

die() { echo "stack/kafka.sh: $*" >&2; exit 1; }
say() { echo "stack/kafka.sh: $*" >&2; }

case "${KAFKA_VERSION:-4}" in
  4 | 4.4) KAFKA_VERSION=$KAFKA_4_VERSION ;;
  3.9) KAFKA_VERSION=$KAFKA_39_VERSION ;;
  4.[0-9].[0-9] | 4.[0-9][0-9].[0-9] | 4.[0-9].[0-9][0-9]) ;;
  3.9.[0-9] | 3.9.[0-9][0-9]) ;;
  *) die "KAFKA_VERSION=$KAFKA_VERSION is not supported. Fix: use a 4.x or 3.9.x release, e.g. KAFKA_VERSION=$KAFKA_4_VERSION (the default) or KAFKA_VERSION=$KAFKA_39_VERSION." ;;
esac
case "$KAFKA_VERSION" in
  4.*) pom="$root/stack/kafka-4.pom.xml" ;;
  *) pom="$root/stack/kafka-3.9.pom.xml" ;;
esac

port_number() { # name value
  [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] ||
    die "$1=$2 is not a port number. Fix: set $1 to a number from 1 to 65535, or unset it."
}
KAFKA_PORT=${KAFKA_PORT:-19092}
port_number KAFKA_PORT "$KAFKA_PORT"
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
port_number KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
KAFKA_STACK_HOME=${KAFKA_STACK_HOME:-$root/.stack}
KAFKA_STACK_DIR=${KAFKA_STACK_DIR:-$KAFKA_STACK_HOME/kafka-$KAFKA_VERSION}
KAFKA_STACK_REGISTRY=${KAFKA_STACK_REGISTRY:-/tmp/pgsink-stack-$(id -u)}
KAFKA_TRANSIENT=${KAFKA_TRANSIENT:-0}
case "$KAFKA_TRANSIENT" in
  0 | 1) ;;
  *) die "KAFKA_TRANSIENT=$KAFKA_TRANSIENT is not valid. Fix: 1 (stopped when the caller's run ends) or 0 (kept)." ;;
esac
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
JAVA=${JAVA:-java}
# Optional second listener with SASL/SCRAM (SHA-256 and SHA-512) for testing secure clients.
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-}
[ -z "$KAFKA_SASL_PORT" ] || port_number KAFKA_SASL_PORT "$KAFKA_SASL_PORT"
KAFKA_SASL_USER=${KAFKA_SASL_USER:-pgsink}
KAFKA_SASL_PASSWORD=${KAFKA_SASL_PASSWORD:-pgsink-secret}
libs="$root/.cache/kafka-$KAFKA_VERSION/libs"
pidfile="$KAFKA_STACK_DIR/kafka.pid"
# What this state dir's broker is: its own (with kafka.pid) or one it reuses (without).
brokerfile="$KAFKA_STACK_DIR/broker"
log="$KAFKA_STACK_DIR/kafka.log"

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "$JAVA not found. Kafka $KAFKA_VERSION needs a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless), or set KAFKA_BROKERS to use an existing broker."
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# field FILE KEY: the value of KEY=… in a key=value file (never sourced).
field() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1; }

# alive PID STATE_DIR: the pid runs a broker with that state dir's config.
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
    ps -ww -o args= -p "$1" 2>/dev/null | grep -qF -- "$2/server.properties"
}

running() { [ -f "$pidfile" ] && alive "$(cat "$pidfile")" "$KAFKA_STACK_DIR"; }

registry() {
  mkdir -p -m 700 "$KAFKA_STACK_REGISTRY" 2>/dev/null ||
    die "cannot create the broker registry $KAFKA_STACK_REGISTRY. Fix: set KAFKA_STACK_REGISTRY to a directory you own."
  [ -O "$KAFKA_STACK_REGISTRY" ] ||
    die "the broker registry $KAFKA_STACK_REGISTRY belongs to another user. Fix: set KAFKA_STACK_REGISTRY to a directory you own."
  echo "$KAFKA_STACK_REGISTRY"
}

# live_marker PORT: prints the marker file of this project's broker on PORT, when one runs;
# removes the marker of one that is gone.
live_marker() {
  local m
  m="$(registry)/kafka-$1"
  [ -f "$m" ] || return 1
  if alive "$(field "$m" pid)" "$(field "$m" state_dir)"; then
    echo "$m"
  else
    rm -f "$m" "$m.reusers"
    return 1
  fi
}

# Ports every live marker holds (a broker starting holds its ports before it listens).
held_ports() {
  local m reg
  reg=$(registry)
  for m in "$reg"/kafka-*; do
    [ -f "$m" ] && [[ $m != *.reusers ]] || continue
    alive "$(field "$m" pid)" "$(field "$m" state_dir)" || continue
    echo "$(field "$m" port) $(field "$m" controller_port) $(field "$m" sasl_port)"
  done
}

# free_ports N: the first P from KAFKA_PORT+2 upwards (step 2, 200 tries) where P…P+N-1 are
# neither listening nor held by a starting broker.
free_ports() {
  local n=$1 p q held ok
  held=" $(held_ports | tr '\n' ' ') "
  p=$((KAFKA_PORT + 2))
  for _ in $(seq 1 200); do
    [ $((p + n - 1)) -le 65535 ] || p=20000
    ok=1
    for q in $(seq "$p" $((p + n - 1))); do
      if [[ $held == *" $q "* ]] || port_open "$q"; then ok=0; break; fi
    done
    if [ $ok = 1 ]; then echo "$p"; return 0; fi
    p=$((p + 2))
  done
  return 1
}

fetch() {
  [ -f "$libs/.complete" ] && return 0
  need_java
  command -v mvn >/dev/null 2>&1 || die "mvn not found. It fetches the Kafka jars from Maven Central (apt-get install maven), or set KAFKA_BROKERS to use an existing broker."
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)"
  local tmp="$libs.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  if ! timeout 600 mvn -B -q -f "$pom" dependency:copy-dependencies -Dkafka.version="$KAFKA_VERSION" \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    tail -n 15 "$tmp.log" >&2
    rm -rf "$tmp"
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log above). Fix: check that Maven Central is reachable (proxy or mirror in ~/.m2/settings.xml) and that KAFKA_VERSION names a release, or set KAFKA_BROKERS to use an existing broker."
  fi
  rm -f "$tmp.log"
  touch "$tmp/.complete"
  rm -rf "$libs"; mv "$tmp" "$libs"
}

# The JVM flag that points the broker's logging at our config, per line.
log_flag() {
  case "$KAFKA_VERSION" in
    4.*) echo "-Dlog4j2.configurationFile=$KAFKA_STACK_DIR/log4j2.properties" ;;
    *) echo "-Dlog4j.configuration=file:$KAFKA_STACK_DIR/log4j.properties" ;;
  esac
}

write_config() { # port controller_port sasl_port
  mkdir -p "$KAFKA_STACK_DIR"
  local listeners="PLAINTEXT://127.0.0.1:$1" sasl="" line=""
  case "$KAFKA_VERSION" in
    # Share groups (KIP-932) keep their state in a topic of replication factor 3 by default.
    4.*) line="share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1" ;;
  esac
  if [ -n "$3" ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$3"
    sasl="sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  # A static quorum (controller.quorum.voters) on both lines, so the ports may change between
  # starts of the same state dir (a dynamic 4.x quorum would keep the first ones in its log).
  cat >"$KAFKA_STACK_DIR/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$2
listeners=$listeners,CONTROLLER://127.0.0.1:$2
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
$line
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
  cat >"$KAFKA_STACK_DIR/log4j2.properties" <<CFG
status=warn
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
logger.raft.name=kafka.server.KafkaRaftServer
logger.raft.level=INFO
CFG
}

# The address line start and address print: the listener asked for, from the broker file.
print_address() { # [sasl]
  if [ "${1:-}" = sasl ]; then
    local s; s=$(field "$brokerfile" sasl_port)
    [ -n "$s" ] || die "the broker of $KAFKA_STACK_DIR has no SASL listener. Fix: start it with KAFKA_SASL_PORT=<port>."
    echo "127.0.0.1:$s"
  else
    echo "127.0.0.1:$(field "$brokerfile" port)"
  fi
}

# The broker this state dir reuses, when it still runs.
reused_alive() {
  [ -f "$brokerfile" ] && [ ! -f "$pidfile" ] &&
    alive "$(field "$brokerfile" pid)" "$(field "$brokerfile" state_dir)"
}

format_once() {
  [ -f "$KAFKA_STACK_DIR/data/meta.properties" ] && return 0
  local cp="$libs/*" id scram=()
  id=$("$JAVA" -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  if [ -n "$KAFKA_SASL_PORT" ]; then
    # KRaft stores SCRAM credentials in the metadata log; they are written at format time.
    scram=(--add-scram "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]")
  fi
  "$JAVA" "$(log_flag)" -cp "$cp" kafka.tools.StorageTool format \
    -t "$id" -c "$KAFKA_STACK_DIR/server.properties" "${scram[@]}" >"$KAFKA_STACK_DIR/format.log" 2>&1 ||
    { cat "$KAFKA_STACK_DIR/format.log" >&2; die "formatting the KRaft log dir $KAFKA_STACK_DIR/data failed (above)"; }
  echo "$KAFKA_VERSION" >"$KAFKA_STACK_DIR/data/.pgsink-kafka-version"
}

# launch PORT CONTROLLER SASL: 0 when the broker answers, 2 when it could not bind a port,
# dies otherwise.
launch() {
  local port=$1 cport=$2 sport=$3 marker pid
  write_config "$port" "$cport" "$sport"
  format_once
  # setsid: the broker must not receive the terminal's or make's signals; stop() owns it.
  setsid "$JAVA" -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "$(log_flag)" -cp "$libs/*" kafka.Kafka "$KAFKA_STACK_DIR/server.properties" >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  # The marker claims the port: noclobber, so of two starts racing for it only one holds it.
  marker="$(registry)/kafka-$port"
  live_marker "$port" >/dev/null || true
  if ! (set -o noclobber
    printf 'pid=%s\nversion=%s\nport=%s\ncontroller_port=%s\nsasl_port=%s\nsasl_user=%s\nstate_dir=%s\ntransient=%s\n' \
      "$pid" "$KAFKA_VERSION" "$port" "$cport" "$sport" "$KAFKA_SASL_USER" "$KAFKA_STACK_DIR" "$KAFKA_TRANSIENT" >"$marker") 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    return 2
  fi
  cp "$marker" "$brokerfile"
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until grep -q 'Kafka Server started' "$log" 2>/dev/null && port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile" "$brokerfile" "$marker"
      if grep -qE 'BindException|Address already in use' "$log"; then return 2; fi
      tail -n 20 "$log" >&2
      die "the broker exited during start-up (log above, full log in $log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$log" >&2
      stop
      die "the broker did not answer on 127.0.0.1:$port within ${KAFKA_START_TIMEOUT}s (log above); raise KAFKA_START_TIMEOUT on a slow machine"
    fi
    sleep 0.2
  done
}

start() {
  registry >/dev/null
  if running; then
    say "Kafka $(field "$brokerfile" version) already running on $(print_address) (pid $(cat "$pidfile"), state in $KAFKA_STACK_DIR)"
    print_address
    return 0
  fi
  if reused_alive; then
    say "reusing this project's Kafka $(field "$brokerfile" version) on $(print_address) (pid $(field "$brokerfile" pid), started from $(field "$brokerfile" state_dir))"
    print_address
    return 0
  fi
  rm -f "$pidfile" "$brokerfile"
  local had
  had=$(cat "$KAFKA_STACK_DIR/data/.pgsink-kafka-version" 2>/dev/null || true)
  if [ -n "$had" ] && [ "$had" != "$KAFKA_VERSION" ]; then
    die "KAFKA_STACK_DIR=$KAFKA_STACK_DIR holds the log of a Kafka $had broker, not $KAFKA_VERSION. Fix: use KAFKA_VERSION=$had, another KAFKA_STACK_DIR, or remove that directory."
  fi
  need_java
  fetch
  local port=$KAFKA_PORT cport=$KAFKA_CONTROLLER_PORT sport=$KAFKA_SASL_PORT reason="" m
  if m=$(live_marker "$port"); then
    local v t s
    v=$(field "$m" version) t=$(field "$m" transient) s=$(field "$m" sasl_port)
    if [ "$v" != "$KAFKA_VERSION" ]; then
      reason="127.0.0.1:$port is this project's Kafka $v (from $(field "$m" state_dir)), not $KAFKA_VERSION"
    elif [ -n "$KAFKA_SASL_PORT" ] && { [ "$s" != "$KAFKA_SASL_PORT" ] || [ "$(field "$m" sasl_user)" != "$KAFKA_SASL_USER" ]; }; then
      reason="127.0.0.1:$port is this project's Kafka $v (from $(field "$m" state_dir)) without SASL user $KAFKA_SASL_USER on port $KAFKA_SASL_PORT"
    elif [ "$t" = 1 ] && [ "$KAFKA_TRANSIENT" = 0 ]; then
      reason="127.0.0.1:$port is this project's Kafka $v (from $(field "$m" state_dir)), but it stops when that run ends"
    else
      # It may still be starting (its marker is written as it is launched).
      local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
      until port_open "$port"; do
        [ $SECONDS -lt $deadline ] || die "this project's Kafka $v on 127.0.0.1:$port (from $(field "$m" state_dir)) did not answer within ${KAFKA_START_TIMEOUT}s. Fix: stop it there (make stack-down in that checkout) or set KAFKA_PORT=<port>."
        sleep 0.2
      done
      mkdir -p "$KAFKA_STACK_DIR"
      cp "$m" "$brokerfile"
      grep -qxF -- "$KAFKA_STACK_DIR" "$m.reusers" 2>/dev/null || echo "$KAFKA_STACK_DIR" >>"$m.reusers"
      say "reusing this project's Kafka $v on 127.0.0.1:$port (pid $(field "$m" pid), started from $(field "$m" state_dir))"
      print_address
      return 0
    fi
  else
    local p
    for p in "$port" "$cport" $sport; do
      if port_open "$p" || [[ " $(held_ports | tr '\n' ' ') " == *" $p "* ]]; then
        reason="port $p on 127.0.0.1 is taken by a process that is not this project's Kafka $KAFKA_VERSION"
        break
      fi
    done
  fi
  local tries=0 rc n=2
  [ -z "$sport" ] || n=3
  while :; do
    if [ -n "$reason" ]; then
      local p
      p=$(free_ports "$n") || die "$reason, and no $n free consecutive ports were found above it. Fix: free a port or set KAFKA_PORT=<port>."
      port=$p cport=$((p + 1))
      [ -z "$sport" ] || sport=$((p + 2))
      say "$reason; starting Kafka $KAFKA_VERSION on free ports instead: 127.0.0.1:$port (controller $cport${sport:+, SASL $sport})"
    fi
    rc=0
    launch "$port" "$cport" "$sport" || rc=$?
    [ $rc = 0 ] && break
    tries=$((tries + 1))
    [ $tries -lt 3 ] || die "the broker could not bind its ports three times (full log in $log). Fix: set KAFKA_PORT=<port> to a free range."
    reason="a port of 127.0.0.1:$port (controller $cport${sport:+, SASL $sport}) was taken while the broker started"
  done
  say "Kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $(cat "$pidfile"), state in $KAFKA_STACK_DIR)"
  print_address
}

stop() {
  if ! running; then
    if reused_alive; then
      say "leaving Kafka $(field "$brokerfile" version) on $(print_address) running: it was reused, started from $(field "$brokerfile" state_dir)"
    elif [ -f "$pidfile" ] && [ -f "$brokerfile" ]; then
      # Our broker died on its own: drop its marker if it is still ours.
      local m; m="$KAFKA_STACK_REGISTRY/kafka-$(field "$brokerfile" port)"
      [ "$(field "$m" pid)" = "$(cat "$pidfile")" ] && rm -f "$m" "$m.reusers"
    fi
    rm -f "$pidfile" "$brokerfile"
    return 0
  fi
  local pid port u; pid=$(cat "$pidfile") port=$(field "$brokerfile" port)
  local m="$KAFKA_STACK_REGISTRY/kafka-$port"
  # Other state dirs (checkouts) that reuse this broker lose it: say so.
  while IFS= read -r u; do
    [ -f "$u/broker" ] && [ ! -f "$u/kafka.pid" ] && [ "$(field "$u/broker" pid)" = "$pid" ] &&
      say "note: $u reuses this broker (127.0.0.1:$port); it stops for it too"
  done < <(cat "$m.reusers" 2>/dev/null)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "broker $pid did not stop within 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  [ -n "$port" ] && [ "$(field "$m" pid)" = "$pid" ] && rm -f "$m" "$m.reusers"
  rm -f "$pidfile" "$brokerfile"
}

# Every state dir in $KAFKA_STACK_HOME (this checkout's .stack/) with a broker: stop what it
# started, forget what it reused; the transient ones (bench-kafka-*, test-kafka-*) are removed.
stop_all() {
  local d
  for d in "$KAFKA_STACK_HOME"/*/; do
    d=${d%/}
    [ -f "$d/kafka.pid" ] || [ -f "$d/broker" ] || continue
    if [ -f "$d/kafka.pid" ] && alive "$(cat "$d/kafka.pid")" "$d"; then
      say "stopping the broker of $d (pid $(cat "$d/kafka.pid"))"
    fi
    # In parallel: each broker takes a few seconds to shut down cleanly.
    (
      KAFKA_STACK_DIR=$d "$0" stop
      case "$(basename "$d")" in
        test-kafka-* | bench-kafka-*) rm -rf "$d" ;;
      esac
    ) &
  done
  wait
}

case "${1:-}" in
  fetch) fetch ;;
  libs) fetch && echo "$libs" ;;
  version) echo "$KAFKA_VERSION" ;;
  start) start ;;
  address)
    { running || reused_alive; } || die "no broker is running for $KAFKA_STACK_DIR. Fix: stack/kafka.sh start (make stack-up)."
    print_address "${2:-}"
    ;;
  stop) stop ;;
  stop-all) stop_all ;;
  status) running || reused_alive ;;
  *) echo "usage: stack/kafka.sh start|address [sasl]|stop|stop-all|status|fetch|libs|version" >&2; exit 2 ;;
esac
