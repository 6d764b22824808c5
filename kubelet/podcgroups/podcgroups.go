// Package podcgroups is where a pod's cgroup lives on a skiff node, and how it goes away.
//
// The kubelet gives the runtime each pod's cgroup parent in upstream's cgroupfs layout
// (/kubepods/pod<uid>, /kubepods/burstable/pod<uid>, /kubepods/besteffort/pod<uid>); runc
// creates that directory in every cgroup hierarchy and removes only its containers' cgroups
// below it. Whoever removes a pod's last sandbox (the kubelet, a node's shutdown, `skiff
// reset`) removes the pod's cgroup with Remove, or it stays behind for good: thousands of
// empty pod cgroups were found on a machine that had only run tests.
//
// It must never remove a cgroup that still holds a process, nor one outside a pod's own
// directory.
package podcgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Root is the cgroup every pod's cgroup is beneath, as upstream's cgroupfs driver names it.
const Root = "/kubepods"

// Parent is the pod's cgroup, as a path from the hierarchy's root, for its QoS class:
// Guaranteed pods directly under Root, the others under Root/burstable and Root/besteffort.
func Parent(class v1.PodQOSClass, uid types.UID) string {
	switch class {
	case v1.PodQOSGuaranteed:
		return Root + "/pod" + string(uid)
	case v1.PodQOSBurstable:
		return Root + "/burstable/pod" + string(uid)
	default:
		return Root + "/besteffort/pod" + string(uid)
	}
}

// Remove removes the pod's cgroup from every mounted cgroup hierarchy, with whatever empty
// container cgroups runc left inside it, deepest first. A cgroup that is not there is no
// error; one that still holds a process cannot be removed (the kernel refuses) and is.
func Remove(uid types.UID) error {
	// "pod"+uid is one path element: a slash would reach outside the pod's directory
	if uid == "" || strings.Contains(string(uid), "/") {
		return fmt.Errorf("remove pod cgroups: bad pod UID %q", uid)
	}
	mounts, err := Hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
			if err := removeTree(filepath.Join(m, Parent(class, uid))); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Exists lists the pod's cgroup directories that are still there, in any hierarchy.
func Exists(uid types.UID) []string {
	mounts, _ := Hierarchies()
	var found []string
	for _, m := range mounts {
		for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
			p := filepath.Join(m, Parent(class, uid))
			if _, err := os.Stat(p); err == nil {
				found = append(found, p)
			}
		}
	}
	return found
}

// removeTree rmdirs dir and the directories beneath it, deepest first: a cgroup directory
// holds only the kernel's control files and child cgroups, which go with rmdir alone.
func removeTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// Hierarchies are the mount points of the cgroup (v1) and cgroup2 file systems this process
// sees, each once.
func Hierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if t := fields[sep+1]; t != "cgroup" && t != "cgroup2" {
			continue
		}
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(fields[4])
		if !seen[mp] {
			seen[mp] = true
			mounts = append(mounts, mp)
		}
	}
	return mounts, sc.Err()
}
