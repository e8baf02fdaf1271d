# Shared by scripts/quickstart and scripts/test: apt packages and the virtualenv.

apt_install() {  # install the Debian packages that are not there yet (root only)
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "note: not installing ${missing[*]} (needs root and apt-get)" >&2
    return 0
  fi
  # Packages such as containerd and postgresql start system services when
  # installed; the tests run their own private instances, so forbid that.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  local status=0
  { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null; } || status=$?
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
  return "$status"
}

bootstrap_python() {  # a working python3 with venv, and .venv with an up-to-date pip
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv
  fi
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
}
