#!/usr/bin/env bash
# Installs warden as a systemd service, in a layout whose includes work as installed:
#
#   /usr/local/bin/warden
#   /etc/warden/warden.toml            the default config (kept if one is there already)
#   /etc/warden/alerts/*.toml          the rule sets configs include ("alerts/NAME.toml")
#   /etc/warden/examples/*.toml        the five runbook examples ("../alerts/NAME.toml")
#   /etc/systemd/system/warden.service
#
# then checks every installed config with `warden check-config`. It does not start anything:
# it prints the systemctl commands that do.
#
# Usage: scripts/install.sh [--destdir DIR] [--binary PATH]
#   --destdir DIR   install under DIR instead of / (packaging, or a try-out)
#   --binary PATH   install this warden binary instead of building target/release/warden
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

destdir=""
binary=""
while (($#)); do
    case "$1" in
        --destdir) destdir="${2:?--destdir needs a directory}"; shift 2 ;;
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -z "$binary" ]]; then
    cargo build --release --locked
    binary=target/release/warden
fi
[[ -x "$binary" ]] || { echo "install: $binary is not an executable" >&2; exit 1; }
if [[ -z "$destdir" && $(id -u) -ne 0 ]]; then
    echo "install: writing to /usr/local and /etc needs root (or use --destdir)" >&2
    exit 1
fi

bin="$destdir/usr/local/bin"
etc="$destdir/etc/warden"
unit="$destdir/etc/systemd/system"

install -d -m 0755 "$bin" "$etc" "$etc/alerts" "$etc/examples" "$unit"
install -m 0755 "$binary" "$bin/warden"
# A file already there may hold your edits: it is kept, and the shipped one goes beside it as
# NAME.new (unless they are the same).
place() {
    local from="$1" to="$2"
    if [[ -e "$to" ]] && ! cmp -s "$from" "$to"; then
        install -m 0644 "$from" "$to.new"
        echo "install: kept your $to; the shipped one is $to.new"
    else
        install -m 0644 "$from" "$to"
    fi
}
for f in alerts/*.toml; do place "$f" "$etc/alerts/$(basename "$f")"; done
for f in config/examples/*.toml; do place "$f" "$etc/examples/$(basename "$f")"; done
place config/warden.toml "$etc/warden.toml"
install -m 0644 systemd/warden.service "$unit/warden.service"

# Every installed config must load as installed (includes resolve inside /etc/warden).
status=0
for config in "$etc/warden.toml" "$etc"/examples/*.toml; do
    if ! "$bin/warden" check-config -c "$config"; then
        status=1
    fi
done
if ((status)); then
    echo "install: an installed config does not load (above); fix it before starting warden" >&2
    exit 1
fi

if [[ -z "$destdir" ]]; then
    cat <<'EOF'
install: done. Start warden and follow it:
  sudo systemctl daemon-reload && sudo systemctl enable --now warden
  systemctl status warden          # "watching N checks with M rules"
EOF
fi
