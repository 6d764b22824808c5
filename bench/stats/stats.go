// Package stats holds the arithmetic the benchmarks share for summarising latencies.
package stats

import (
	"math"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the nearest-rank method:
// the smallest sample with at least p% of the samples at or below it. It is 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
