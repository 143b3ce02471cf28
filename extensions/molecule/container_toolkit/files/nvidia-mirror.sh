#!/bin/sh
# Lays out a signed flat apt repository at $1 with the same layout and package names as
# NVIDIA's (NVIDIA's is unreachable here): InRelease signed by a key made for the test,
# that key ASCII-armored as $1/gpgkey, and for each of the versions given after $2 (the
# fake nvidia-ctk) the four toolkit packages, built with dpkg-deb. The packages are
# simulated: nvidia-container-toolkit-base carries only the fake nvidia-ctk; the others are
# empty. apt checks the signature and the checksums as it would NVIDIA's.
set -eu
mirror=$1
ctk=$2
shift 2
repo=$mirror/deb
rm -rf "$mirror"
mkdir -p "$repo"
work=$(mktemp -d)
export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"

build() { # name version depends [file-source file-target]
  root="$work/$1_$2"
  mkdir -p "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<CONTROL
Package: $1
Version: $2
Architecture: all
Maintainer: kubegpu molecule test bench
Depends: $3
Description: simulated $1 for the container_toolkit molecule scenario
CONTROL
  if [ $# -eq 5 ]; then
    mkdir -p "$root$(dirname "$5")"
    sed "s/@VERSION@/${2%-*}/" "$4" >"$root$5"
    chmod 0755 "$root$5"
  fi
  dpkg-deb --root-owner-group --build "$root" "$repo/$1_$2_all.deb" >/dev/null
}

for version in "$@"; do
  build libnvidia-container1 "$version" "libc6"
  build libnvidia-container-tools "$version" "libnvidia-container1 (= $version)"
  build nvidia-container-toolkit-base "$version" "libc6" "$ctk" /usr/bin/nvidia-ctk
  build nvidia-container-toolkit "$version" "nvidia-container-toolkit-base (= $version), libnvidia-container-tools (= $version)"
done

cd "$repo"
for deb in *.deb; do
  dpkg-deb --field "$deb"
  echo "Filename: ./$deb"
  echo "Size: $(stat -c %s "$deb")"
  echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
  echo
done >Packages
{
  echo "Origin: kubegpu molecule test mirror"
  echo "Label: nvidia-container-toolkit (simulated)"
  echo "Date: $(date -Ru)"
  echo "SHA256:"
  echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"
} >Release
gpg --batch --quiet --passphrase '' --quick-gen-key 'kubegpu molecule test mirror' ed25519 sign never
gpg --batch --quiet --yes --clearsign --output InRelease Release
gpg --batch --quiet --armor --export >"$mirror/gpgkey"
gpgconf --kill gpg-agent
rm -rf "$work"
