package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

// The customresources scenario (--scenario customresources): how long a new
// CustomResourceDefinition takes to be usable, and how fast its objects are created next to
// the same number of built-in ConfigMaps carrying the same data.
//
//  1. --crds definitions are created one at a time. For each, "CRD create → Established" runs
//     from just before the POST until a watch of that definition delivers it with the
//     Established condition True; "CRD create → served" runs from the same instant until a
//     LIST of its resource first succeeds (tried every servedPoll), which is when a client can
//     use it. The last definition stays for the next phase; the others are deleted.
//  2. --pods ConfigMaps, then --pods custom resources, are created by --workers concurrent
//     workers, both in the bench's namespace. Each object has the same four fields (as data
//     for the ConfigMap, under spec for the custom resource, whose schema validates and
//     defaults them), so the difference is what a custom resource costs: schema validation,
//     pruning and defaulting, and unstructured JSON instead of typed protobuf.

// servedPoll is how often the bench tries a new resource until it is served.
const servedPoll = 2 * time.Millisecond

// benchCRD is the definition number i: a namespaced Widget-like kind whose spec has four
// typed fields, one with a default.
func benchCRD(i int) *apiextensionsv1.CustomResourceDefinition {
	group := fmt.Sprintf("bench%d.skiff.dev", i)
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: []string{"color", "index"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"color": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"green"`)}, {Raw: []byte(`"blue"`)}}},
							"index": {Type: "string", Pattern: "^[0-9]+$"},
							"owner": {Type: "string", MaxLength: ptr.To[int64](63)},
							"tier":  {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"standard"`)}},
						}},
						"status": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
					},
				}},
			}},
		},
	}
}

func gadgetData(i int) map[string]string {
	return map[string]string{"color": []string{"red", "green", "blue"}[i%3], "index": strconv.Itoa(i), "owner": "skiff-bench", "tier": "standard"}
}

func (l *load) customResources(ctx context.Context) error {
	ext, err := apiextensionsclient.NewForConfig(l.config)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(l.config)
	if err != nil {
		return err
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()

	var established, served []time.Duration
	establishErrs, servedErrs := newErrorTally("CRD create → Established"), newErrorTally("CRD create → served")
	var kept *apiextensionsv1.CustomResourceDefinition
	for i := range l.opts.crds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		crd := benchCRD(i)
		l.createdCRDs = append(l.createdCRDs, crd.Name)
		e, s, err := l.timeCRD(ctx, crds, dyn, crd)
		if err != nil {
			establishErrs.add(err)
			servedErrs.add(err)
			continue
		}
		established, served = append(established, e), append(served, s)
		fmt.Fprintf(l.progress, "CRD %s: Established after %.1f ms, served after %.1f ms\n", crd.Name, ms(e), ms(s))
		if i < l.opts.crds-1 {
			if err := crds.Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
				return err
			}
		} else {
			kept = crd
		}
	}
	l.addRow(newRow("CRD create → Established", established, establishErrs.count(), 0), establishErrs)
	l.addRow(newRow("CRD create → served", served, servedErrs.count(), 0), servedErrs)
	if kept == nil {
		return fmt.Errorf("no CustomResourceDefinition was served")
	}

	configMaps := l.client.CoreV1().ConfigMaps(l.ns)
	lat, errs, wall := l.parallel(ctx, "create configmap", l.opts.pods, func(ctx context.Context, i int) error {
		_, err := configMaps.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: podName(i), Labels: map[string]string{"app": "skiff-bench"}},
			Data:       gadgetData(i),
		}, metav1.CreateOptions{})
		return err
	})
	l.addRow(newRow("create configmap", lat, errs.count(), wall), errs)

	gadgets := dyn.Resource(schema.GroupVersionResource{Group: kept.Spec.Group, Version: "v1", Resource: "gadgets"}).Namespace(l.ns)
	lat, errs, wall = l.parallel(ctx, "create custom resource", l.opts.pods, func(ctx context.Context, i int) error {
		data := gadgetData(i)
		delete(data, "tier") // the schema's default fills it
		spec := map[string]any{}
		for k, v := range data {
			spec[k] = v
		}
		_, err := gadgets.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": kept.Spec.Group + "/v1", "kind": "Gadget",
			"metadata": map[string]any{"name": podName(i), "labels": map[string]any{"app": "skiff-bench"}},
			"spec":     spec,
		}}, metav1.CreateOptions{})
		return err
	})
	l.addRow(newRow("create custom resource", lat, errs.count(), wall), errs)
	return nil
}

// timeCRD creates crd and returns how long it took to be Established and to be served.
func (l *load) timeCRD(ctx context.Context, crds interface {
	Create(context.Context, *apiextensionsv1.CustomResourceDefinition, metav1.CreateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}, dyn dynamic.Interface, crd *apiextensionsv1.CustomResourceDefinition) (established, served time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// the watch starts before the create, so that no change is missed
	w, err := crds.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", crd.Name).String()})
	if err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	start := time.Now()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		return 0, 0, err
	}
	servedAt := make(chan time.Duration, 1)
	go func() {
		list := dyn.Resource(schema.GroupVersionResource{Group: crd.Spec.Group, Version: "v1", Resource: crd.Spec.Names.Plural}).Namespace(l.ns)
		for ctx.Err() == nil {
			if _, err := list.List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
				servedAt <- time.Since(start)
				return
			}
			time.Sleep(servedPoll)
		}
		close(servedAt)
	}()
	for ev := range w.ResultChan() {
		c, ok := ev.Object.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			continue
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue && established == 0 {
				established = time.Since(start)
			}
		}
		if established > 0 {
			break
		}
	}
	if established == 0 {
		return 0, 0, fmt.Errorf("%s: not Established within a minute", crd.Name)
	}
	s, ok := <-servedAt
	if !ok {
		return 0, 0, fmt.Errorf("%s: not served within a minute", crd.Name)
	}
	return established, s, nil
}
