#!/bin/sh
# Issues the certificates of a gpulse fleet with openssl: one CA, the broker's certificate, and one
# client certificate per device (CN = its node id) and per gateway (CN = gpulse-gateway).
#
#   issue-certs.sh DIR ca                      DIR/ca.crt, DIR/ca.key (keep ca.key offline)
#   issue-certs.sh DIR server NAME [IP]        DIR/server.crt, DIR/server.key for the broker
#   issue-certs.sh DIR client CN               DIR/CN.crt, DIR/CN.key for a device or gateway
#
# Keys are P-256 ECDSA, created with umask 077. Device certificates are valid 2 years; rotate
# them by issuing a new one with the same CN (the ACL keys on the CN, not on the certificate).
set -eu

usage() {
  sed -n '2,9p' "$0" >&2
  exit 2
}

[ $# -ge 2 ] || usage
dir=$1
kind=$2
umask 077
mkdir -p "$dir"
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT

case $kind in
ca)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -subj "/CN=gpulse fleet CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  ;;
server)
  [ $# -ge 3 ] || usage
  name=$3
  san="DNS:$name"
  if [ $# -ge 4 ]; then san="$san,IP:$4"; fi
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' "$san" >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$name"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/server.crt" -days 825 -extfile "$ext"
  rm -f "$dir/server.csr"
  ;;
client)
  [ $# -ge 3 ] || usage
  cn=$3
  # The CN becomes the MQTT user name and a topic level: same rules as gpulse's node ids.
  if ! printf '%s' "$cn" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'; then
    echo "issue-certs.sh: CN \"$cn\" must be 1-64 letters, digits, '.', '-' or '_'" >&2
    exit 2
  fi
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$cn.key" -out "$dir/$cn.csr" -subj "/CN=$cn"
  openssl x509 -req -in "$dir/$cn.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/$cn.crt" -days 730 -extfile "$ext"
  rm -f "$dir/$cn.csr"
  ;;
*)
  usage
  ;;
esac
