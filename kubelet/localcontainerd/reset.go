package localcontainerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/kubelet/podcgroups"
)

// netnsDirs are where CNI runtimes (containerd's CRI among them) bind-mount the network
// namespaces they make for pods.
var netnsDirs = []string{"/run/netns", "/var/run/netns"}

// Leftovers is what a daemon in a directory, and the pods it ran, hold on this host outside
// that directory's files. It is read from the processes themselves, so it finds them whether
// or not a daemon still answers for them.
type Leftovers struct {
	// Processes are the daemon, its shims and every process of its containers ("pid:
	// cmdline").
	Processes []string
	// NetworkNamespaces are the bind-mounted namespaces (such as /run/netns/cni-...) that a
	// process of theirs is in, other than this process's own.
	NetworkNamespaces []string
	// PodUIDs are the pods whose cgroups (podcgroups.Parent) a process of theirs is in.
	PodUIDs []types.UID
	// Mounts are the mount points beneath the directory.
	Mounts []string
}

// Empty says whether nothing is left.
func (l Leftovers) Empty() bool {
	return len(l.Processes) == 0 && len(l.NetworkNamespaces) == 0 && len(l.PodUIDs) == 0 && len(l.Mounts) == 0
}

// FindLeftovers lists what the daemon in dir and its pods hold on this host: the processes
// whose command line names a path beneath dir (containerd, its shims) or whose root is
// beneath it (the containers), the network namespaces and pod cgroups they are in, and the
// mounts beneath dir.
func FindLeftovers(dir string) (Leftovers, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Leftovers{}, err
	}
	var l Leftovers
	ownNetns, _ := nsInode("/proc/self/ns/net")
	netnsOf := map[uint64]bool{}
	uids := map[types.UID]bool{}
	for _, pid := range processesUnder(dir) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		l.Processes = append(l.Processes, fmt.Sprintf("%d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
		if ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ino != ownNetns {
			netnsOf[ino] = true
		}
		for _, uid := range podUIDsOf(pid) {
			uids[uid] = true
		}
	}
	for _, d := range netnsDirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if ino, err := nsInode(p); err == nil && netnsOf[ino] && !slices.Contains(l.NetworkNamespaces, p) {
				// /var/run is a link to /run: one namespace, listed once
				if real, err := filepath.EvalSymlinks(p); err == nil && slices.Contains(l.NetworkNamespaces, real) {
					continue
				}
				l.NetworkNamespaces = append(l.NetworkNamespaces, p)
			}
		}
	}
	for uid := range uids {
		l.PodUIDs = append(l.PodUIDs, uid)
	}
	slices.Sort(l.PodUIDs)
	l.Mounts, err = mountsUnder(dir)
	return l, err
}

// Reset removes from this host everything the daemon in dir and its pods hold, whether the
// daemon still runs (its owner was killed) or not: through CRI first, as a node's shutdown
// does (a daemon started on dir adopts the shims, then every sandbox is stopped and removed,
// which tears down their network with CNI, and their pods' cgroups), then by force for what
// that left or could not reach (the processes killed, their network namespaces unmounted and
// removed, their pods' cgroups, the pods' bridge, the mounts beneath dir). dir's files stay.
func Reset(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// what the processes hold, before anything stops them: afterwards nothing tells whose
	// a network namespace was
	before, err := FindLeftovers(dir)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := os.Stat(filepath.Join(dir, "config.toml")); err == nil && Missing() == "" {
		if d, err := Start(ctx, dir); err != nil {
			errs = append(errs, fmt.Errorf("start containerd to remove its pods: %w", err))
		} else if err := d.Shutdown(ctx, dir); err != nil {
			errs = append(errs, err)
		}
	}
	// whatever CRI could not remove goes by force
	killProcessesUnder(dir)
	for _, p := range before.NetworkNamespaces {
		if err := removeNetns(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, uid := range before.PodUIDs {
		if err := podcgroups.Remove(uid); err != nil {
			errs = append(errs, err)
		}
	}
	if err := UnmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if err := removePodBridges(filepath.Join(dir, "cni", "net.d")); err != nil {
		errs = append(errs, err)
	}
	after, err := FindLeftovers(dir)
	if err != nil {
		errs = append(errs, err)
	}
	if !after.Empty() {
		errs = append(errs, fmt.Errorf("still on the host: %+v", after))
	}
	return errors.Join(errs...)
}

// processesUnder lists the processes whose command line names a path beneath dir (containerd,
// its shims), and their descendants (the containers, whose own paths are their mount
// namespace's).
func processesUnder(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	parent := map[int]int{}
	named := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// PID (COMM) STATE PPID ...: COMM may hold spaces and parentheses
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 {
				parent[pid], _ = strconv.Atoi(f[1])
			}
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && names(string(cmdline), dir) {
			named[pid] = true
		}
	}
	var pids []int
	for pid := range parent {
		// up the parents, at most as many steps as there are processes (no loop forever)
		for p, steps := pid, 0; p > 1 && steps <= len(parent); p, steps = parent[p], steps+1 {
			if named[p] {
				pids = append(pids, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	return pids
}

// names says whether a NUL-separated command line mentions dir or a path beneath it: dir
// "/x/d" is not named by "/x/d2".
func names(cmdline, dir string) bool {
	for _, arg := range strings.Split(cmdline, "\x00") {
		for _, word := range strings.FieldsFunc(arg, func(r rune) bool { return r == '=' || r == ',' || r == ' ' }) {
			if word == dir || strings.HasPrefix(word, dir+"/") {
				return true
			}
		}
	}
	return false
}

// killProcessesUnder kills (SIGKILL) the processes processesUnder finds, as k3s's killall
// kills its shims, and waits up to ten seconds for them to go.
func killProcessesUnder(dir string) {
	pids := processesUnder(dir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for range 100 {
		if len(processesUnder(dir)) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// podUIDsOf reads the pods whose cgroups the process is in from /proc/PID/cgroup.
func podUIDsOf(pid int) []types.UID {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	var uids []types.UID
	for _, line := range strings.Split(string(b), "\n") {
		// ID:CONTROLLERS:PATH
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], podcgroups.Root+"/") {
			continue
		}
		for _, elem := range strings.Split(parts[2], "/") {
			if uid, ok := strings.CutPrefix(elem, "pod"); ok && uid != "" && !slices.Contains(uids, types.UID(uid)) {
				uids = append(uids, types.UID(uid))
			}
		}
	}
	return uids
}

// nsInode is the inode of a namespace file (/proc/PID/ns/net, or a bind mount of one).
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// removeNetns unmounts a bind-mounted network namespace and removes its file, as `ip netns
// delete` does; the namespace itself goes with its last process.
func removeNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// mountsUnder lists the mount points beneath dir.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
		if strings.HasPrefix(p, dir+"/") {
			found = append(found, p)
		}
	}
	return found, nil
}
