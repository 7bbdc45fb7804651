#!/usr/bin/env bash
# Installs the real servers and tools the integration tests talk to (Debian packages).
#
# Idempotent: installs only what is missing, and runs `apt-get update` only then. Package
# postinst scripts are kept from starting services (the tests start their own servers on free
# loopback ports). Needs root to install; works without stdin.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# systemd: only for `systemd-analyze verify|security` on the shipped unit (nothing is started).
# prometheus-alertmanager: the alertmanager notifier is tested against a real one.
packages=(redis-server postgresql-15 prometheus prometheus-alertmanager monitoring-plugins-basic python3-aiosmtpd systemd)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-test-deps: missing ${missing[*]}, and not root: install them first" >&2
        exit 1
    fi
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# written by warden scripts/install-test-deps.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup() {
        if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    }
    trap cleanup EXIT
    echo "install-test-deps: installing ${missing[*]}"
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null
    cleanup
    trap - EXIT
fi

# postgres refuses to run as root: the harness runs initdb and postgres as this user.
if ! id -u postgres >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-test-deps: no postgres user, and not root to create it" >&2
        exit 1
    fi
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
    echo "install-test-deps: created the postgres user"
fi

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
echo "install-test-deps: ok: redis-server $(command -v redis-server || echo missing)," \
    "postgres ${pg_bin:-missing}, promtool $(command -v promtool || echo missing)," \
    "alertmanager $(command -v prometheus-alertmanager || echo missing)," \
    "check_tcp $( [[ -x /usr/lib/nagios/plugins/check_tcp ]] && echo present || echo missing)," \
    "aiosmtpd $(/usr/bin/python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null || echo missing) (use /usr/bin/python3)"
