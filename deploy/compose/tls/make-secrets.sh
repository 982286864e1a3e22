#!/bin/sh
# Creates what docker-compose.tls.yml mounts, in ./secrets (or the folder given): a CA, the
# certificate of the agent and the gateway (names gpulse, gateway, localhost), Prometheus's client
# certificate, a random basic-auth password and the web configuration with its bcrypt hash.
# Needs openssl and gpulse (on PATH, or this repository built: npm ci).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/secrets"}
if command -v gpulse >/dev/null 2>&1; then
  gpulse() { command gpulse "$@"; }
else
  gpulse() { node "$here/../../../dist/agent/main.js" "$@"; }
fi
mkdir -p "$out"
cd "$out"
umask 077
ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'
# shellcheck disable=SC2086 # $ec is several arguments
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 825 -subj '/CN=gpulse compose CA' 2>/dev/null
issue() {
  # shellcheck disable=SC2086
  openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf '%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server 'subjectAltName=DNS:gpulse,DNS:gateway,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth'
issue prometheus 'subjectAltName=DNS:prometheus
extendedKeyUsage=clientAuth'
openssl rand -hex 16 > password
hash=$(tr -d '\n' < password | gpulse web-config hash)
sed "s|REPLACED_BY_MAKE_SECRETS|'$hash'|" "$here/web-config.yml" > web-config.yml
gpulse web-config check web-config.yml
# The containers run as other users than the one running this script: let them read, not write.
chmod 0644 ./*.crt ./*.key password web-config.yml
rm -f ca.key ca.srl
echo "secrets in $out; the basic-auth password of user prometheus is in $out/password"
