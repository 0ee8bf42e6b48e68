#!/bin/sh
# /init of the lab's first-level VM (L1): Debian's kernel under QEMU's emulated AMD SVM, so KVM in
# here is the hardware kind (nested paging), not PVM. Loads the modules, mounts the host's root
# read-only with the project tree, the faasnap cache and the run directory writable (virtio-9p),
# puts /tmp on the ext4 data disk (page cache, mincore and O_DIRECT behave as on a real disk),
# runs the command in a chroot with the caller's environment, writes its exit status and powers
# off. The command's output goes to ttyS1, the kernel's to ttyS0 (lab/run.ts reads both).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

say() { echo "lab-init: $*" > /dev/ttyS0; }
fail() {
  say "FAILED: $*"
  echo "lab-init: $*" > /dev/ttyS1
  poweroff -f
}

while read -r m; do
  insmod "/modules/$m" || fail "insmod $m"
done < /modules.order
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm_amd (does the CPU model have svm?)"
ip link set lo up || fail "loopback"

p9() { mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2" || fail "mount 9p $1 on $2"; }
mkdir -p /lab
p9 run /lab cache=none
. /lab/lab.conf # PROJECT, CACHE, CWD (absolute host paths)

R=/newroot
mkdir -p $R
p9 hostroot $R ro,cache=loose
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs shm $R/dev/shm
mount -t tmpfs run $R/run
mount -t tmpfs vartmp $R/var/tmp
mount -t ext4 -o noatime /dev/vda $R/tmp || fail "data disk"
chmod 1777 $R/tmp
# A project or cache under /tmp (a clone in a temp folder) has no folder on the fresh data disk.
mkdir -p "$R$PROJECT" || fail "no folder for the project at $PROJECT"
p9 project "$R$PROJECT" cache=mmap
if [ -n "$CACHE" ]; then
  mkdir -p "$R$CACHE" || fail "no folder for the cache at $CACHE"
  p9 cache "$R$CACHE" cache=mmap
fi
mkdir -p $R/run/lab
mount --bind /lab $R/run/lab
if [ -d /sys/fs/cgroup ]; then mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2> /dev/null; fi

stty -F /dev/ttyS1 raw -echo 2> /dev/null
say "running the command"
chroot $R /bin/sh /run/lab/cmd.sh < /dev/null > /dev/ttyS1 2>&1
echo $? > /lab/status
sync
umount $R/tmp
poweroff -f
