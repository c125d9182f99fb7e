#!/usr/bin/env bash
# The README's test command: the Rust tests, then the end-to-end suite, which drives the rmcp
# example servers with the official MCP Python and TypeScript SDKs and checks what reached a
# loopback Events API.
#
#   tests/run.sh
#
# Needs cargo and python3 (3.11 to 3.13, with the venv module). The Python dependencies go to
# .venv (created when missing; reinstalled only when tests/e2e/requirements.txt changes).
# Tinybird's Classic CLI, whose pins conflict with those, goes to a venv of its own,
# .venv-tinybird, from tests/e2e/requirements-tinybird.txt (likewise only when that changes); the
# suite calls into it to check the Tinybird project with Tinybird's own parser (`tb check`).
# Needs node and npm (Node.js 20 or later) for the TypeScript SDK client of the suite: its npm
# packages go to tests/e2e/ts/node_modules (`npm ci`, again only when package-lock.json changes).
# Needs promtool and prometheus too (promtool checks the Tinybird project's Prometheus output; a
# loopback Prometheus server scrapes it and answers the dashboard's PromQL): when either is
# missing, run as root on Debian or Ubuntu, the script installs the `prometheus` package that
# brings both.
# Exits non-zero as soon as a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything binds and connects to 127.0.0.1 only; keep any proxy settings away from it.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

step() { printf '\n==> %s\n' "$*"; }

# python_env VENV REQUIREMENTS STAMP: creates the venv when missing and installs the pinned
# requirements file into it, only when the file changed since the last install (its sha256 is
# kept in STAMP, inside the venv).
python_env() {
    local venv=$1 requirements=$2 stamp=$3 wanted
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv"
    fi
    wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
        echo "$wanted" >"$stamp"
    else
        echo "$requirements unchanged, nothing to install"
    fi
}

VENV=.venv
step "python environment ($VENV)"
python_env "$VENV" tests/e2e/requirements.txt "$VENV/.e2e-requirements.sha256"

# tinybird-cli pins click 8.1 and pydantic 2.8, the MCP SDK needs newer ones: the suite reaches
# the CLI through subprocesses (tests/e2e/tinybird_cli.py), never by importing it.
TB_VENV=.venv-tinybird
step "tinybird cli environment ($TB_VENV)"
python_env "$TB_VENV" tests/e2e/requirements-tinybird.txt "$TB_VENV/.tinybird-requirements.sha256"

TS_DIR=tests/e2e/ts
TS_STAMP="$TS_DIR/node_modules/.e2e-package-lock.sha256"

step "node packages ($TS_DIR/node_modules)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node or npm is missing: install Node.js 20 or later with npm (Debian or Ubuntu:" \
        "sudo apt-get install nodejs npm, if the distribution's is recent enough; or a release" \
        "from https://nodejs.org); then run this again" >&2
    exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    echo "Node.js $(node --version) is too old: the MCP TypeScript SDK needs 20 or later" >&2
    exit 1
fi
wanted="$(sha256sum "$TS_DIR/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$TS_STAMP" 2>/dev/null || true)" != "$wanted" ]]; then
    # Exactly what package-lock.json pins (npm ci empties node_modules first).
    npm ci --prefix "$TS_DIR" --no-audit --no-fund --loglevel=error
    echo "$wanted" >"$TS_STAMP"
else
    echo "package-lock.json unchanged, nothing to install"
fi

step "prometheus and promtool"
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    echo "found $(command -v prometheus) and $(command -v promtool)"
elif [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    # A fresh image may have no package lists yet: update only if the first attempt fails.
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
    }
    apt_install || { apt-get update -q && apt_install; }
    if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
        echo "the \`prometheus\` package brought no prometheus or no promtool on PATH" >&2
        exit 1
    fi
else
    echo "prometheus or promtool is missing: install Debian's or Ubuntu's \`prometheus\`" \
        "package (sudo apt-get install --no-install-recommends prometheus), or put the" \
        "prometheus and promtool of a Prometheus release on PATH; then run this again" >&2
    exit 1
fi

step "cargo test --workspace --locked"
cargo test --workspace --locked

# The end-to-end suite runs the receiver's binary and the example servers.
step "cargo build --workspace --bins --examples --locked"
cargo build --workspace --bins --examples --locked

step "end-to-end tests (pytest tests/e2e)"
# Each test is bounded (--timeout); each wait inside a test more tightly.
"$VENV/bin/python" -m pytest tests/e2e -q -s --timeout=60
