#!/bin/sh
# Build the local durabench image WITHOUT pulling anything: a busybox-static root
# filesystem imported with `docker import`. The image holds no Python: the docker
# platform bind-mounts the host's Python, the project and its virtualenv read-only
# (and /usr/lib, /usr/lib64 for the shared libraries), so this image works on a
# machine with no registry access. Idempotent: rebuilding replaces the tag.
#
#   apt-get install -y busybox-static     # provides /bin/busybox (statically linked)
#   sh docker/build-local-image.sh [TAG]  # default tag: durabench-local:latest
set -eu
TAG="${1:-durabench-local:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
if ! "$BUSYBOX" --help >/dev/null 2>&1; then
    echo "no static busybox at $BUSYBOX: apt-get install -y busybox-static" >&2
    exit 1
fi
ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" \
    "$ROOT/root" "$ROOT/usr/lib" "$ROOT/usr/lib64" "$ROOT/var/tmp"
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"
done
# merged /usr, as on the host: the dynamic loader and libc come from the host's /usr/lib*
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"
echo "root:x:0:0:root:/root:/bin/sh" >"$ROOT/etc/passwd"
echo "root:x:0:" >"$ROOT/etc/group"
tar -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'CMD ["/bin/sh"]' \
    --message "durabench local image (busybox-static rootfs; host Python bind-mounted)" \
    - "$TAG" >/dev/null
echo "built $TAG"
