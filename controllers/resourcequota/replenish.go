package resourcequota

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/trim"
)

// replenisher recounts a namespace's quotas when an object of a kind they count is deleted or
// changed, as upstream's replenishment does, so that what the object used is given back at once
// rather than at the next resync (creations need no recount: admission charged them). It
// watches only the kinds some quota counts, started as quotas name them, and only their
// metadata. Pods have their own handlers, on the shared pod cache.
type replenisher struct {
	factory metadatainformer.SharedInformerFactory
	mapper  meta.RESTMapper
	// changed is called with the namespace of a deleted or changed object
	changed func(namespace string)

	mu      sync.Mutex
	ctx     context.Context // set by start; watches start once it is
	watched map[schema.GroupResource]bool
}

func newReplenisher(md metadata.Interface, mapper meta.RESTMapper, changed func(namespace string)) *replenisher {
	return &replenisher{
		factory: metadatainformer.NewSharedInformerFactoryWithOptions(md, 0, metadatainformer.WithTransform(trim.ManagedFields)),
		mapper:  mapper, changed: changed, watched: map[schema.GroupResource]bool{},
	}
}

// start lets watches start, until ctx ends.
func (r *replenisher) start(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	go func() {
		<-ctx.Done()
		r.factory.Shutdown()
	}()
}

// watch makes sure the kind gr is watched; a kind that is not served is not, and is tried again
// when a quota naming it is next synced.
func (r *replenisher) watch(gr schema.GroupResource) error {
	if gr == podsGR {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watched[gr] || r.ctx == nil {
		return nil
	}
	gvr, err := r.mapper.ResourceFor(gr.WithVersion(""))
	if meta.IsNoMatchError(err) {
		return nil
	}
	if err != nil {
		return err
	}
	informer := r.factory.ForResource(gvr).Informer()
	// a service's type and a claim's size are what they use: any change may change usage;
	// other kinds count by their existence alone
	usageInSpec := gr.Group == "" && (gr.Resource == "services" || gr.Resource == "persistentvolumeclaims")
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, cur any) {
			if usageInSpec {
				r.objectChanged(cur)
			}
		},
		DeleteFunc: r.objectChanged,
	}); err != nil {
		return fmt.Errorf("watching %s for quota replenishment: %w", gr, err)
	}
	r.watched[gr] = true
	r.factory.Start(r.ctx.Done())
	slog.Info("recounting quotas on changes", "controller", Name, "resource", gr.String())
	return nil
}

func (r *replenisher) objectChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.Namespace != "" {
		r.changed(m.Namespace)
	}
}
