#!/usr/bin/env bash
# Apache Cassandra 5.0 (single node, loopback) for the CQL smoke and end-to-end
# tests. It stands in for ScyllaDB: same CQL protocol, and it comes from Maven
# Central as plain jars.
#
# Usage: e2e/scripts/cassandra.sh install|start|stop
#   install  copies org.apache.cassandra:cassandra-all and its runtime
#            dependencies into $CONFAB_CACHE/cassandra-<version>/lib (Maven
#            repository: $CONFAB_CACHE/m2). A second run only checks them.
#   start    writes cassandra.yaml and logback.xml (templates beside this
#            script) with free loopback ports and fresh data dirs under
#            $CONFAB_RUN/cassandra/, runs CassandraDaemon on Java 17 (or 11),
#            waits until CQL clients are accepted and writes
#            $CONFAB_RUN/cassandra.env (CONFAB_CQL_NODE=127.0.0.1:PORT).
#            The port takes plain and TLS connections alike: a fresh test CA
#            (keytool, from the same JDK) issues the node a certificate for
#            localhost, 127.0.0.1 and the node address; its PEM is
#            CONFAB_CQL_TLS_CA in the env file.
#   stop     stops it; logs stay in $CONFAB_RUN/cassandra/logs/.
#
# CONFAB_CASSANDRA_JAVA may name the java binary to use.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

version=5.0.9
dir="$CONFAB_CACHE/cassandra-$version"
lib="$dir/lib"
marker="$dir/.installed"
run="$CONFAB_RUN/cassandra"
pidfile="$run/cassandra.pid"
logdir="$run/logs"
envfile="$CONFAB_RUN/cassandra.env"
# Guards only test material on this machine (PKCS12 wants a password).
tls_password=confab-test
start_timeout=${CONFAB_CASSANDRA_START_TIMEOUT:-180}

installed() {
  [ -f "$marker" ] && [ -f "$lib/cassandra-all-$version.jar" ] &&
    compgen -G "$lib/jamm-*.jar" >/dev/null
}

cmd_install() {
  if installed; then
    log "cassandra $version cached: $(find "$lib" -name '*.jar' | wc -l) jars in $lib"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (run e2e/scripts/toolchain.sh)"
  log "fetching cassandra-all $version and its runtime dependencies from Maven Central"
  rm -rf "$lib" "$lib.tmp" "$marker"
  mkdir -p "$dir" "$CONFAB_CACHE/m2"
  if ! mvn -B -Dstyle.color=never -f "$here/cassandra/pom.xml" \
    -Dmaven.repo.local="$CONFAB_CACHE/m2" \
    -Dcassandra.version="$version" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$lib.tmp" >"$dir/mvn.log" 2>&1; then
    show_log_tail "$dir/mvn.log"
    die "mvn could not fetch cassandra-all $version (log: $dir/mvn.log)"
  fi
  mv "$lib.tmp" "$lib"
  touch "$marker"
  installed || { rm -f "$marker"; die "no cassandra-all or jamm jar in $lib"; }
  log "cassandra $version installed: $(find "$lib" -name '*.jar' | wc -l) jars, $(du -sh "$lib" | cut -f1)"
}

# java_major BIN: prints the feature version of the JVM at BIN (17, 11, ...).
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = //p' | head -1
}

# Cassandra 5.0 runs on Java 11 or 17 (17 preferred); newer JVMs are refused.
find_java() {
  local c
  for c in "${CONFAB_CASSANDRA_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
    "$(command -v java || true)" /usr/lib/jvm/*17*/bin/java /usr/lib/jvm/*11*/bin/java; do
    if [ -z "$c" ] || [ ! -x "$c" ]; then continue; fi
    case "$(java_major "$c")" in 17 | 11) echo "$c"; return 0 ;; esac
  done
  return 1
}

# The JVM flags of Cassandra 5.0's conf/jvm-server.options and
# conf/jvm17-server.options (GC, JPMS exports/opens, netty), minus those that
# only suit big production heaps (AlwaysPreTouch, heap dumps).
jvm_flags() {
  cat <<'EOF'
-ea
-da:net.openhft...
-XX:+UseThreadPriorities
-XX:+ExitOnOutOfMemoryError
-Xss256k
-XX:+UseTLAB
-XX:+ResizeTLAB
-XX:+PerfDisableSharedMem
-Djava.net.preferIPv4Stack=true
-XX:+UseG1GC
-XX:+ParallelRefProcEnabled
-XX:MaxTenuringThreshold=1
-XX:G1HeapRegionSize=16m
-XX:G1RSetUpdatingPauseTimePercent=5
-XX:MaxGCPauseMillis=300
-XX:InitiatingHeapOccupancyPercent=70
-Djdk.attach.allowAttachSelf=true
--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED
--add-exports=java.sql/java.sql=ALL-UNNAMED
--add-exports=java.base/java.lang.ref=ALL-UNNAMED
--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED
--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED
--add-opens=java.base/java.lang.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED
--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED
--add-opens=java.base/jdk.internal.math=ALL-UNNAMED
--add-opens=java.base/jdk.internal.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED
--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
--add-opens=java.base/java.io=ALL-UNNAMED
--add-opens=java.base/java.lang.reflect=ALL-UNNAMED
--add-opens=jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
--add-opens=java.base/java.lang=ALL-UNNAMED
--add-opens=java.base/java.util=ALL-UNNAMED
-Dio.netty.tryReflectionSetAccessible=true
-Dio.netty.allocator.useCacheForAllThreads=true
-Dio.netty.allocator.maxOrder=11
EOF
}

cql_ready() {
  grep -q 'Starting listening for CQL clients' "$logdir/system.log" 2>/dev/null &&
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# tls_material DIR JAVA: a test CA (DIR/ca.crt, PEM) and the node's key and
# certificate from it (DIR/node.p12), valid for localhost, loopback and the
# node address.
tls_material() {
  local dir=$1 keytool; keytool="$(dirname "$2")/keytool"
  local -a store=(-storetype PKCS12 -storepass "$tls_password" -keypass "$tls_password")
  local -a ec=(-keyalg EC -groupname secp256r1 -validity 30)
  "$keytool" -genkeypair -alias ca "${ec[@]}" -dname "CN=Confab test CA" -ext bc:c \
    -keystore "$dir/ca.p12" "${store[@]}"
  "$keytool" -exportcert -rfc -alias ca -keystore "$dir/ca.p12" -storepass "$tls_password" \
    >"$dir/ca.crt"
  "$keytool" -genkeypair -alias node "${ec[@]}" -dname "CN=localhost" \
    -keystore "$dir/node.p12" "${store[@]}"
  "$keytool" -certreq -alias node -keystore "$dir/node.p12" -storepass "$tls_password" |
    "$keytool" -gencert -rfc -alias ca -keystore "$dir/ca.p12" -storepass "$tls_password" \
      -validity 30 -ext "san=dns:localhost,ip:127.0.0.1,ip:$CONFAB_NODE_IP" -ext eku=serverAuth \
      >"$dir/node.crt"
  "$keytool" -importcert -noprompt -alias ca -file "$dir/ca.crt" -keystore "$dir/node.p12" "${store[@]}"
  "$keytool" -importcert -alias node -file "$dir/node.crt" -keystore "$dir/node.p12" "${store[@]}"
} >"$logdir/keytool.log" 2>&1

cmd_start() {
  installed || die "cassandra not installed: run $0 install"
  local java; java=$(find_java) || die "Cassandra $version needs Java 17 (or 11); set CONFAB_CASSANDRA_JAVA"
  cmd_stop
  rm -rf "$run"
  mkdir -p "$run"/{data,commitlog,hints,saved_caches,cdc_raw,triggers,conf} "$logdir"
  local native storage
  local ports; ports=$(free_port 2)
  read -r native storage <<<"${ports//$'\n'/ }"
  node_address
  tls_material "$run/conf" "$java" || die "keytool could not make the test CA (log: $logdir/keytool.log)"
  sed -e "s#@RUN@#$run#g" -e "s#@NATIVE_PORT@#$native#g" -e "s#@STORAGE_PORT@#$storage#g" \
    -e "s#@NODE_IP@#$CONFAB_NODE_IP#g" -e "s#@TLS_PASSWORD@#$tls_password#g" \
    "$here/cassandra/cassandra.yaml.in" >"$run/conf/cassandra.yaml"
  cp "$here/cassandra/logback.xml" "$run/conf/logback.xml"
  local jamm; jamm=$(compgen -G "$lib/jamm-*.jar" | head -1)
  local -a flags; mapfile -t flags < <(jvm_flags)
  log "starting cassandra $version (java $(java_major "$java")) on 127.0.0.1:$native (storage $storage)"
  local t0; t0=$(date +%s%N)
  (
    cd "$run"
    exec "$java" -Xms512m -Xmx1g "${flags[@]}" \
      "-javaagent:$jamm" \
      "-Dcassandra.config=file://$run/conf/cassandra.yaml" \
      "-Dlogback.configurationFile=file://$run/conf/logback.xml" \
      "-Dcassandra.logdir=$logdir" \
      "-Dcassandra.storagedir=$run" \
      "-Dcassandra.triggers_dir=$run/triggers" \
      -Dcassandra-foreground=yes \
      -Dcassandra.skip_wait_for_gossip_to_settle=0 \
      -Dcassandra.ring_delay_ms=0 \
      -Dcassandra.gossip_settle_min_wait_ms=0 \
      -Dcassandra.gossip_settle_interval_ms=0 \
      -Dcassandra.gossip_settle_poll_success_required=0 \
      -Dcassandra.superuser_setup_delay_ms=0 \
      -Dcassandra.migration_task_wait_in_seconds=0 \
      -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
  ) >"$logdir/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local pid; pid=$(cat "$pidfile")
  local i ok=
  for ((i = 0; i < start_timeout * 2; i++)); do
    if cql_ready "$native"; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ -z "$ok" ]; then
    if kill -0 "$pid" 2>/dev/null; then
      log "cassandra not ready after ${start_timeout}s"
    else
      log "cassandra exited"
    fi
    show_log_tail "$logdir/stdout.log"
    show_log_tail "$logdir/system.log"
    cmd_stop
    die "cassandra did not start"
  fi
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf 'export CONFAB_CQL_NODE=127.0.0.1:%s\nexport CONFAB_CQL_TLS_CA=%s\n' \
    "$native" "$run/conf/ca.crt" >"$envfile"
  log "cassandra ready after $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s: $(cat "$envfile")"
}

cmd_stop() {
  stop_pidfile "$pidfile"
  rm -f "$envfile"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: $0 install|start|stop" ;;
esac
