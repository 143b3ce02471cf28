#!/bin/sh
# Runs inside a fresh debootstrap rootfs (chroot) before `docker import`: turns a
# Debian system into a node container that boots systemd as PID 1. Part of the
# image recipe: a change here changes the recipe hash and rebuilds the images.
set -eu
# Units that make no sense in a container (no ttys, no udev, no kernel to tune).
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
    systemd-udev-trigger.service systemd-modules-load.service systemd-sysctl.service \
    systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount systemd-firstboot.service; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
systemctl set-default multi-user.target
# A machine-id is made on first boot, one per container.
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id
# No package lists or downloaded .debs in the image, and the lists directory dated
# 1970: apt's cache_valid_time sees lists that are long out of date, as on a node
# that has not run apt for a while, and a role's apt task must update them.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /tmp/* /var/tmp/*
rm -f /var/lib/apt/periodic/update-success-stamp
touch -d @0 /var/lib/apt/lists
