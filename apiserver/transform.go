package apiserver

import (
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// transformResponse turns a response object into what the client's Accept asked for beyond
// the media type (as=Table, as=PartialObjectMetadata): it returns the object to encode and
// the group version to encode it in. Today it passes objects through.
func transformResponse(r *http.Request, mt mediaType, obj runtime.Object, gv schema.GroupVersion) (runtime.Object, schema.GroupVersion, error) {
	return obj, gv, nil
}
