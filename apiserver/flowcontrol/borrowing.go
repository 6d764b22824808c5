package flowcontrol

import (
	"context"
	"math"
	"time"
)

// Borrowing between priority levels, as upstream's: each level has a nominal share of the
// server's seats, of which it may lend lendablePercent to busier levels and beyond which it
// may borrow borrowingLimitPercent (unlimited when unset). Every BorrowingPeriod the limits
// are shared out again from each level's seat demand (the seats its requests executed and
// waited for) over the period: a level gets at least what it may not lend and what it used
// (up to its nominal share), and the rest goes in proportion to the smoothed demand,
// clamped to each level's bounds.

// BorrowingPeriod is how often the limits are recomputed, upstream's 10 seconds.
const BorrowingPeriod = 10 * time.Second

// demandSmoothing is the weight of the past in the smoothed demand, upstream's 0.977: a busy
// period's demand fades over some minutes.
const demandSmoothing = 0.977

// demandIntegrator integrates the seat demand x over time: its integral and that of x², and
// its highest value, since the last reset.
type demandIntegrator struct {
	x, max  float64
	last    time.Time
	elapsed float64 // seconds since the reset
	ix, ixx float64
}

func (d *demandIntegrator) advance(now time.Time) {
	if dt := now.Sub(d.last).Seconds(); dt > 0 {
		d.elapsed += dt
		d.ix += d.x * dt
		d.ixx += d.x * d.x * dt
		d.last = now
	}
}

func (d *demandIntegrator) set(now time.Time, x float64) {
	d.advance(now)
	d.x = x
	d.max = math.Max(d.max, x)
}

// reset returns the period's average, standard deviation, highest value and length, and
// starts the next period at the current demand.
func (d *demandIntegrator) reset(now time.Time) (avg, stdDev, high, seconds float64) {
	if !d.last.IsZero() {
		d.advance(now)
	}
	high, seconds = d.max, d.elapsed
	if seconds > 0 {
		avg = d.ix / seconds
		stdDev = math.Sqrt(math.Max(0, d.ixx/seconds-avg*avg))
	}
	*d = demandIntegrator{x: d.x, max: d.x, last: now}
	return avg, stdDev, high, seconds
}

// demandStats is what borrowing knows of a level's demand.
type demandStats struct {
	highWatermark int
	avg, stdDev   float64
	smoothed      float64
}

func (s *demandStats) update(avg, stdDev, high, seconds float64) {
	s.highWatermark = int(math.Round(high))
	if seconds <= 0 {
		return
	}
	s.avg, s.stdDev = avg, stdDev
	envelope := avg + stdDev
	// demand that rises counts at once; demand that falls, slowly
	s.smoothed = math.Max(envelope, demandSmoothing*s.smoothed+(1-demandSmoothing)*envelope)
}

// observe records a change of the level's demand (executing and waiting seats).
func (pl *priorityLevel) observe(now time.Time) {
	if now.IsZero() {
		return
	}
	pl.demand.set(now, float64(pl.executing+pl.waiting))
}

// RunBorrowing recomputes the levels' limits every BorrowingPeriod until ctx is done.
func (c *Controller) RunBorrowing(ctx context.Context) {
	t := time.NewTicker(BorrowingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.AdjustBorrowing()
		}
	}
}

// AdjustBorrowing shares the seats out again from the demand seen since the last time.
func (c *Controller) AdjustBorrowing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adjustBorrowingLocked(c.now())
}

// Limits reports a level's seats now, and its nominal share; ok is false for no such level.
func (c *Controller) Limits(level string) (current, nominal int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pl := c.levels[level]
	if pl == nil {
		return 0, 0, false
	}
	return pl.limit, pl.nominal, true
}

// adjustBorrowingLocked is AdjustBorrowing with c.mu held.
func (c *Controller) adjustBorrowingLocked(now time.Time) {
	remaining := c.nominalSum
	var limited []*priorityLevel
	var bounds []allocation
	var minSum, floorSum int
	for _, pl := range c.levels {
		pl.stats.update(pl.demand.reset(now))
		if pl.exempt {
			// the exempt level takes what it used, and lends the rest
			remaining -= max(pl.minLimit, pl.stats.highWatermark)
			continue
		}
		// a level keeps what it may not lend and what it used, up to its nominal share
		floor := max(pl.minLimit, min(pl.nominal, pl.stats.highWatermark))
		limited = append(limited, pl)
		bounds = append(bounds, allocation{lower: float64(floor), upper: float64(pl.maxLimit),
			target: math.Max(float64(floor), pl.stats.smoothed)})
		minSum += pl.minLimit
		floorSum += floor
	}
	for i, pl := range limited {
		switch {
		case remaining <= minSum:
			pl.limit = pl.minLimit
		case remaining <= floorSum:
			// not enough for every floor: each gets its minimum and a like share of the rest
			frac := float64(remaining-minSum) / float64(floorSum-minSum)
			pl.limit = pl.minLimit + int(math.Round((bounds[i].lower-float64(pl.minLimit))*frac))
		default:
			pl.limit = int(math.Round(fairAllocation(float64(c.nominalSum), bounds)[i]))
		}
		metrics.limit(pl.name, pl.limit)
		// a level that got seats may start what waits
		pl.now = now
		pl.dispatch()
	}
}

// allocation is one level's bounds and wish in a fair allocation.
type allocation struct {
	lower, upper, target float64
}

// fairAllocation gives each item target×p clamped to its bounds, with the one proportion p
// that makes the shares sum to total (or the bounds, when they cannot): the same
// proportion of its wish for everyone the bounds do not hold back.
func fairAllocation(total float64, items []allocation) []float64 {
	share := func(p float64) (sum float64, out []float64) {
		out = make([]float64, len(items))
		for i, it := range items {
			target := math.Max(it.target, 0.001) // a level with no demand still takes a part
			out[i] = math.Min(it.upper, math.Max(it.lower, target*p))
			sum += out[i]
		}
		return sum, out
	}
	// the sum grows with p: bisect for it
	lo, hi := 0.0, 1.0
	for {
		if sum, _ := share(hi); sum >= total || hi > 1e12 {
			break
		}
		hi *= 2
	}
	for range 100 {
		mid := (lo + hi) / 2
		if sum, _ := share(mid); sum < total {
			lo = mid
		} else {
			hi = mid
		}
	}
	_, out := share(hi)
	return out
}
