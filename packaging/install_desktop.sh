#!/bin/sh
# Install the built bundle for the current user: the program folder, a command on PATH, the icon and the menu entry.
#   sh packaging/install_desktop.sh [BUNDLE_DIR]      (default dist/ModelWorkbench; undo with --uninstall)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
APPDIR=$HOME/.local/lib/model-workbench
BIN=$HOME/.local/bin
ICONS=$DATA/icons/hicolor

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$APPDIR"
    rm -f "$BIN/ModelWorkbench" "$DATA/applications/model-workbench.desktop" \
          "$ICONS/256x256/apps/model-workbench.png" "$ICONS/scalable/apps/model-workbench.svg"
    echo "removed Model Workbench from $HOME/.local"
    exit 0
fi

BUNDLE=${1:-$HERE/../dist/ModelWorkbench}
if [ ! -x "$BUNDLE/ModelWorkbench" ]; then
    echo "error: no bundle at $BUNDLE; build it first with 'make package'" >&2
    exit 2
fi
RESOURCES="$BUNDLE/_internal/workbench/resources/icons"

mkdir -p "$HOME/.local/lib" "$BIN" "$DATA/applications" "$ICONS/256x256/apps" "$ICONS/scalable/apps"
# Copy into a temporary folder first, then swap it in, so an interrupted copy never leaves half an app.
rm -rf "$APPDIR.new"
cp -a "$BUNDLE" "$APPDIR.new"
rm -rf "$APPDIR"
mv "$APPDIR.new" "$APPDIR"
ln -sf "$APPDIR/ModelWorkbench" "$BIN/ModelWorkbench"
cp "$RESOURCES/model-workbench.png" "$ICONS/256x256/apps/model-workbench.png"
cp "$RESOURCES/model-workbench.svg" "$ICONS/scalable/apps/model-workbench.svg"
# The entry names the program by its full path: a menu does not always search ~/.local/bin.
sed "s|^Exec=ModelWorkbench|Exec=\"$APPDIR/ModelWorkbench\"|" "$HERE/model-workbench.desktop" \
    > "$DATA/applications/model-workbench.desktop"
echo "installed Model Workbench in $APPDIR (menu entry: $DATA/applications/model-workbench.desktop)"
