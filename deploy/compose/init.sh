#!/bin/sh
# The compose tree's one-shot `init` service (deploy/compose.yaml): the CA and every
# certificate of the tree, made with `bottomline pki`, and the province's first dashboard
# account. Safe to run again: what exists is kept.
#
#   docker compose run --rm init                       # (what `up` runs) make what is missing
#   docker compose run --rm init list                  # bottomline pki list
#   docker compose run --rm init revoke node-610103    # revoke, then publish the new crl.pem
#   docker compose run --rm init renew node-610102     # renew, then publish (restart that node)
#   docker compose run --rm init refresh-crl           # re-sign crl.pem (fresh 30 days), publish
#
# Two volumes: `ca` (the CA directory: ca.key and the register never leave it) and `certs`
# (what the nodes mount read-only at /etc/bottomline/pki: ca.pem, crl.pem, certs/*). In a real
# deployment every machine receives only its own certificate and key.
set -eu

BIN=${BOTTOMLINE:-bottomline}
CA=${BOTTOMLINE_CA_DIR:-/var/lib/bottomline-ca}
OUT=${BOTTOMLINE_CERTS_DIR:-/etc/bottomline/pki}
PROVINCE=${PROVINCE_CONFIG:-/etc/bottomline/province.toml}

# Copy what the nodes need from the CA directory into $OUT, each file by an atomic rename
# (a node re-reads crl.pem every crl_reload_secs and must never see half a file).
publish() {
    mkdir -p "$OUT/certs"
    for f in "$CA/ca.pem" "$CA/crl.pem" "$CA"/certs/*.pem "$CA"/certs/*.key; do
        [ -f "$f" ] || continue
        rel=${f#"$CA"/}
        cp -p "$f" "$OUT/$rel.tmp"
        mv -f "$OUT/$rel.tmp" "$OUT/$rel"
    done
    echo "published ca.pem, crl.pem and $(ls "$OUT"/certs/*.pem | wc -l) certificates to $OUT"
}

# issue STEM ARGS...: issue unless the stem already has a certificate.
issue() {
    stem=$1
    shift
    if [ -f "$CA/certs/$stem.pem" ]; then
        echo "$stem: exists"
    else
        "$BIN" pki issue --dir "$CA" "$@"
    fi
}

if [ $# -gt 0 ]; then
    cmd=$1
    shift
    "$BIN" pki "$cmd" --dir "$CA" "$@"
    case $cmd in list) ;; *) publish ;; esac
    exit 0
fi

[ -f "$CA/ca.pem" ] || "$BIN" pki init --dir "$CA" --name Compose
# Nodes and the relay are reached by their service names on the compose networks;
# localhost and 127.0.0.1 let `docker compose exec SERVICE bottomline status` verify them.
local_names="--dns localhost --ip 127.0.0.1"
# shellcheck disable=SC2086
{
    issue node-61 --division 61 --dns province $local_names
    issue node-6101 --division 6101 --dns city-6101 $local_names
    issue node-610102 --division 610102 --dns county-610102 $local_names
    issue node-610103 --division 610103 --dns county-610103 $local_names
    issue relay-r6101 --relay r6101 --dns relay-r6101 $local_names
}
# A person at the province: `status`, `tickets`, `stats --addr` from the host or a container.
issue operator-admin --operator admin --division 61 --role operator
publish

# The province's dashboard listens on 0.0.0.0 inside its container (published on the host's
# loopback): it needs an account. The password is BOTTOMLINE_ADMIN_PASSWORD, or one made here
# and kept in the `ca` volume (read it with `docker compose run --rm --entrypoint cat init
# /var/lib/bottomline-ca/admin-password`).
if "$BIN" user list --config "$PROVINCE" 2>/dev/null | grep -q '^admin[[:space:]]'; then
    echo "dashboard account admin: exists"
else
    pw=${BOTTOMLINE_ADMIN_PASSWORD:-}
    if [ -z "$pw" ]; then
        pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        (umask 077 && printf '%s\n' "$pw" >"$CA/admin-password")
        echo "dashboard account admin: password written to $CA/admin-password"
    fi
    printf '%s\n' "$pw" | "$BIN" user add admin --role operator --config "$PROVINCE" --password-stdin
fi
