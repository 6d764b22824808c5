#!/usr/bin/env bash
# Builds, with no registry, OCI image tarballs named as the images upstream's conformance specs
# run (registry.k8s.io/e2e-test-images/..., registry.k8s.io/pause), from this host's
# busybox-static (bash-static as /bin/sh where present) and the binaries of build.sh.
# busybox, pause, agnhost and nonewprivs behave as upstream's; httpd and nginx are stand-ins
# (busybox httpd on :80 with the same document roots), so a spec that inspects those servers'
# own output can differ. sample-apiserver (k8s.io/sample-apiserver v0.37.2) and etcd (the
# etcd server skiff embeds) are the real servers, static, where the Aggregator spec runs them
# (/sample-apiserver as entrypoint, /usr/local/bin/etcd). Each tarball holds one image under
# every name listed for it.
# Usage: images.sh [OUTDIR]   (default $E2E/images; an image whose tarball is there already,
#        built by this very script, is kept; FORCE=1 rebuilds)
# Needs: build.sh first; busybox-static, curl, netcat-openbsd, dnsutils (dig, nslookup, host)
#        on the host (copied into agnhost).
set -euo pipefail
E2E=${E2E:-$HOME/.cache/upstream-e2e}
BIN=$E2E/bin
OUT=${1:-$E2E/images}
mkdir -p "$OUT"
# a tarball is kept only when this script, as it is now, built it (FILE.recipe holds its hash)
RECIPE=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
for b in agnhost pause nnp sample-apiserver etcd; do [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run build.sh first" >&2; exit 1; }; done
[ -x /bin/busybox ] || { echo "install busybox-static" >&2; exit 1; }

# image NAME ENTRYPOINT-JSON CMD-JSON USER POPULATE [MORE NAMES...]: one single-layer image
image() {
  local name=$1 entrypoint=$2 cmd=$3 user=$4 populate=$5; shift 5
  local file; file="$OUT/$(echo "${name#*/}" | tr '/:' '__').tar"
  if [ -z "${FORCE:-}" ] && [ -s "$file" ] && [ "$(cat "$file.recipe" 2>/dev/null)" = "$RECIPE" ]; then echo "present $file"; return; fi
  local work; work=$(mktemp -d)
  local root=$work/rootfs layout=$work/layout
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var/run,usr/bin,sbin,usr/sbin,usr/local/bin} "$layout/blobs/sha256"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
  # Debian's busybox ash drops environment variables whose names are not identifiers (such as
  # "data-1" from envFrom) when it execs a child; upstream's busybox keeps them, as bash does.
  if [ -x /bin/bash-static ]; then rm -f "$root/bin/sh"; cp /bin/bash-static "$root/bin/sh"; ln -sf sh "$root/bin/bash"; fi
  "$populate" "$root"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$root" -cf "$work/layer.tar" .
  local diff_id; diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -1 -n -c "$work/layer.tar" > "$work/layer.tar.gz"
  local layer layer_size; layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1); layer_size=$(stat -c %s "$work/layer.tar.gz")
  mv "$work/layer.tar.gz" "$layout/blobs/sha256/$layer"
  local entrypoint_json="" user_json=""
  [ -n "$entrypoint" ] && entrypoint_json="\"Entrypoint\":$entrypoint,"
  [ -n "$user" ] && user_json="\"User\":\"$user\","
  printf '{"architecture":"amd64","os":"linux","config":{%s%s"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entrypoint_json" "$user_json" "$cmd" "$diff_id" > "$work/config.json"
  local config config_size; config=$(sha256sum "$work/config.json" | cut -d' ' -f1); config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$layout/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
  local manifest manifest_size; manifest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1); manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$layout/blobs/sha256/$manifest"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  local entries="" n
  for n in "$name" "$@"; do
    entries+="${entries:+,}$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
      "$manifest" "$manifest_size" "$n" "${n##*:}")"
  done
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "$entries" > "$layout/index.json"
  tar --numeric-owner --owner=0 --group=0 -C "$layout" -cf "$file" oci-layout index.json blobs
  rm -rf "$work"
  echo "$RECIPE" > "$file.recipe"
  echo "built $file ($name $*)"
}
# copy_binary ROOT SRC DEST: a dynamically linked binary with the libraries ldd lists
copy_binary() {
  local root=$1 src=$2 dst=$3 lib
  mkdir -p "$root$(dirname "$dst")"; cp -L "$src" "$root$dst"
  for lib in $(ldd "$src" | grep -oE '/[^ ]+'); do mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; done
}
nothing() { :; }
pause() { cp "$BIN/pause" "$1/pause"; }
agnhost() { # upstream: ENTRYPOINT ["/agnhost"] CMD ["pause"], on alpine with curl, netcat, bind-tools
  cp "$BIN/agnhost" "$1/agnhost"; mkdir -p "$1/uploads"
  # as alpine's: the ImageVolume spec reads it through a volume of kitten, which is agnhost's
  printf 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.21.3\nPRETTY_NAME="Alpine Linux v3.21"\nHOME_URL="https://alpinelinux.org/"\n' > "$1/etc/os-release"
  ln -s /agnhost "$1/usr/local/bin/test-webserver"
  ln -s /agnhost "$1/agnhost-2"
  local src; src=$(go env GOMODCACHE)/k8s.io/kubernetes@v1.37.2/test/images/agnhost
  cp "$src/porter/localhost.crt" "$src/porter/localhost.key" "$1/"
  echo 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh' >> "$1/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >> "$1/etc/group"
  local pair
  for pair in /usr/bin/curl:/usr/bin/curl /bin/nc.openbsd:/usr/bin/nc /usr/bin/dig:/usr/bin/dig \
              /usr/bin/nslookup:/usr/bin/nslookup /usr/bin/host:/usr/bin/host /usr/bin/getent:/usr/bin/getent; do
    [ -x "${pair%%:*}" ] && copy_binary "$1" "${pair%%:*}" "${pair##*:}"
  done
}
httpd() { # stand-in for httpd 2.4: busybox httpd on :80, document root /usr/local/apache2/htdocs
  mkdir -p "$1/usr/local/apache2/htdocs"
  echo '<html><body><h1>It works!</h1></body></html>' > "$1/usr/local/apache2/htdocs/index.html"
  printf '#!/bin/sh\ntrap '\''kill $p 2>/dev/null; exit 0'\'' TERM INT\nhttpd -f -p 80 -h /usr/local/apache2/htdocs & p=$!\nwait $p\n' > "$1/usr/local/bin/httpd-foreground"
  chmod +x "$1/usr/local/bin/httpd-foreground"
}
nginx() { # stand-in for nginx 1.2x: busybox httpd on :80, document root /usr/share/nginx/html
  mkdir -p "$1/usr/share/nginx/html"
  echo '<html><body><h1>Welcome to nginx!</h1></body></html>' > "$1/usr/share/nginx/html/index.html"
  printf '#!/bin/sh\ntrap '\''kill $p 2>/dev/null; exit 0'\'' TERM INT QUIT\nhttpd -f -p 80 -h /usr/share/nginx/html & p=$!\nwait $p\n' > "$1/usr/sbin/nginx"
  chmod +x "$1/usr/sbin/nginx"
}
nonewprivs() { cp "$BIN/nnp" "$1/usr/local/bin/nnp"; chmod 4755 "$1/usr/local/bin/nnp"; }
kitten() { agnhost "$1"; printf '{"image": "kitten.jpg"}' > "$1/data.json"; echo jpg > "$1/kitten.jpg"; }
nautilus() { agnhost "$1"; printf '{"image": "nautilus.jpg"}' > "$1/data.json"; echo jpg > "$1/nautilus.jpg"; }
sample_apiserver() { cp "$BIN/sample-apiserver" "$1/sample-apiserver"; } # upstream: ENTRYPOINT ["/sample-apiserver"]
etcd() { cp "$BIN/etcd" "$1/usr/local/bin/etcd"; }

E=registry.k8s.io/e2e-test-images
image registry.k8s.io/pause:3.10.2 '["/pause"]' 'null' "" pause registry.k8s.io/pause:3.10 registry.k8s.io/pause:3.9
image $E/busybox:1.37.0-2 '' '["sh"]' "" nothing $E/busybox:1.36.1-1 docker.io/library/busybox:latest
image $E/agnhost:2.66.1 '["/agnhost"]' '["pause"]' "" agnhost $E/agnhost:2.55 gcr.io/k8s-authenticated-test/agnhost:2.6
image $E/httpd:2.4.38-4 '' '["httpd-foreground"]' "" httpd $E/httpd:2.4.39-4
image $E/nginx:1.27.0-2 '' '["nginx","-g","daemon off;"]' "" nginx $E/nginx:1.28.0-2
image $E/nonroot:1.5 '' '["sh"]' "1234" nothing
image $E/kitten:1.8 '["/agnhost"]' '["test-webserver"]' "" kitten
image $E/nautilus:1.8 '["/agnhost"]' '["test-webserver"]' "" nautilus
image $E/glibc-dns-testing:2.1.1 '' '["sh"]' "" agnhost
image $E/nonewprivs:1.4 '["/usr/local/bin/nnp"]' 'null' "" nonewprivs
image $E/sample-apiserver:1.29.2 '["/sample-apiserver"]' 'null' "" sample_apiserver
image registry.k8s.io/etcd:3.7.0-0 '' '["/usr/local/bin/etcd"]' "" etcd
echo "images in $OUT"
