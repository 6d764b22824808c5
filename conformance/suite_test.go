package conformance

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/skiff-dev/skiff/e2e/netnstest"
)

// Areas are the ginkgo labels, one per SIG, that every spec carries exactly one of.
var areas = []string{"api-machinery", "apps", "node", "network", "scheduling", "storage", "kubectl"}

// TestMain runs the suite, when it starts skiff up itself, in a network namespace of its own
// (netnstest): skiff up's pod bridge, proxy table, DNS on port 53 and kubelet port then meet no
// other skiff up on the host, and go with the namespace. A suite given a cluster stays on the
// host's network, where that cluster is.
func TestMain(m *testing.M) {
	flag.Parse()
	// a go test that is killed closes the pipe the suite prints to: with SIGPIPE ignored a
	// print fails, rather than killing the suite before it has stopped skiff up
	signal.Ignore(syscall.SIGPIPE)
	if *kubeconfigFlag != "" || os.Getenv("KUBECONFIG") != "" {
		os.Exit(m.Run())
	}
	os.Exit(netnstest.Main(m, nodeNetwork))
}

// nodeNetwork gives the namespace what skiff up's node takes its InternalIP from: an address
// that is not loopback, on an empty bridge (the kernel here has no dummy links).
func nodeNetwork() error {
	for _, args := range [][]string{
		{"ip", "link", "add", "node0", "type", "bridge"},
		{"ip", "addr", "add", "172.30.0.1/24", "dev", "node0"},
		{"ip", "link", "set", "node0", "up"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "skiff conformance")
}

// The summary names every skip and why, and counts pass/fail/skip per area, so that no spec
// skips silently.
var _ = ReportAfterSuite("summary by area", func(r Report) {
	if r.SuiteConfig.DryRun {
		return // nothing ran: there is nothing to count
	}
	type counts struct{ passed, failed, skipped int }
	byArea := map[string]*counts{}
	for _, a := range areas {
		byArea[a] = &counts{}
	}
	var skips []string
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		area := "unlabelled"
		for _, l := range s.Labels() {
			if _, ok := byArea[l]; ok {
				area = l
			}
		}
		c := byArea[area]
		if c == nil {
			c = &counts{}
			byArea[area] = c
		}
		switch {
		case s.State == types.SpecStatePassed:
			c.passed++
		case s.State == types.SpecStateSkipped && s.Failure.Message == "":
			// Filtered out by --ginkgo.focus/skip or a label filter: not run, not counted.
		case s.State == types.SpecStateSkipped:
			c.skipped++
			skips = append(skips, fmt.Sprintf("  %s\n      %s", s.FullText(), strings.TrimSpace(s.Failure.Message)))
		case s.State.Is(types.SpecStateFailureStates):
			c.failed++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-14s %6s %6s %7s\n", "area", "passed", "failed", "skipped")
	names := make([]string, 0, len(byArea))
	for a := range byArea {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		c := byArea[a]
		fmt.Fprintf(&b, "%-14s %6d %6d %7d\n", a, c.passed, c.failed, c.skipped)
	}
	fmt.Fprintf(&b, "run time %s\n", r.RunTime.Round(1e9))
	if len(skips) > 0 {
		fmt.Fprintf(&b, "skipped:\n%s\n", strings.Join(skips, "\n"))
	}
	fmt.Print(b.String())
})
