package kubelet

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MachineInfo is what the Node reports about its hardware and operating system.
type MachineInfo struct {
	CPUs int
	// MemoryBytes is the machine's physical memory.
	MemoryBytes int64
	// EphemeralStorageBytes is the size of the filesystem holding the kubelet's root dir.
	EphemeralStorageBytes int64
	MachineID             string
	SystemUUID            string
	BootID                string
	KernelVersion         string
	OSImage               string
	OperatingSystem       string
	Architecture          string
}

// ReadMachineInfo reads this host's machine facts; rootDir ("" for /) names the filesystem
// whose size is the ephemeral storage.
func ReadMachineInfo(rootDir string) (MachineInfo, error) {
	m := MachineInfo{
		CPUs:            goruntime.NumCPU(),
		OperatingSystem: goruntime.GOOS,
		Architecture:    goruntime.GOARCH,
		MachineID:       readTrimmed("/etc/machine-id"),
		SystemUUID:      readTrimmed("/sys/class/dmi/id/product_uuid"),
		BootID:          readTrimmed("/proc/sys/kernel/random/boot_id"),
		OSImage:         osImage(),
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		m.KernelVersion = unix.ByteSliceToString(uts.Release[:])
	}
	mem, err := memTotal()
	if err != nil {
		return m, err
	}
	m.MemoryBytes = mem
	if rootDir == "" {
		rootDir = "/"
	}
	dir := rootDir
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			m.EphemeralStorageBytes = int64(st.Blocks) * int64(st.Bsize)
			break
		}
		parent := dir[:max(strings.LastIndex(dir, "/"), 0)]
		if parent == dir || parent == "" {
			parent = "/"
		}
		if dir == "/" {
			break
		}
		dir = parent
	}
	if m.SystemUUID == "" {
		m.SystemUUID = m.MachineID
	}
	return m, nil
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Unknown"
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Unknown"
}

func memTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

// defaultNodeIP is the IPv4 address the host would reach the outside from: that of the
// default route's interface, else the first non-loopback address, else 127.0.0.1.
func defaultNodeIP() net.IP {
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				if ifc, err := net.InterfaceByName(f[0]); err == nil {
					if ip := firstIPv4(ifc); ip != nil {
						return ip
					}
				}
			}
		}
	}
	ifcs, _ := net.Interfaces()
	for i := range ifcs {
		if ifcs[i].Flags&net.FlagLoopback != 0 || ifcs[i].Flags&net.FlagUp == 0 {
			continue
		}
		if ip := firstIPv4(&ifcs[i]); ip != nil {
			return ip
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

func firstIPv4(ifc *net.Interface) net.IP {
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.To4()
		}
	}
	return nil
}

// DefaultNodeIP is the address a kubelet without --node-ip reports as its node's InternalIP:
// that of the default route's interface, else the first non-loopback one, else 127.0.0.1.
func DefaultNodeIP() net.IP { return defaultNodeIP() }
