// Package skiffproc builds skiff and runs one of its commands as a child process for the
// benchmarks: started on a free loopback port in a data directory, ready when it prints its
// ready line, its log copied (each line prefixed with the command, "skiff-up| ") and its
// warnings kept, stopped with SIGINT.
// It is for bench/ only; tests start skiff through cmd/skiff's own helpers.
package skiffproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build builds ./cmd/skiff of the module the caller runs in into dir and returns its path.
func Build(ctx context.Context, dir string, progress io.Writer) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "skiff")
	fmt.Fprintf(progress, "building skiff from %s\n", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/skiff")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/skiff: %w\n%s", err, out)
	}
	return bin, nil
}

// Process is a skiff command running as a child process.
type Process struct {
	Cmd *exec.Cmd
	// Kubeconfig is the admin kubeconfig the command wrote in its data directory.
	Kubeconfig string
	name       string
	exited     chan struct{}
	waitErr    error

	// foreign is a program that is not skiff: stopped with SIGTERM, its exit status not judged
	foreign bool

	mu       sync.Mutex
	ready    chan struct{}
	isReady  bool
	logIssue []string
	onStderr func(line string)
}

// Start runs `skiff <command> --data-dir dataDir <portFlag> <free port> <extra...>` and
// returns once it has printed its ready line. onStderr, if not nil, sees every log line.
func Start(ctx context.Context, bin, command, portFlag, dataDir string, extra []string, progress io.Writer, onStderr func(string)) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--data-dir", dataDir, portFlag, strconv.Itoa(port)}, extra...)
	p, err := spawn(bin, command, args, progress, onStderr)
	if err != nil {
		return nil, err
	}
	p.Kubeconfig = filepath.Join(dataDir, "kubeconfig")
	if err := p.WaitReady(ctx, 2*time.Minute); err != nil {
		return nil, errors.Join(err, p.Stop(progress))
	}
	return p, nil
}

// StartClient runs `skiff <command> <args...>` for a command that prints no ready line (the
// scheduler, the controller manager, sim) and returns as soon as it started.
func StartClient(bin, command string, args []string, progress io.Writer) (*Process, error) {
	return spawn(bin, command, args, progress, nil)
}

// Run runs any program (upstream's components for the side-by-side benches) as a child process
// named name, the way the skiff commands run, and returns as soon as it started. Stop sends it
// SIGTERM, and how it exits is not reported: that is the program's own business.
func Run(name, path string, args []string, progress io.Writer) (*Process, error) {
	p, err := start(name, exec.Command(path, args...), progress, nil)
	if p != nil {
		p.foreign = true
	}
	return p, err
}

func spawn(bin, command string, args []string, progress io.Writer, onStderr func(string)) (*Process, error) {
	return start("skiff "+command, exec.Command(bin, append([]string{command}, args...)...), progress, onStderr)
}

func start(name string, cmd *exec.Cmd, progress io.Writer, onStderr func(string)) (*Process, error) {
	p := &Process{
		name:     name,
		Cmd:      cmd,
		exited:   make(chan struct{}),
		ready:    make(chan struct{}),
		onStderr: onStderr,
	}
	prefix := strings.ReplaceAll(p.name, " ", "-") + "| "
	p.Cmd.Stdout = &lineWriter{out: progress, prefix: prefix, onLine: p.stdoutLine}
	p.Cmd.Stderr = &lineWriter{out: progress, prefix: prefix, onLine: p.stderrLine}
	// its own process group, so that a Ctrl-C reaches only us and we stop it in order; and
	// stopped should we die first
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	fmt.Fprintf(progress, "starting %s\n", strings.Join(p.Cmd.Args, " "))
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Named is a running process and the name its figures are printed under.
type Named struct {
	Name string
	P    *Process
}

// WaitReady waits until the process has printed a line with "ready" on its standard output.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		return fmt.Errorf("%s exited before it was ready: %v", p.name, p.waitErr)
	case <-time.After(timeout):
		return fmt.Errorf("%s was not ready within %s", p.name, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

func (p *Process) stdoutLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.isReady && strings.Contains(line, "ready") && !strings.HasPrefix(line, "export ") {
		p.isReady = true
		close(p.ready)
	}
}

// stderrLine keeps the first log lines that are warnings or errors.
func (p *Process) stderrLine(line string) {
	if p.onStderr != nil {
		p.onStderr(line)
	}
	if klogIssue(line) {
		p.mu.Lock()
		if len(p.logIssue) < 20 {
			p.logIssue = append(p.logIssue, line)
		}
		p.mu.Unlock()
		return
	}
	lower := strings.ToLower(line)
	for _, level := range []string{"level=warn", "level=error", `"level":"warn"`, `"level":"error"`, "panic"} {
		if strings.Contains(lower, level) {
			p.mu.Lock()
			if len(p.logIssue) < 20 {
				p.logIssue = append(p.logIssue, line)
			}
			p.mu.Unlock()
			return
		}
	}
}

// klogIssue says whether line is a warning or an error in klog's format (upstream's
// components): "E1207 06:52:14.123456 ..." or "W1207 ...".
func klogIssue(line string) bool {
	if len(line) < 6 || (line[0] != 'E' && line[0] != 'W') {
		return false
	}
	for _, c := range line[1:5] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return line[5] == ' '
}

// Problems are the first warnings and errors the process logged.
func (p *Process) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logIssue...)
}

// Stop interrupts the process and waits for it to exit, killing it after 30 seconds.
func (p *Process) Stop(progress io.Writer) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s had exited on its own: %v", p.name, p.waitErr)
	default:
	}
	fmt.Fprintln(progress, "stopping", p.name)
	sig := os.Interrupt
	if p.foreign {
		sig = syscall.SIGTERM
	}
	if err := p.Cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.exited:
		if p.waitErr != nil && !p.foreign {
			return fmt.Errorf("%s after SIGINT: %w", p.name, p.waitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.Cmd.Process.Kill()
		<-p.exited
		if p.foreign {
			return nil
		}
		return fmt.Errorf("%s did not stop within 30s of SIGINT; killed it", p.name)
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lineWriter copies what is written to out line by line, prefixed, and hands each line to
// onLine. exec.Cmd writes to it from one goroutine.
type lineWriter struct {
	out    io.Writer
	prefix string
	onLine func(string)
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		fmt.Fprintf(w.out, "%s%s\n", w.prefix, line)
		w.onLine(line)
	}
}

// ReadRSS returns the resident set size of process pid and its peak (VmRSS and VmHWM of
// /proc/<pid>/status), in MiB.
func ReadRSS(pid int) (rss, peak float64, err error) {
	m, err := ReadMemory(pid)
	return m.RSS, m.Peak, err
}

// Memory is a process's resident memory, in MiB.
type Memory struct {
	// RSS and Peak are VmRSS and VmHWM.
	RSS, Peak float64
	// File is the part of RSS that maps files (RssFile): for etcd, most of it is its
	// database, mapped into memory.
	File float64
	// PSS is RSS with each page shared with other processes counted by its share (Pss of
	// /proc/<pid>/smaps_rollup): what the process costs the machine beside the others. skiff's
	// parts run one binary, whose code pages they share; 0 when the kernel does not say.
	PSS float64
}

// ReadMemory reads process pid's resident memory from /proc/<pid>/status and smaps_rollup.
func ReadMemory(pid int) (Memory, error) {
	var m Memory
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("reading the memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(status)) {
		key, value, _ := strings.Cut(line, ":")
		var kib float64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%g kB", &kib); err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			m.RSS = kib / 1024
		case "VmHWM":
			m.Peak = kib / 1024
		case "RssFile":
			m.File = kib / 1024
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	if rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for line := range strings.Lines(string(rollup)) {
			if value, ok := strings.CutPrefix(line, "Pss:"); ok {
				var kib float64
				if _, err := fmt.Sscanf(strings.TrimSpace(value), "%g kB", &kib); err == nil {
					m.PSS = kib / 1024
				}
			}
		}
	}
	return m, nil
}

// ExitOn ends a bench's main when err is not nil: with the exit code of a child that failed
// (ReexecInNetns's), else with 1 after printing err after the program's name.
func ExitOn(program string, err error) {
	if err == nil {
		return
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	fmt.Fprintln(os.Stderr, program+":", err)
	os.Exit(1)
}

// ReexecInNetns runs this program again, with the same arguments and env=1 in its
// environment, in a new network namespace, passes interrupts on to it and returns how it
// exited (an *exec.ExitError when it failed). It needs root and the tools named on PATH.
// The child is killed should this process die first.
func ReexecInNetns(env string, tools ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("the bench needs root (a network namespace, nftables)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the bench needs %s on PATH (apt-get install nftables iproute2 util-linux)", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the bench in a network namespace: %w", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	defer signal.Stop(sigs)
	return cmd.Wait()
}
