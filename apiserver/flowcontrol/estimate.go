package flowcontrol

import "math"

// Upstream's work estimator's figures: a LIST costs one seat per 100 objects it is expected to
// process, at least one seat and at most ten.
const (
	objectsPerSeat = 100
	minimumSeats   = 1
	maximumSeats   = 10
)

// ListSeats is the seats a LIST occupies, from the number of objects of its resource the
// server holds (its watch cache's count) and the page size it asked for (0 for none). Charging
// big LISTs more is what bounds the memory the server spends building LIST responses: a level
// runs fewer of them at once.
func ListSeats(storedObjects, limit int64) int {
	objects := storedObjects
	if limit > 0 && limit < objects {
		objects = limit
	}
	seats := int(math.Ceil(float64(objects) / objectsPerSeat))
	return max(minimumSeats, min(seats, maximumSeats))
}
