#!/bin/sh
# Install code-server (a real VS Code in the browser) from npm into DIR, offline-registry style.
#
#   e2e/install-code-server.sh DIR
#
# code-server's own postinstall (`npm install` in lib/vscode) fails on machines that reach only
# package registries: @vscode/ripgrep 1.15 downloads rg from GitHub. So this script does the same
# steps as code-server's postinstall.sh, but takes rg from the npm package
# @vscode/ripgrep-linux-x64 (the binary VS Code's newer ripgrep package ships). Needs Node 20
# (code-server 4.100.x requires it), and for the native modules: python3, make, g++,
# pkg-config and libkrb5-dev (Debian).
set -eu

VERSION="${CODE_SERVER_VERSION:-4.100.3}"
RG_VERSION="${RIPGREP_NPM_VERSION:-1.18.0}"
DIR="${1:?usage: install-code-server.sh DIR}"

case "$(node --version)" in
  v20.*) ;;
  *) echo "error: code-server $VERSION needs Node 20, found $(node --version)" >&2; exit 2 ;;
esac

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CS="$DIR/node_modules/code-server"
if [ -x "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg" ] && [ -f "$DIR/.complete-$VERSION" ]; then
  echo "code-server $VERSION already installed in $DIR"
  exit 0
fi

# npm_config_yes: node-pty's postinstall runs `npx node-gyp` (a ~/.npmrc with yes=false stops it)
export npm_config_unsafe_perm=true npm_config_yes=true npm_config_audit=false npm_config_fund=false \
  npm_config_update_notifier=false

echo "== code-server $VERSION (without its postinstall)"
npm install --no-save --ignore-scripts --prefix "$DIR" "code-server@$VERSION"
# the top-level packages' own install scripts (argon2), but not code-server's postinstall
(cd "$DIR" && npm rebuild --ignore-scripts=false argon2 >/dev/null 2>&1 || true)

echo "== VS Code's dependencies (lib/vscode)"
cd "$CS/lib/vscode"
npm install --omit=dev --ignore-scripts
RG_TMP="$(mktemp -d)"
(cd "$RG_TMP" && npm pack --silent "@vscode/ripgrep-linux-x64@$RG_VERSION" >/dev/null && tar xzf ./*.tgz)
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$RG_TMP/package/bin/rg" node_modules/@vscode/ripgrep/bin/rg
chmod +x node_modules/@vscode/ripgrep/bin/rg
rm -rf "$RG_TMP"
echo "== building native modules (node-pty, spdlog, kerberos, watcher, ...)"
npm rebuild   # ripgrep's postinstall now sees bin/ and skips its download

# the links code-server's postinstall.sh makes
rm -rf node_modules.asar && ln -s node_modules node_modules.asar
(cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
(cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)

echo "== built-in extensions' dependencies"
cd extensions
npm install --omit=dev

touch "$DIR/.complete-$VERSION"
echo "code-server $VERSION installed: $DIR/node_modules/.bin/code-server"
