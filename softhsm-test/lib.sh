# shellcheck shell=bash
# Shared helpers for softhsm-test/dev-server and softhsm-test/run-tests.
#
# Source it, don't run it:   . softhsm-test/lib.sh
#
# Functions:
#   ensure_packages          install softhsm2, opensc (pkcs11-tool) and openssl if missing
#   ensure_cargo             make sure `cargo` is on PATH, or fail with a clear sentence
#   find_softhsm_module      print the path of libsofthsm2.so
#   make_token DIR LABEL     make (or reuse) a SoftHSM2 token under DIR; exports SOFTHSM2_CONF
#   write_config DIR LISTEN LABEL
#                            write DIR/scaivault-pki.toml for that token
#   ensure_venv DIR          make (or reuse) a Python venv with cryptography, pkilint,
#                            schemathesis and openapi-spec-validator;
#                            prints its absolute path on stdout
#
# Everything except the values a function is asked to print goes to stderr,
# so `x=$(ensure_venv ...)` captures only the path.

# Where Debian (and Ubuntu) put the SoftHSM2 PKCS#11 module.
SV_SOFTHSM_DEFAULT_MODULE=/usr/lib/softhsm/libsofthsm2.so

sv_log() { printf '[softhsm-test] %s\n' "$*" >&2; }
sv_die() { printf '[softhsm-test] error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root (CI is), through sudo otherwise.
_sv_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        sv_die "need root to run '$*', but this is not root and sudo is not installed"
    fi
}

_SV_APT_UPDATED=0
# Install Debian packages; runs `apt-get update` at most once per script run.
_sv_apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        sv_die "apt-get not found: install these packages by hand, then re-run: $*"
    if [ "$_SV_APT_UPDATED" -eq 0 ]; then
        sv_log "apt-get update"
        _sv_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        _SV_APT_UPDATED=1
    fi
    sv_log "apt-get install $*"
    _sv_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Print the path of libsofthsm2.so, or nothing (and status 1) if it isn't installed.
# $SCAIVAULT_SOFTHSM_MODULE, when set, wins.
find_softhsm_module() {
    local m
    if [ -n "${SCAIVAULT_SOFTHSM_MODULE:-}" ]; then
        [ -f "$SCAIVAULT_SOFTHSM_MODULE" ] ||
            sv_die "SCAIVAULT_SOFTHSM_MODULE=$SCAIVAULT_SOFTHSM_MODULE does not exist"
        printf '%s\n' "$SCAIVAULT_SOFTHSM_MODULE"
        return 0
    fi
    if [ -f "$SV_SOFTHSM_DEFAULT_MODULE" ]; then
        printf '%s\n' "$SV_SOFTHSM_DEFAULT_MODULE"
        return 0
    fi
    # The module ships in libsofthsm2, which softhsm2 depends on.
    if command -v dpkg >/dev/null 2>&1; then
        m=$(dpkg -L softhsm2 libsofthsm2 2>/dev/null | grep '/libsofthsm2\.so$' | head -n 1 || true)
        if [ -n "$m" ] && [ -f "$m" ]; then
            printf '%s\n' "$m"
            return 0
        fi
    fi
    return 1
}

# softhsm2-util + libsofthsm2.so, pkcs11-tool (opensc) and openssl.
ensure_packages() {
    local pkgs=()
    if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v pkcs11-tool >/dev/null 2>&1; then
        pkgs+=(softhsm2 opensc)
    elif ! find_softhsm_module >/dev/null; then
        pkgs+=(libsofthsm2)
    fi
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        _sv_apt_install "${pkgs[@]}"
    fi
    find_softhsm_module >/dev/null ||
        sv_die "libsofthsm2.so not found after installing softhsm2 (looked at $SV_SOFTHSM_DEFAULT_MODULE and in 'dpkg -L softhsm2 libsofthsm2')"
}

ensure_cargo() {
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
    if ! command -v cargo >/dev/null 2>&1 && [ -n "${HOME:-}" ] && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
    fi
    command -v cargo >/dev/null 2>&1 ||
        sv_die "cargo was not found on PATH (nor in ~/.cargo/bin): install a Rust toolchain (rustup or Debian's cargo) and re-run."
}

# A random PIN: 32 hex characters from the kernel CSPRNG.
_sv_random_pin() {
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# Write $2 to file $1 with mode 0600 (no trailing newline).
_sv_write_secret() {
    (umask 077 && printf '%s' "$2" >"$1")
    chmod 0600 "$1"
}

# Status 0 if the SoftHSM2 instance named by $SOFTHSM2_CONF has a token labelled $1.
_sv_token_exists() {
    softhsm2-util --show-slots 2>/dev/null |
        SV_WANT="$1" awk '
            /^[[:space:]]*Label:/ {
                sub(/^[[:space:]]*Label:[[:space:]]*/, "")
                sub(/[[:space:]]+$/, "")
                if ($0 == ENVIRON["SV_WANT"]) found = 1
            }
            END { exit found ? 0 : 1 }'
}

# make_token DIR LABEL
# Under DIR: tokens/, softhsm2.conf, user-pin and so-pin (0600); initialise a token
# labelled LABEL unless one already exists, so re-running reuses token and keys.
make_token() {
    [ $# -eq 2 ] || sv_die "usage: make_token DIR LABEL"
    local dir=$1 label=$2 pin so_pin
    if [ -z "$label" ] || [ "${#label}" -gt 32 ]; then
        sv_die "token label must be 1 to 32 characters: '$label'"
    fi
    mkdir -p "$dir/tokens"
    dir=$(cd "$dir" && pwd)
    chmod 0700 "$dir" "$dir/tokens"

    cat >"$dir/softhsm2.conf" <<EOF
# SoftHSM2 configuration written by softhsm-test/lib.sh (make_token).
# Tokens live as files under this directory; nothing is shared with the system's
# default SoftHSM2 store.
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
EOF
    export SOFTHSM2_CONF="$dir/softhsm2.conf"

    if _sv_token_exists "$label"; then
        [ -s "$dir/user-pin" ] ||
            sv_die "token '$label' exists under $dir/tokens but $dir/user-pin is missing; remove $dir/tokens to start over"
        sv_log "reusing SoftHSM2 token '$label' in $dir/tokens"
        return 0
    fi

    # Reuse PIN files if they survived (e.g. tokens/ was wiped); otherwise make new ones.
    if [ -s "$dir/user-pin" ]; then pin=$(cat "$dir/user-pin"); else
        pin=$(_sv_random_pin)
        _sv_write_secret "$dir/user-pin" "$pin"
    fi
    if [ -s "$dir/so-pin" ]; then so_pin=$(cat "$dir/so-pin"); else
        so_pin=$(_sv_random_pin)
        _sv_write_secret "$dir/so-pin" "$so_pin"
    fi
    chmod 0600 "$dir/user-pin" "$dir/so-pin"

    sv_log "initialising SoftHSM2 token '$label' in $dir/tokens"
    softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >&2
    _sv_token_exists "$label" || sv_die "softhsm2-util did not create token '$label'"
}

# A TOML basic string.
_sv_toml_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# write_config DIR LISTEN LABEL
# Writes DIR/scaivault-pki.toml: daemon data in DIR, token LABEL of the SoftHSM2
# module, PIN read from DIR/user-pin. Other options keep their defaults
# (see hsm-config/scaivault-pki.toml).
write_config() {
    [ $# -eq 3 ] || sv_die "usage: write_config DIR LISTEN LABEL"
    local dir=$1 listen=$2 label=$3 module
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    module=$(find_softhsm_module) || sv_die "libsofthsm2.so not found; run ensure_packages first"
    cat >"$dir/scaivault-pki.toml" <<EOF
# Written by softhsm-test/lib.sh (write_config) for a SoftHSM2 test token.
# Rewritten on every run; see hsm-config/scaivault-pki.toml for all options.
listen = $(_sv_toml_str "$listen")
data_dir = $(_sv_toml_str "$dir")

[hsm]
module = $(_sv_toml_str "$module")
token_label = $(_sv_toml_str "$label")
pin_file = $(_sv_toml_str "$dir/user-pin")
EOF
    chmod 0600 "$dir/scaivault-pki.toml"
}

# Pick a python3 that can make venvs, installing Debian's python3-venv if needed.
_sv_venv_python() {
    local py
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        command -v python3
        return 0
    fi
    _sv_apt_install python3 python3-venv
    for py in /usr/bin/python3 "$(command -v python3 || true)"; do
        if [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            printf '%s\n' "$py"
            return 0
        fi
    done
    sv_die "no python3 with a working venv module, even after installing python3-venv"
}

# ensure_venv DIR
# A venv at DIR with cryptography (>= 45, for x509.verification), pkilint,
# prometheus-client, schemathesis and openapi-spec-validator.
# Prints the venv's absolute path.
ensure_venv() {
    [ $# -eq 1 ] || sv_die "usage: ensure_venv DIR"
    local dir=$1 py pkgs=()
    # A venv whose interpreter went away (python upgraded, moved) is rebuilt.
    if [ -e "$dir" ] && ! "$dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
        sv_log "rebuilding broken venv $dir"
        rm -rf "$dir"
    fi
    if [ ! -x "$dir/bin/python" ]; then
        py=$(_sv_venv_python)
        sv_log "creating Python venv $dir"
        "$py" -m venv "$dir" >&2
    fi
    dir=$(cd "$dir" && pwd)

    "$dir/bin/python" -c '
import sys, cryptography
sys.exit(0 if int(cryptography.__version__.split(".")[0]) >= 45 else 1)' >/dev/null 2>&1 ||
        pkgs+=('cryptography>=45')
    { "$dir/bin/python" -c 'import pkilint' >/dev/null 2>&1 && [ -x "$dir/bin/lint_pkix_cert" ]; } ||
        pkgs+=(pkilint)
    # The independent parser of GET /metrics (tests/metrics.rs).
    "$dir/bin/python" -c 'import prometheus_client' >/dev/null 2>&1 || pkgs+=(prometheus-client)
    # The API's OpenAPI document: schemathesis runs against the live daemon
    # (softhsm-test/schemathesis); openapi-spec-validator judges the document (tests/openapi.rs).
    [ -x "$dir/bin/schemathesis" ] || pkgs+=('schemathesis>=4.32,<5')
    "$dir/bin/python" -c 'import openapi_spec_validator' >/dev/null 2>&1 ||
        pkgs+=(openapi-spec-validator)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        sv_log "pip install ${pkgs[*]} into $dir"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check "${pkgs[@]}" >&2
    fi
    printf '%s\n' "$dir"
}
