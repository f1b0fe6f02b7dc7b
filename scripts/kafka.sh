#!/usr/bin/env bash
# kafka.sh — run a local single-node Apache Kafka 4.x broker (KRaft, combined
# broker + controller) for Parallax tests, CI and development.
#
# Why this exists: the machines we develop and run CI on have no Docker, so the
# usual `docker run apache/kafka` is not an option. Instead this script pulls
# the broker jars from Maven Central (with mvn), writes a minimal config, and
# runs the broker as a plain background JVM bound to 127.0.0.1 only.
#
# Usage:
#   scripts/kafka.sh up                          start (or reuse) the broker, wait until it answers
#   scripts/kafka.sh down [--purge]              stop it; --purge also deletes its data
#   scripts/kafka.sh status                      exit 0 running and answering, 3 stopped, 4 alive but not answering
#   scripts/kafka.sh create-topic NAME [PARTS]   create a topic if missing (default 3 partitions)
#   scripts/kafka.sh consume NAME [MAX]          print a topic's records from the beginning
#                                                (partition, key, headers, value; default 10)
#
# Environment:
#   PARALLAX_HOME                   cache root (default ~/.cache/parallax); jars go to
#                                   $PARALLAX_HOME/kafka/<version>/libs
#   PARALLAX_KAFKA_DIR              state dir: config, data, log, pid
#                                   (default $PARALLAX_HOME/kafka-run)
#   PARALLAX_KAFKA_PORT             client (PLAINTEXT) port, default 9092
#   PARALLAX_KAFKA_CONTROLLER_PORT  KRaft controller port, default 9093
#   PARALLAX_KAFKA_START_TIMEOUT    seconds `up` waits for readiness, default 90
#   JAVA_HOME                       JDK 17+ to use (default: `java` on PATH)
#
# Notes:
#   * The published kafka_2.13 POM omits the logging runtime the release tarball
#     ships. Kafka 4.x still compiles against SLF4J 1.7, so the matching binding
#     is log4j-slf4j-impl (NOT log4j-slf4j2-impl, which SLF4J 1.7 ignores and
#     the broker would then log nothing at all).
#   * Storage is formatted once (--standalone, which records the controller
#     address in the metadata log). Changing the controller port afterwards
#     needs `down --purge`.
set -euo pipefail

readonly KAFKA_VERSION="${PARALLAX_KAFKA_VERSION:-4.1.1}"
# Must equal the log4j-api version kafka_${KAFKA_VERSION} pulls in (2.24.3 for 4.1.x).
readonly LOG4J_VERSION="${PARALLAX_LOG4J_VERSION:-2.24.3}"
readonly DEP_PLUGIN_VERSION="3.8.1"

readonly PX_HOME="${PARALLAX_HOME:-$HOME/.cache/parallax}"
readonly CACHE_DIR="$PX_HOME/kafka/$KAFKA_VERSION"
readonly LIBS="$CACHE_DIR/libs"
readonly STATE_DIR="${PARALLAX_KAFKA_DIR:-$PX_HOME/kafka-run}"
readonly PORT="${PARALLAX_KAFKA_PORT:-9092}"
readonly CTRL_PORT="${PARALLAX_KAFKA_CONTROLLER_PORT:-9093}"
readonly START_TIMEOUT="${PARALLAX_KAFKA_START_TIMEOUT:-90}"
readonly HOST=127.0.0.1

readonly SERVER_PROPS="$STATE_DIR/server.properties"
readonly LOG4J_PROPS="$STATE_DIR/log4j2.properties"
readonly TOOLS_LOG4J_PROPS="$STATE_DIR/tools-log4j2.properties"
readonly CLIENT_PROPS="$STATE_DIR/client.properties"
readonly DATA_DIR="$STATE_DIR/data"
readonly PID_FILE="$STATE_DIR/kafka.pid"
readonly PORT_FILE="$STATE_DIR/kafka.port"      # port of the running broker
readonly FORMAT_FILE="$STATE_DIR/formatted.ports" # ports at format time
readonly LOG_FILE="$STATE_DIR/kafka.log"
readonly MARKER="$STATE_DIR/.parallax-kafka"      # proves the dir is ours (for --purge)
readonly LOCK_FILE="$STATE_DIR/.lock"

PROG="$(basename "$0")"
readonly PROG

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

usage() {
  cat >&2 <<EOF
usage: $PROG up                          start (or reuse) the local Kafka broker
       $PROG down [--purge]              stop it (--purge also deletes its data)
       $PROG status                      print state; exit 0 running, 3 stopped, 4 not answering
       $PROG create-topic NAME [PARTS]   create topic NAME (default 3 partitions)
       $PROG consume NAME [MAX]          print up to MAX records of NAME from the beginning (default 10)
EOF
  exit "${1:-2}"
}

is_uint() { [[ "$1" =~ ^[0-9]{1,9}$ ]]; }
is_posint() { is_uint "$1" && ((10#$1 > 0)); }
is_port() { is_posint "$1" && ((10#$1 < 65536)); }

check_env() {
  is_port "$PORT" || die "PARALLAX_KAFKA_PORT='$PORT' is not a valid port"
  is_port "$CTRL_PORT" || die "PARALLAX_KAFKA_CONTROLLER_PORT='$CTRL_PORT' is not a valid port"
  ((10#$PORT != 10#$CTRL_PORT)) || die "PARALLAX_KAFKA_PORT and PARALLAX_KAFKA_CONTROLLER_PORT must differ (both $PORT)"
  is_posint "$START_TIMEOUT" ||
    die "PARALLAX_KAFKA_START_TIMEOUT='$START_TIMEOUT' must be a positive number of seconds"
}

# --- Java -------------------------------------------------------------------

JAVA=""
JAVA_SPEC=0
find_java() {
  [[ -n "$JAVA" ]] && return 0
  if [[ -n "${JAVA_HOME:-}" ]]; then
    JAVA="$JAVA_HOME/bin/java"
    [[ -x "$JAVA" ]] || die "JAVA_HOME=$JAVA_HOME but $JAVA is not executable: fix JAVA_HOME or unset it"
  else
    JAVA="$(command -v java || true)"
    [[ -n "$JAVA" ]] || die "java not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
  fi
  local spec
  spec="$("$JAVA" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p')"
  spec="${spec%%.*}"
  if ! is_uint "$spec" || ((spec < 17)); then
    die "$JAVA is Java '${spec:-unknown}', Kafka $KAFKA_VERSION needs 17+: install a JDK 17+ or set JAVA_HOME"
  fi
  JAVA_SPEC="$spec"
}

# Run a Kafka command-line tool (class in kafka_2.13 / kafka-tools) quietly.
run_tool() {
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="file:$TOOLS_LOG4J_PROPS" -cp "$LIBS/*" "$@"
}

# --- jars -------------------------------------------------------------------

resolve_jars() {
  if [[ -f "$LIBS/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null ||
    die "mvn not found: install Maven 3.6+ (e.g. apt-get install maven); it is needed once to fetch Kafka $KAFKA_VERSION into $LIBS"
  mkdir -p "$CACHE_DIR"
  note "resolving Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (one-time)..."
  cat >"$CACHE_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: the runtime classpath of a Kafka broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.parallax.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- Logging runtime left out of the published POM (the tarball ships it). -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>$DEP_PLUGIN_VERSION</version></plugin>
    </plugins>
  </build>
</project>
EOF
  local tmp="$CACHE_DIR/libs.tmp.$$"
  rm -rf "$tmp"
  if ! mvn -q -B -f "$CACHE_DIR/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE_DIR/mvn.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/mvn.log" >&2 || true
    rm -rf "$tmp"
    die "mvn could not resolve Kafka $KAFKA_VERSION (full log: $CACHE_DIR/mvn.log): check network access to Maven Central or ~/.m2/settings.xml mirrors"
  fi
  [[ -n "$(ls "$tmp"/kafka_2.13-*.jar 2>/dev/null)" ]] || die "mvn finished but no kafka_2.13 jar in $tmp (see $CACHE_DIR/mvn.log)"
  touch "$tmp/.complete"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS" # atomic publish: a half-finished download is never reused
  note "resolved $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# --- config -----------------------------------------------------------------

write_configs() {
  mkdir -p "$STATE_DIR" "$DATA_DIR"
  touch "$MARKER"
  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka.sh — rewritten on every 'up'; edit the script instead.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CTRL_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CTRL_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# Single node: every internal topic has exactly one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

group.initial.rebalance.delay.ms=0
num.partitions=3
auto.create.topics.enable=true

# Dev-box retention: a day or 256 MiB per partition, whichever comes first.
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
EOF

  # Broker: WARN and above (plus the one "Kafka Server started" line) to stdout,
  # which 'up' redirects to $LOG_FILE.
  cat >"$LOG4J_PROPS" <<'EOF'
# Generated by scripts/kafka.sh
status = warn
name = parallax-kafka
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
EOF

  # Command-line tools: errors only, to stderr (keeps their stdout parseable).
  cat >"$TOOLS_LOG4J_PROPS" <<'EOF'
# Generated by scripts/kafka.sh
status = error
name = parallax-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.err.ref = STDERR
EOF

  # Admin-client settings for the readiness probe: fail fast instead of
  # retrying for the default 60 s.
  cat >"$CLIENT_PROPS" <<'EOF'
# Generated by scripts/kafka.sh
request.timeout.ms=5000
default.api.timeout.ms=8000
socket.connection.setup.timeout.ms=1000
socket.connection.setup.timeout.max.ms=2000
EOF
}

format_storage() {
  local want="$PORT $CTRL_PORT"
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    local had=""
    [[ -f "$FORMAT_FILE" ]] && had="$(<"$FORMAT_FILE")"
    if [[ -n "$had" && "${had#* }" != "$CTRL_PORT" ]]; then
      die "storage in $DATA_DIR was formatted for controller port ${had#* }, not $CTRL_PORT: run '$PROG down --purge' first (deletes data) or keep PARALLAX_KAFKA_CONTROLLER_PORT=${had#* }"
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(run_tool kafka.tools.StorageTool random-uuid)" ||
    die "kafka.tools.StorageTool random-uuid failed (classpath $LIBS; try deleting $LIBS to re-download)"
  note "formatting storage in $DATA_DIR (cluster id $cluster_id)"
  run_tool kafka.tools.StorageTool format --standalone -t "$cluster_id" \
    -c "$SERVER_PROPS" --ignore-formatted >/dev/null ||
    die "formatting storage in $DATA_DIR failed: see the error above; '$PROG down --purge' resets the state dir"
  echo "$want" >"$FORMAT_FILE"
}

# --- process ----------------------------------------------------------------

# True if $1 is a live process running *our* broker (guards against pid reuse).
is_our_broker() {
  local pid="$1" cmdline
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *" kafka.Kafka $SERVER_PROPS"* ]]
}

# Prints the pid of our running broker (from the pid file, or by looking for
# a JVM started with our server.properties if the pid file was lost).
broker_pid() {
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(<"$PID_FILE")"
  if is_our_broker "$pid"; then
    echo "$pid"
    return 0
  fi
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    if is_our_broker "$p"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

running_port() {
  if [[ -f "$PORT_FILE" ]]; then cat "$PORT_FILE"; else echo "$PORT"; fi
}

# One real metadata round-trip (list topics) against 127.0.0.1:$1.
probe() {
  local port="$1" limit="${2:-15}"
  timeout --kill-after=2 "$limit" \
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="file:$TOOLS_LOG4J_PROPS" -cp "$LIBS/*" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$port" \
    --command-config "$CLIENT_PROPS" --list >/dev/null 2>&1
}

port_in_use() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Serialise up/down/create-topic against each other (e.g. parallel CI jobs).
take_lock() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null; then
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "another $PROG is holding $LOCK_FILE for over 120 s"
  fi
}

# --- commands ---------------------------------------------------------------

cmd_up() {
  check_env
  find_java
  take_lock

  local pid
  if pid="$(broker_pid)"; then
    local rport
    rport="$(running_port)"
    if [[ "$rport" != "$PORT" ]]; then
      die "a broker from this state dir is already running on $HOST:$rport (pid $pid), not $PORT: run '$PROG down' first"
    fi
    if [[ -f "$LIBS/.complete" ]] && probe "$rport" 20; then
      echo "kafka ready at $HOST:$rport"
      return 0
    fi
    note "broker pid $pid is running but not answering yet; waiting for it"
  else
    rm -f "$PID_FILE"
    local p
    for p in "$PORT" "$CTRL_PORT"; do
      port_in_use "$p" && die "port $HOST:$p is already in use by a process this script did not start: stop it, or choose PARALLAX_KAFKA_PORT / PARALLAX_KAFKA_CONTROLLER_PORT"
    done
    resolve_jars
    write_configs
    format_storage

    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
    local extra=()
    # Java 24+ warns on every start about Kafka's use of sun.misc.Unsafe.
    ((JAVA_SPEC >= 24)) && extra+=(--sun-misc-unsafe-memory-access=allow)
    note "starting Kafka $KAFKA_VERSION on $HOST:$PORT (controller $CTRL_PORT), log: $LOG_FILE"
    nohup "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true "${extra[@]}" \
      -Dlog4j2.configurationFile="file:$LOG4J_PROPS" \
      -cp "$LIBS/*" kafka.Kafka "$SERVER_PROPS" \
      </dev/null >"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$PORT" >"$PORT_FILE"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      note "broker process $pid exited during startup; last 50 lines of $LOG_FILE:"
      tail -n 50 "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE"
      die "Kafka failed to start (see above)"
    fi
    local left=$((deadline - SECONDS))
    if ((left <= 0)); then
      note "broker not answering on $HOST:$PORT after ${START_TIMEOUT}s; last 50 lines of $LOG_FILE:"
      tail -n 50 "$LOG_FILE" >&2 || true
      die "Kafka did not become ready within ${START_TIMEOUT}s (pid $pid left running; '$PROG down' stops it, PARALLAX_KAFKA_START_TIMEOUT raises the limit)"
    fi
    if probe "$PORT" "$((left < 15 ? left : 15))"; then
      echo "kafka ready at $HOST:$PORT"
      return 0
    fi
    sleep 1
  done
}

cmd_down() {
  local purge=0
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) usage ;;
  esac
  [[ $# -le 1 ]] || usage
  [[ -d "$STATE_DIR" ]] && take_lock

  local pid
  if pid="$(broker_pid)"; then
    note "stopping Kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 200; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      note "pid $pid still alive after 20 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$PID_FILE" "$PORT_FILE"

  if ((purge)) && [[ -d "$STATE_DIR" ]]; then
    [[ -f "$MARKER" ]] ||
      die "refusing to purge $STATE_DIR: it has no $(basename "$MARKER") marker, so it was not created by $PROG"
    rm -rf -- "$STATE_DIR"
    note "deleted $STATE_DIR"
  fi
  echo "stopped"
}

cmd_status() {
  [[ $# -eq 0 ]] || usage
  local pid port
  if pid="$(broker_pid)"; then
    find_java
    port="$(running_port)"
    if [[ -f "$LIBS/.complete" ]] && probe "$port" 20; then
      echo "running $HOST:$port pid $pid"
      return 0
    fi
    note "pid $pid is alive but $HOST:$port does not answer metadata requests"
    echo "unresponsive"
    exit 4
  fi
  echo "stopped"
  exit 3
}

cmd_create_topic() {
  [[ $# -ge 1 && $# -le 2 ]] || usage
  local name="$1" parts="${2:-3}"
  [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] ||
    die "invalid topic name '$name': use 1-249 characters from [A-Za-z0-9._-]"
  is_posint "$parts" || die "invalid partition count '$parts': must be a positive integer"
  find_java
  local pid port
  pid="$(broker_pid)" || die "Kafka is not running: start it with '$PROG up'"
  port="$(running_port)"
  run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$port" \
    --command-config "$CLIENT_PROPS" --create --if-not-exists \
    --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null ||
    die "creating topic '$name' on $HOST:$port failed (see the error above)"
  echo "topic $name ok on $HOST:$port"
}

cmd_consume() {
  [[ $# -ge 1 && $# -le 2 ]] || usage
  local name="$1" max="${2:-10}"
  [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid topic name '$name'"
  is_posint "$max" || die "invalid record count '$max': must be a positive integer"
  find_java
  local port
  broker_pid >/dev/null || die "Kafka is not running: start it with '$PROG up'"
  port="$(running_port)"
  # Values are binary protobuf for the ingest topics; the console consumer
  # prints them with non-printable bytes as they are.
  run_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$HOST:$port" \
    --consumer.config "$CLIENT_PROPS" --topic "$name" --from-beginning \
    --max-messages "$max" --timeout-ms 10000 \
    --property print.partition=true --property print.key=true --property print.headers=true \
    2> >(grep -v -e 'TimeoutException' -e 'Error processing message' >&2)
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd="$1"
  shift
  case "$cmd" in
    up) [[ $# -eq 0 ]] || usage; cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    consume) cmd_consume "$@" ;;
    -h | --help | help) usage 0 ;;
    *) note "unknown command '$cmd'"; usage ;;
  esac
}

main "$@"
