#!/usr/bin/env bash
# Builds dist/nsroute_VERSION_all.deb with dpkg-deb from the build (npm run build first;
# `npm run deb` does both): the CLI in /usr/lib/nsroute (the loader nsroute.js and its
# chunks/, scripts/build.mjs) with its templates, /usr/bin/nsroute,
# the man page, bash/zsh/fish completions in their standard places, and the docs. A native
# package (no Debian revision): this repository is its upstream. `--lintian` also runs
# lintian on the result and fails on any warning or error (it is clean, pedantic tags too,
# with no overrides). The V8 code caches of the chunks are not in the package: they belong to
# the Node they were made with, so the postinst makes them for the Node installed (and again
# when a package installs another /usr/bin/node: a file trigger), and the prerm removes them.
set -euo pipefail
cd "$(dirname "$0")/.."

for f in dist/nsroute.js dist/chunks.json dist/man/nsroute.1 dist/completion/nsroute dist/completion/_nsroute dist/completion/nsroute.fish; do
  [ -f "$f" ] || { echo "deb.sh: $f is missing: run npm run build first (npm run deb does)" >&2; exit 2; }
done
version="$(node -p 'require("./package.json").version')"
deb="dist/nsroute_${version}_all.deb"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/nsroute"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/nsroute/templates" "$root/usr/lib/nsroute/chunks" "$root/usr/share/man/man1" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$doc"

# Debian's policy: scripts name their interpreter, not /usr/bin/env.
sed '1s|^#!/usr/bin/env node$|#!/usr/bin/node|' dist/nsroute.js > "$root/usr/lib/nsroute/nsroute.js"
chmod 0755 "$root/usr/lib/nsroute/nsroute.js"
# Every chunk the build made (dist/chunks.json lists them), and nothing else from dist/chunks.
node -e 'for (const c of Object.keys(require("./dist/chunks.json"))) console.log(c)' | while IFS= read -r c; do
  install -m 0644 "dist/chunks/$c" "$root/usr/lib/nsroute/chunks/$c"
done
install -m 0644 templates/*.in templates/*.toml "$root/usr/lib/nsroute/templates/"
# Node resolves the symlink, so the loader finds its chunks and templates next to itself.
ln -s ../lib/nsroute/nsroute.js "$root/usr/bin/nsroute"
gzip -9n < dist/man/nsroute.1 > "$root/usr/share/man/man1/nsroute.1.gz"
install -m 0644 dist/completion/nsroute "$root/usr/share/bash-completion/completions/nsroute"
install -m 0644 dist/completion/_nsroute "$root/usr/share/zsh/vendor-completions/_nsroute"
install -m 0644 dist/completion/nsroute.fish "$root/usr/share/fish/vendor_completions.d/nsroute.fish"

install -m 0644 README.md "$doc/README.md"
for f in docs/*.md; do gzip -9n < "$f" > "$doc/$(basename "$f").gz"; done
install -m 0644 templates/profile.example.toml "$doc/profile.example.toml"
date_r="$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
maintainer="nsroute maintainers <maintainers@users.noreply.github.com>"
printf 'nsroute (%s) unstable; urgency=medium\n\n  * Release %s; see the git history of the repository.\n\n -- %s  %s\n' \
  "$version" "$version" "$maintainer" "$date_r" | gzip -9n > "$doc/changelog.gz"
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: nsroute

Files: *
Copyright: 2026 nsroute contributors
License: MIT

Files: usr/lib/nsroute/chunks/*
Copyright: 2026 nsroute contributors; commander, execa and its dependencies, ip-cidr, smol-toml: their authors
License: MIT
Comment: the chunks hold these npm packages, all MIT-licensed.

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
COPYRIGHT
chmod 0644 "$doc/copyright"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: nsroute
Version: $version
Architecture: all
Maintainer: $maintainer
Installed-Size: $size
Depends: nodejs (>= 20), iproute2, nftables, util-linux (>= 2.36)
Recommends: bash-completion
Suggests: udhcpc, iptables
Section: net
Priority: optional
Homepage: https://github.com/nsroute/nsroute
Description: give a program its own route to the network
 nsroute runs one program, and everything it starts, in a network
 namespace with its own gateway and its own DNS servers, while the rest
 of the machine keeps its routes: a slow link for bulk jobs, around or
 through a VPN, per-program DNS. Namespaces are shared by concurrent
 commands, removed with the last one, and the host is left exactly as
 it was. Needs root.
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# The V8 code caches of /usr/lib/nsroute/chunks (src/loader.ts), for the Node installed here:
# made as root into the root-owned chunks directory, again when another /usr/bin/node is
# installed (triggered). Without them nsroute works, only starts slower.
set -e
case "$1" in
  configure | triggered)
    rm -f /usr/lib/nsroute/chunks/*.cache
    node -e 'require("/usr/lib/nsroute/nsroute.js").writeCodeCaches()' ||
      echo "nsroute: could not make the code caches; nsroute works without them, only starts slower" >&2
    ;;
esac
exit 0
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
# The code caches are not files of the package: remove them with it (postinst makes them).
set -e
rm -f /usr/lib/nsroute/chunks/*.cache
exit 0
PRERM
printf 'interest-noawait /usr/bin/node\n' > "$root/DEBIAN/triggers"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
chmod 0644 "$root/DEBIAN/triggers"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 0755 {} +

rm -f dist/nsroute_*_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
if [ "${1:-}" = "--lintian" ]; then
  lintian --fail-on error,warning "$deb"
fi
