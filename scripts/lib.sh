# Shared by scripts/test.sh and bench/run.sh (sourced, not run).

# apt_need NAME:PACKAGE...: installs, in one apt-get call, the Debian package
# of every NAME that is neither a command on PATH nor an executable path.
# Idempotent: nothing is fetched when every NAME is already there.
apt_need() {
  local pair bin pkg missing=()
  for pair in "$@"; do
    bin=${pair%%:*}; pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$0: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
