#!/usr/bin/env bash
# Installs the Debian packages Headwater needs, only those that are missing, so it
# is cheap to run on every `make`. Add a package to one of the two lists:
#   REQUIRED_PACKAGES  the project does not work without them: failing to install is an error
#     chromium   the headless browser the Studio tests drive with Playwright (tests/studio);
#                Playwright's own browser download is never used
#   OPTIONAL_PACKAGES  the project works without them, less well: failing only warns
#     bubblewrap  sandbox for the `code` node (namespaces, no network, read-only system);
#                 without it code runs in a limited child process (see src/headwater/sandbox)
#     espeak-ng, sox                         audio fixtures for the knowledge upload tests
#     postgresql-server-dev-15, dpkg-dev     building pgvector for PostgreSQL
#
# pgvector: Debian 12 ships no postgresql-15-pgvector package, so when the extension
# is missing it is built from Debian's own pgvector source package (trixie, source
# only: no binary from another release is installed) against the local PostgreSQL.
# Without it the PostgreSQL backend still works, with full-text search only.
set -euo pipefail

install_pgvector() {
  command -v pg_config >/dev/null 2>&1 || return 0
  [ -f "$(pg_config --sharedir)/extension/vector.control" ] && return 0
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] || return 0
  echo "install_system_packages: building pgvector from Debian's source package" >&2
  local sources=/etc/apt/sources.list.d/headwater-pgvector-src.sources
  if [ ! -f "$sources" ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$sources"
  fi
  apt-get update -q >/dev/null
  local work
  work=$(mktemp -d)
  (
    cd "$work" && apt-get source -q pgvector >/dev/null 2>&1 && cd pgvector-*/ \
      && make -s USE_PGXS=1 with_llvm=no PG_CONFIG="$(command -v pg_config)" >/dev/null \
      && make -s USE_PGXS=1 with_llvm=no PG_CONFIG="$(command -v pg_config)" install >/dev/null
  ) || echo "install_system_packages: warning: pgvector could not be built; PostgreSQL knowledge search will be full-text only" >&2
  rm -rf "$work"
}


REQUIRED_PACKAGES=(chromium)
OPTIONAL_PACKAGES=(bubblewrap espeak-ng sox postgresql-server-dev-15 dpkg-dev)

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing_required=()
missing_optional=()
for package in "${REQUIRED_PACKAGES[@]}"; do is_installed "$package" || missing_required+=("$package"); done
for package in "${OPTIONAL_PACKAGES[@]}"; do is_installed "$package" || missing_optional+=("$package"); done
if [ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
  install_pgvector
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install_system_packages: not a Debian system; install yourself: ${missing_required[*]} ${missing_optional[*]}" >&2
  [ ${#missing_required[@]} -eq 0 ]
  exit
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "install_system_packages: not root; install yourself: ${missing_required[*]} ${missing_optional[*]}" >&2
    [ ${#missing_required[@]} -eq 0 ]
    exit
  fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  # The package lists may be missing or stale on a fresh machine: update once and retry.
  "${as_root[@]}" apt-get install -y -q --no-install-recommends "$@" \
    || { "${as_root[@]}" apt-get update -q && "${as_root[@]}" apt-get install -y -q --no-install-recommends "$@"; }
}

if [ ${#missing_required[@]} -gt 0 ]; then
  echo "install_system_packages: installing ${missing_required[*]}" >&2
  apt_install "${missing_required[@]}"
fi
if [ ${#missing_optional[@]} -gt 0 ]; then
  echo "install_system_packages: installing ${missing_optional[*]}" >&2
  apt_install "${missing_optional[@]}" \
    || echo "install_system_packages: warning: could not install ${missing_optional[*]}; continuing without" >&2
fi
install_pgvector
exit 0
