#!/bin/sh
# The agent of the storm: a no-op that checks it got every secret.
# Usage: check.sh MARKER EXPECTED
#   EXPECTED holds NAME=VALUE lines; each NAME must be in this process's
#   environment with exactly that VALUE, and the bootstrap token must not be.
# Writes "ok N" to MARKER when all N match, "partial M of N" otherwise.
# Builtins only: 200 of these start at once on two cores.
marker=$1
expected=$2
n=0
bad=0
while IFS= read -r line; do
  name=${line%%=*}
  want=${line#*=}
  eval "got=\${$name-__unset__}"
  [ "$got" = "$want" ] || bad=$((bad + 1))
  n=$((n + 1))
done < "$expected"
[ -z "${LIVEKIT_BOOTSTRAP_TOKEN+set}" ] || bad=$((bad + 1))
if [ "$bad" -eq 0 ] && [ "$n" -gt 0 ]; then
  echo "ok $n" > "$marker"
else
  echo "partial $bad of $n" > "$marker"
  exit 1
fi
