package apiserver

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/registry"
)

// The query of each verb, parsed and validated as upstream does: list and watch options,
// create, update and patch options (dry run, field manager, field validation), delete options.

// checkResourceVersion refuses a resourceVersion that is not an etcd revision, as upstream.
func checkResourceVersion(rv string) error {
	if rv == "" {
		return nil
	}
	if _, err := strconv.ParseUint(rv, 10, 64); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %q", rv))
	}
	return nil
}

// listOptions parses and validates the query of a list or watch, as upstream.
func (h *resourceHandler) listOptions(ri *requestInfo, r *http.Request) (registry.ListOptions, *metainternalversion.ListOptions, error) {
	opts := metainternalversion.ListOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return registry.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
	}
	if ri.Verb == "watch" {
		opts.Watch = true
	}
	if err := checkResourceVersion(opts.ResourceVersion); err != nil {
		return registry.ListOptions{}, nil, err
	}
	if errs := metainternalversionvalidation.ValidateListOptions(&opts, true); len(errs) > 0 {
		return registry.ListOptions{}, nil, apis.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	if opts.FieldSelector != nil {
		supported := h.res.FieldLabels()
		if _, err := opts.FieldSelector.Transform(func(label, value string) (string, string, error) {
			if !supported[label] {
				return "", "", fmt.Errorf("field label not supported: %s", label)
			}
			return label, value, nil
		}); err != nil {
			return registry.ListOptions{}, nil, apierrors.NewBadRequest(err.Error())
		}
	}
	// a watch of one object by name (GET .../pods/x?watch=true) is a watch with a field selector
	if ri.Name != "" {
		nameSel := fields.OneTermEqualSelector("metadata.name", ri.Name)
		if opts.FieldSelector == nil || opts.FieldSelector.Empty() {
			opts.FieldSelector = nameSel
		} else {
			opts.FieldSelector = fields.AndSelectors(opts.FieldSelector, nameSel)
		}
	}
	return registry.ListOptions{
		Label: opts.LabelSelector, Field: opts.FieldSelector,
		ResourceVersion: opts.ResourceVersion, ResourceVersionMatch: opts.ResourceVersionMatch,
		Limit: opts.Limit, Continue: opts.Continue,
		AllowWatchBookmarks: opts.AllowWatchBookmarks, SendInitialEvents: opts.SendInitialEvents,
	}, &opts, nil
}

// writeOptions are what the query of a write asks for: CreateOptions, UpdateOptions and
// PatchOptions share them.
type writeOptions struct {
	dryRun bool
	// manager records the write in managedFields: the fieldManager parameter, or the
	// client's user agent up to its first "/".
	manager string
	// validation is the fieldValidation directive: Strict, Warn or Ignore.
	validation string
	// force takes over conflicting fields (apply only).
	force bool
}

func newWriteOptions(r *http.Request, dryRun []string, manager, validation string) writeOptions {
	if len(dryRun) > 0 {
		noteDryRun(r.Context())
	}
	return writeOptions{
		dryRun:     len(dryRun) > 0,
		manager:    managerOrUserAgent(manager, r.UserAgent()),
		validation: fieldValidation(validation),
	}
}

// createOptions parses and validates the query of a create, as upstream.
func createOptions(r *http.Request) (writeOptions, error) {
	opts := metav1.CreateOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateCreateOptions(&opts); len(errs) > 0 {
		return writeOptions{}, apis.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "CreateOptions"}, "", errs)
	}
	return newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation), nil
}

// updateOptions parses and validates the query of an update, as upstream.
func updateOptions(r *http.Request) (writeOptions, error) {
	opts := metav1.UpdateOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateUpdateOptions(&opts); len(errs) > 0 {
		return writeOptions{}, apis.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "UpdateOptions"}, "", errs)
	}
	return newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation), nil
}

// patchOptions parses and validates the query of a patch of the given type, as upstream: an
// apply must name its field manager, and only an apply may force.
func patchOptions(r *http.Request, pt types.PatchType) (writeOptions, error) {
	opts := metav1.PatchOptions{}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, &opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidatePatchOptions(&opts, pt); len(errs) > 0 {
		return writeOptions{}, apis.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "", errs)
	}
	wo := newWriteOptions(r, opts.DryRun, opts.FieldManager, opts.FieldValidation)
	wo.force = opts.Force != nil && *opts.Force
	return wo, nil
}

// writeOptionsFor parses the options of a write by its verb (subresources take all three).
func writeOptionsFor(r *http.Request, verb string) (writeOptions, error) {
	switch verb {
	case "create":
		return createOptions(r)
	case "patch":
		pt, err := patchTypeOf(r)
		if err != nil {
			return writeOptions{}, err
		}
		return patchOptions(r, pt)
	}
	return updateOptions(r)
}

// dryRun reports whether the request's write is a dry run, after checking its options as
// upstream does (for subresources that read no other option).
func dryRun(r *http.Request) (bool, error) {
	verb := ""
	if ri := requestInfoFrom(r.Context()); ri != nil {
		verb = ri.Verb
	}
	opts, err := writeOptionsFor(r, verb)
	return opts.dryRun, err
}

// deleteOptions reads DeleteOptions from the body (if any) and the query, as upstream.
func (h *resourceHandler) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := h.readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		obj, _, err := apis.Codecs.UniversalDeserializer().Decode(body, &gvk, opts)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		decoded, ok := obj.(*metav1.DeleteOptions)
		if !ok {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("expected DeleteOptions, got %T", obj))
		}
		opts = decoded
	} else if err := metainternalversionscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if q := r.URL.Query()["dryRun"]; len(q) > 0 && len(opts.DryRun) == 0 {
		// upstream reads the query only without a body; a dry run asked for anywhere is
		// honoured here rather than deleting for real
		opts.DryRun = q
	}
	if errs := metav1validation.ValidateDeleteOptions(opts); len(errs) > 0 {
		return nil, apis.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "DeleteOptions"}, "", errs)
	}
	if len(opts.DryRun) > 0 {
		noteDryRun(r.Context())
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

// watchTimeout is how long a watch without timeoutSeconds stays open: upstream picks at
// random between the minimum request timeout (30 minutes) and twice it, so that watches spread
// across API servers.
func watchTimeout(opts *metainternalversion.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil && *opts.TimeoutSeconds > 0 {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 30*time.Minute + time.Duration(time.Now().UnixNano()%int64(30*time.Minute))
}
