// Package netnstest gives a package's tests a network of their own: run as root, its Main runs
// the test binary again in a new network namespace, so that what the tests program there (a
// pods' bridge, an nftables table, DNS on port 53, a kubelet on 10250) neither touches the
// host's network nor meets another test package's, and all of it is gone when they exit.
//
// It must never change the host's network namespace.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// envName marks the test binary's second run, the one inside the namespace.
const envName = "SKIFF_TEST_NETNS"

// why is "" inside the namespace, else why the tests are not in one.
var why = "the tests need root to make a network namespace"

// Main is a TestMain for packages whose tests need a network of their own. Outside the
// namespace, as root, it runs the test binary again (same arguments, signals passed on) in a
// new network namespace and returns its exit code; inside, it brings loopback up, runs setup
// (nil for none: a node address, say) and then the tests. Where no namespace can be made it
// runs the tests here and Why says why, for them to skip.
func Main(m *testing.M, setup func() error) int {
	if os.Getenv(envName) != "" {
		why = ""
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			why = fmt.Sprintf("ip link set lo up: %v: %s", err, out)
		} else if setup != nil {
			if err := setup(); err != nil {
				why = "setting up the network namespace: " + err.Error()
			}
		}
		return m.Run()
	}
	if os.Geteuid() == 0 {
		code, err := runInNetns()
		if err == nil {
			return code
		}
		why = "cannot run the tests in a network namespace: " + err.Error()
	}
	return m.Run()
}

// Why is "" when the tests run in a network namespace of their own, else the reason they do
// not.
func Why() string { return why }

// runInNetns runs this test binary again, with the same arguments, in a new network namespace,
// passing on interrupts, and returns its exit code.
func runInNetns() (int, error) {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), envName+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// the child ends with us: a killed go test must not leave a cluster running in there
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// InNetns runs f on an OS thread that has entered the network namespace named name (under
// /run/netns, as `ip netns add` makes them); the thread is thrown away afterwards. Sockets
// made in f stay in that namespace.
func InNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		h, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
