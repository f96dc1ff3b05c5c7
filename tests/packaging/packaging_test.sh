#!/usr/bin/env bash
# The packaging test (CTest "packaging", label packaging): builds the Debian
# packages with cpack from the already-built binaries of BUILD_DIR, inspects
# them (dpkg-deb, lintian, systemd-analyze), installs them with apt-get,
# runs the INSTALLED loyalty-server and loyalty-agent as their system users
# with their installed configuration, issues the certificates with the
# installed `loyaltyctl pki`, checks the terminal with `loyaltyctl doctor`,
# records a checkout and sees it at head office (`loyaltyctl admin`),
# reinstalls over unsynced events (the upgrade path keeps them), then purges
# everything and checks that nothing is left but the documented backup of
# unsynced events.
#
# Needs root (it installs packages) and skips (exit 77) otherwise, or when
# one of the packages is already installed on this machine (it would purge
# it). Usage: packaging_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail

build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
SKIP=77

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the packaging test installs and purges packages: run it as root"
  exit $SKIP
fi
for p in loyalty-agent loyalty-server loyaltyctl; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv "not-installed"; then
    echo "SKIP: $p is already installed (or has config files) here; not touching it"
    exit $SKIP
  fi
done
for tool in cpack dpkg-deb dpkg-shlibdeps fakeroot lintian systemd-analyze apt-get setpriv; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing: run scripts/setup"; exit 1; }
done

export DEBIAN_FRONTEND=noninteractive
tmp="$(mktemp -d /tmp/loyalty-packaging.XXXXXX)"
pids=()
installed=0
step() { echo "== $(date +%T) $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $installed -eq 1 ]; then
    LOYALTY_PURGE_UNSYNCED=yes apt-get purge -y -qq -o DPkg::Lock::Timeout=300 \
      loyalty-agent loyalty-server loyaltyctl >/dev/null 2>&1 || true
  fi
  rm -rf /var/backups/loyalty-agent
  if [ $rc -ne 0 ]; then
    for log in "$tmp"/*.log; do [ -f "$log" ] && { echo "--- $log"; tail -40 "$log"; }; done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
apt() { apt-get -y -qq -o DPkg::Lock::Timeout=300 "$@"; }

# Waits for `needle` in `log` and prints the rest of the first such line.
wait_line() {
  local log=$1 needle=$2 pid=$3
  for _ in $(seq 300); do
    if grep -q "$needle" "$log" 2>/dev/null; then
      grep -m1 "$needle" "$log" | sed "s/.*$needle//"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited" >&2; return 1; }
    sleep 0.1
  done
  return 1
}
port_of() { sed -n 's/^[^ ]*:\([0-9][0-9]*\).*/\1/p' <<<"$1"; }

step "cpack: packages from $build"
(cd "$build" && cpack -G DEB -B "$tmp/pkgs" >"$tmp/cpack.log" 2>&1) || fail "cpack failed"
version="$(sed -n 's/^project(loyalty VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")-1"
agent_deb="$tmp/pkgs/loyalty-agent_${version}_amd64.deb"
server_deb="$tmp/pkgs/loyalty-server_${version}_amd64.deb"
ctl_deb="$tmp/pkgs/loyaltyctl_${version}_amd64.deb"
for deb in "$agent_deb" "$server_deb" "$ctl_deb"; do [ -f "$deb" ] || fail "missing $deb"; done

step "dpkg-deb: control fields and contents"
check_deb() {
  local deb=$1 pkg=$2; shift 2
  [ "$(dpkg-deb -f "$deb" Package)" = "$pkg" ] || fail "$deb: Package is not $pkg"
  [ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "$deb: Version is not $version"
  local depends
  depends="$(dpkg-deb -f "$deb" Depends)"
  local libs="libc6 libstdc++6 libssl3 libsqlite3-0 libprotobuf32 libboost-program-options1.74.0"
  # The daemons log with spdlog (and fmt); loyaltyctl does not.
  [ "$pkg" = loyaltyctl ] || libs="$libs libspdlog1.10 libfmt9"
  for lib in $libs; do
    grep -q "$lib" <<<"$depends" || fail "$pkg: Depends lacks $lib: $depends"
  done
  local contents
  contents="$(dpkg-deb -c "$deb" | awk '{print $6}')"
  for f in "$@" "./usr/share/doc/$pkg/copyright" "./usr/share/doc/$pkg/changelog.Debian.gz"; do
    grep -qx "$f" <<<"$contents" || fail "$pkg: does not contain $f"
  done
}
check_deb "$agent_deb" loyalty-agent ./usr/bin/loyalty-agent \
  ./lib/systemd/system/loyalty-agent.service ./etc/loyalty/agent.conf
check_deb "$server_deb" loyalty-server ./usr/bin/loyalty-server \
  ./lib/systemd/system/loyalty-server.service ./etc/loyalty/server.conf
check_deb "$ctl_deb" loyaltyctl ./usr/bin/loyaltyctl
for dep in adduser loyaltyctl; do
  dpkg-deb -f "$agent_deb" Depends | grep -q "$dep" || fail "loyalty-agent: Depends lacks $dep"
done
dpkg-deb -f "$server_deb" Depends | grep -q adduser || fail "loyalty-server: Depends lacks adduser"
mkdir "$tmp/ctrl"
dpkg-deb -e "$agent_deb" "$tmp/ctrl/agent"
dpkg-deb -e "$server_deb" "$tmp/ctrl/server"
grep -qx /etc/loyalty/agent.conf "$tmp/ctrl/agent/conffiles" || fail "agent.conf is not a conffile"
grep -qx /etc/loyalty/server.conf "$tmp/ctrl/server/conffiles" || fail "server.conf is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$tmp/ctrl/agent/$s" ] && [ -x "$tmp/ctrl/server/$s" ] || fail "$s missing or not executable"
done

step "lintian (errors fail; overrides are in packaging/debian/*/lintian-overrides)"
lintian --fail-on error --no-tag-display-limit "$agent_deb" "$server_deb" "$ctl_deb" \
  >"$tmp/lintian.log" 2>&1 || { cat "$tmp/lintian.log"; fail "lintian reported errors"; }
grep -v "running with root" "$tmp/lintian.log" || true

step "apt-get install"
installed=1
apt install "$ctl_deb" "$agent_deb" "$server_deb" >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; fail "apt-get install failed"; }
for u in loyalty-agent loyalty-server; do
  getent passwd "$u" >/dev/null || fail "user $u was not created"
  [ "$(stat -c %U "/var/lib/$u")" = "$u" ] || fail "/var/lib/$u is not owned by $u"
  [ "$(stat -c %a "/var/lib/$u")" = 750 ] || fail "/var/lib/$u is not 0750"
done
dpkg-query -W -f='${Conffiles}' loyalty-agent | grep -q /etc/loyalty/agent.conf \
  || fail "dpkg does not list agent.conf as a conffile"
[ ! -e /etc/systemd/system/multi-user.target.wants/loyalty-agent.service ] \
  || fail "a fresh install must not enable loyalty-agent before it is configured"

step "systemd-analyze verify on the installed units"
systemd-analyze verify --man=no /lib/systemd/system/loyalty-agent.service \
  /lib/systemd/system/loyalty-server.service >"$tmp/verify.log" 2>&1 \
  || { cat "$tmp/verify.log"; fail "systemd-analyze verify"; }
for unit in loyalty-agent loyalty-server; do
  for key in 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'StateDirectory=' 'Restart=on-failure' \
             'SystemCallFilter=@system-service' "User=$unit"; do
    grep -q "^$key" "/lib/systemd/system/$unit.service" || fail "$unit.service lacks $key"
  done
done
grep -q '^LimitNOFILE=65536' /lib/systemd/system/loyalty-server.service || fail "server LimitNOFILE"

step "pki: CA, server, store and admin bundles with the installed loyaltyctl"
ca="$tmp/ca"
loyaltyctl pki init --dir "$ca"
loyaltyctl pki issue-server --dir "$ca" --host 127.0.0.1 --out /etc/loyalty/server-tls
loyaltyctl pki issue-store --dir "$ca" --store store-ci --out /etc/loyalty/agent-tls
loyaltyctl pki issue-admin --dir "$ca" --name ci --out "$tmp/admin"
chown -R loyalty-server:loyalty-server /etc/loyalty/server-tls
chown -R loyalty-agent:loyalty-agent /etc/loyalty/agent-tls

step "start the installed loyalty-server as loyalty-server"
# Ephemeral ports: CI runs other tests at the same time.
cat >>/etc/loyalty/server.conf <<'EOF'
listen = 127.0.0.1:0
admin-listen = 127.0.0.1:0
EOF
(cd / && exec setpriv --reuid=loyalty-server --regid=loyalty-server --init-groups --no-new-privs \
  /usr/bin/loyalty-server --config /etc/loyalty/server.conf) >"$tmp/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
sync_addr="$(wait_line "$tmp/server.log" "sync listening on " "$server_pid")" || fail "server did not start"
admin_addr="$(wait_line "$tmp/server.log" "admin listening on " "$server_pid")" || fail "no admin port"
sync_port="$(port_of "$sync_addr")"
admin_port="$(port_of "$admin_addr")"
[ -n "$sync_port" ] && [ -n "$admin_port" ] || fail "cannot read the server's ports"
[ -f /var/lib/loyalty-server/server.db ] || fail "server.db not in /var/lib/loyalty-server"

step "start the installed loyalty-agent as loyalty-agent (server 127.0.0.1:$sync_port)"
cat >>/etc/loyalty/agent.conf <<EOF
listen = 127.0.0.1:0
store-id = store-ci
terminal-id = till-ci
server = 127.0.0.1:$sync_port
tls-dir = /etc/loyalty/agent-tls
sync-interval-ms = 500
EOF
agent_starts=0
start_agent() {
  agent_starts=$((agent_starts + 1))
  local log="$tmp/agent-$agent_starts.log"
  (cd / && exec setpriv --reuid=loyalty-agent --regid=loyalty-agent --init-groups --no-new-privs \
    /usr/bin/loyalty-agent --config /etc/loyalty/agent.conf) >"$log" 2>&1 &
  agent_pid=$!
  pids+=("$agent_pid")
  local addr
  addr="$(wait_line "$log" "listening on " "$agent_pid")" || fail "agent did not start"
  agent_url="http://127.0.0.1:$(port_of "$addr")"
}
start_agent
[ "$(stat -c %U /var/lib/loyalty-agent/agent.db)" = loyalty-agent ] || fail "agent.db owner"

step "loyaltyctl doctor (installed configuration, $agent_url)"
loyaltyctl doctor --url "$agent_url" | tee "$tmp/doctor.out" || fail "doctor found a problem"
grep -q "^WARN\|^FAIL" "$tmp/doctor.out" && fail "doctor is not all OK"
loyaltyctl doctor --url "$agent_url" --json | grep -q '"ok":true' || fail "doctor --json"

step "checkout on the terminal, synced to head office"
card=6035990000000016
loyaltyctl enrol --url "$agent_url" --card "$card" --name "CI Member" >/dev/null
loyaltyctl commit --url "$agent_url" --pos-txn-id CI-1 --card "$card" --line LATTE:Coffee:2:320 \
  >/dev/null
loyaltyctl sync --url "$agent_url" >/dev/null || true
admin=(loyaltyctl admin --url "https://127.0.0.1:$admin_port" --tls-dir "$tmp/admin")
synced=0
for _ in $(seq 100); do
  if "${admin[@]}" members lookup "$card" 2>/dev/null | grep -q "purchase CI-1"; then
    synced=1
    break
  fi
  sleep 0.2
done
[ $synced -eq 1 ] || { "${admin[@]}" members lookup "$card" || true; fail "CI-1 did not reach the server"; }
"${admin[@]}" stores | tee "$tmp/stores.out"
grep -q "store-ci" "$tmp/stores.out" || fail "admin stores does not list store-ci"
[ "$(loyaltyctl doctor --pending)" = 0 ] || fail "events still pending after sync"

step "offline checkout, then reinstall over unsynced events (upgrade path)"
kill -TERM "$server_pid"
wait "$server_pid" || fail "loyalty-server did not exit 0 on SIGTERM"
loyaltyctl commit --url "$agent_url" --pos-txn-id CI-2 --card "$card" --line LATTE:Coffee:1:320 \
  >/dev/null
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "loyalty-agent did not exit 0 on SIGTERM"
pids=()
unsynced="$(loyaltyctl doctor --pending)"
[ "$unsynced" -ge 1 ] || fail "expected unsynced events (the visit and purchase of CI-2), got $unsynced"
dpkg -i "$agent_deb" >"$tmp/reinstall.log" 2>&1 || { cat "$tmp/reinstall.log"; fail "reinstall"; }
[ "$(loyaltyctl doctor --pending)" = "$unsynced" ] || fail "the reinstall lost unsynced events"
start_agent
health="$(loyaltyctl health --url "$agent_url" --json)"
grep -q "\"pending_events\":\"\\?$unsynced\"\\?" <<<"$health" || fail "agent does not count the event: $health"
kill -TERM "$agent_pid"
wait "$agent_pid" || fail "loyalty-agent did not exit 0 on SIGTERM"
pids=()

step "purge"
apt purge loyalty-agent loyalty-server loyaltyctl >"$tmp/purge.log" 2>&1 \
  || { cat "$tmp/purge.log"; fail "apt-get purge failed"; }
installed=0
grep -q "$unsynced event(s) were never uploaded" "$tmp/purge.log" || fail "purge did not warn about the event"
for p in /proc/[0-9]*; do
  exe="$(readlink "$p/exe" 2>/dev/null || true)"
  case "$exe" in /usr/bin/loyalty-agent* | /usr/bin/loyalty-server*) fail "still running: $p $exe" ;; esac
done
for u in loyalty-agent loyalty-server; do
  getent passwd "$u" >/dev/null && fail "user $u still exists"
  getent group "$u" >/dev/null && fail "group $u still exists"
  [ -e "/var/lib/$u" ] && fail "/var/lib/$u still exists"
  [ -e "/lib/systemd/system/$u.service" ] && fail "$u.service still installed"
  [ -e "/usr/bin/$u" ] && fail "/usr/bin/$u still installed"
done
[ -e /etc/loyalty ] && fail "/etc/loyalty still exists"
[ -e /usr/bin/loyaltyctl ] && fail "/usr/bin/loyaltyctl still installed"
# The documented exception: a database with unsynced events is kept.
ls /var/backups/loyalty-agent/*/agent.db >/dev/null 2>&1 || fail "the unsynced events were not kept"
echo "PASS"
