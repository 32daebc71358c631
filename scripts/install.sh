#!/usr/bin/env bash
# Installs nsroute from this checkout: system packages, node modules, a bundled build,
# and /usr/local/bin/nsroute. Run as root (sudo bash scripts/install.sh). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "install.sh: run it as root: sudo bash scripts/install.sh" >&2; exit 2; fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Runtime: iproute2 (ip), nftables (nft), util-linux (setpriv, nsenter).
# Test suite only: socat (path servers) and dnsmasq-base (DNS servers in the test world;
# -base is the binary alone: the full dnsmasq package starts a system DNS service).
apt-get install -y -qq --no-install-recommends iproute2 nftables util-linux procps socat dnsmasq-base udhcpc ca-certificates >/dev/null

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install.sh: nsroute needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "  Debian/Ubuntu ship an older one; install Node 20 (e.g. from NodeSource or nvm), then re-run." >&2
  exit 2
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
install -d /usr/local/lib/nsroute
install -m 0755 dist/nsroute.js /usr/local/lib/nsroute/nsroute.js
install -d /usr/local/lib/nsroute/templates
install -m 0644 templates/*.in templates/*.toml /usr/local/lib/nsroute/templates/
ln -sf /usr/local/lib/nsroute/nsroute.js /usr/local/bin/nsroute
echo "nsroute $(nsroute --version) installed as /usr/local/bin/nsroute"
