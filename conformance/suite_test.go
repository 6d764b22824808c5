package conformance

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"
)

// Areas are the ginkgo labels, one per SIG, that every spec carries exactly one of.
var areas = []string{"api-machinery", "apps", "node", "network", "scheduling", "kubectl"}

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
