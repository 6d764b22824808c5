package netnstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The processes a test runs in its network: each with its output in a log file, stopped by
// the test's cleanup, and killed by the kernel if the test process dies first.

// Run runs a command and fails the test with its output if it fails.
func Run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Process is a program (skiff) a test runs as its own process, its output in a log file.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	// Log is the file its output goes to.
	Log    string
	exited chan struct{}
}

// Start runs args with its output in dir/name.log. It gets SIGTERM when the test process
// dies, and the test's cleanup interrupts it and waits for it.
func Start(t *testing.T, dir, name string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	started := make(chan error)
	go func() {
		// Pdeathsig fires when the starting thread ends: hold it while the child runs
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.PrintTail(t)
		}
		p.Cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(time.Minute):
			t.Logf("%s did not stop a minute after SIGINT; killing it", name)
			p.Cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// PrintTail logs the end of the process's log.
func (p *Process) PrintTail(t *testing.T) {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	t.Logf("--- tail of %s's log:\n%s", p.Name, b)
}

// WaitLog waits until the process's log matches re and returns the match.
func (p *Process) WaitLog(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.After(within)
	for {
		b, _ := os.ReadFile(p.Log)
		if m := re.FindSubmatch(b); m != nil {
			out := make([]string, len(m))
			for i := range m {
				out[i] = string(m[i])
			}
			return out
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before its log matched %s", p.Name, re)
		case <-deadline:
			t.Fatalf("%s's log did not match %s within %s", p.Name, re, within)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }
