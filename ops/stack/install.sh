# Installing what the stack needs. Every step checks first, so a warm `make up` costs
# a few dpkg/stat calls and never touches the network.

APT_PACKAGES=(clickhouse-server clickhouse-client postgresql redis-server prometheus docker-compose)

missing_apt_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || printf '%s\n' "$pkg"
  done
  command -v java >/dev/null || printf '%s\n' openjdk-17-jre-headless
  command -v mvn >/dev/null || printf '%s\n' maven
  command -v python3 >/dev/null || printf '%s\n' python3
  # Debian's own python3 ships venv without ensurepip; the python3-venv package adds it.
  python3 -c 'import ensurepip' >/dev/null 2>&1 || printf '%s\n' python3-venv
  # A C compiler and Python's headers compile the per-event modules (install_native).
  command -v gcc >/dev/null || printf '%s\n' gcc
  python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_path("include") + "/Python.h"))' \
    >/dev/null 2>&1 || printf '%s\n' python3-dev
}

install_apt() {
  local missing created_policy=0
  mapfile -t missing < <(missing_apt_packages | sort -u)
  if ((${#missing[@]} == 0)); then
    say "packages: installed"
    return 0
  fi
  say "packages: installing ${missing[*]} (output in $SETUP_LOG)"
  # Debian's maintainer scripts would start their own postgres/redis/clickhouse on our
  # ports; a policy-rc.d that answers 101 forbids that. Only ours is removed afterwards.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  quiet apt-get update
  quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  if ((created_policy)); then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
}

# The jar set is a pure function of the pom: re-resolve (into an empty dir, so jars of an
# old version do not linger on the classpath) only when the pom changed.
install_kafka_jars() {
  local pom=$ROOT/ops/kafka/pom.xml libs=$STACK/kafka/libs stamp=$STACK/kafka/libs.sha256 sum
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$sum" ]] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    say "kafka jars: present"
    return 0
  fi
  rm -rf "$libs"
  mkdir -p "$libs"
  quiet mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime
  printf '%s\n' "$sum" >"$stamp"
  say "kafka jars: resolved ($(ls "$libs" | wc -l) jars)"
}

# pip runs only when pyproject.toml or the pinned versions changed since the last successful
# install.
install_venv() {
  local venv=$ROOT/.venv stamp=$STACK/venv.sha256 sum constraints=$ROOT/ops/stack/constraints.txt
  sum=$(cat "$ROOT/pyproject.toml" "$constraints" | sha256sum | cut -d' ' -f1)
  if [[ -x $venv/bin/python && -f $stamp && $(<"$stamp") == "$sum" ]]; then
    say "venv: up to date"
    return 0
  fi
  rm -f "$stamp"
  [[ -x $venv/bin/python ]] || quiet python3 -m venv "$venv"
  quiet "$venv/bin/python" -m pip install --disable-pip-version-check -q -c "$constraints" -e "$ROOT[test]"
  printf '%s\n' "$sum" >"$stamp"
  say "venv: installed"
}

# The per-event modules compiled with mypyc (issue 16); a build that fails leaves them Python.
# Rebuilt only when a source changed (its own stamp); an app running the old build keeps it.
install_native() {
  say "$("$ROOT/.venv/bin/python" "$ROOT/ops/stack/native.py")"
}
