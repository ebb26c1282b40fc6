#!/usr/bin/env bash
# serve.sh DIR CERT KEY PORTFILE: the loopback secrets service for the
# benchmarks. Serves the files of DIR over HTTPS on 127.0.0.1 with OpenSSL's
# s_server (TLS 1.3, the suite's own CA), a C server whose side of each
# handshake costs little, so the figures are mostly agent-init's. Picks a
# free port, writes it to PORTFILE once the server accepts, and execs the
# server, so the caller's $! is the server's PID.
set -euo pipefail
dir=$1 cert=$2 key=$3 portfile=$4
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(
  for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      echo "$port" > "$portfile"
      exit 0
    fi
    sleep 0.1
  done
) &
cd "$dir"
exec openssl s_server -quiet -WWW -accept "127.0.0.1:$port" -cert "$cert" -key "$key" > /dev/null 2>&1
