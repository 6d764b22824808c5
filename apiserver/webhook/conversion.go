package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// conversionTimeout bounds a conversion call: conversions happen on reads from storage,
// which carry no deadline of their own.
const conversionTimeout = 30 * time.Second

// ConvertCustomResource converts one custom resource to the version to by its definition's
// conversion webhook (a ConversionReview, v1 when the webhook takes it), with upstream's
// checks of the answer: the converted object has the desired apiVersion and the same kind,
// and keeps the original's metadata except its labels and annotations.
func (c *Clients) ConvertCustomResource(ctx context.Context, conv *apiextensionsv1.WebhookConversion, obj *unstructured.Unstructured, to schema.GroupVersion) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	failed := func(err error) error { return fmt.Errorf("conversion webhook for %v failed: %v", gvk, err) }
	version := "v1beta1"
	for _, v := range conv.ConversionReviewVersions {
		if v == "v1" {
			version = "v1"
			break
		}
	}
	raw, err := obj.MarshalJSON()
	if err != nil {
		return nil, failed(err)
	}
	uid := types.UID(uuid.NewString())
	review := apiextensionsv1.ConversionReview{Request: &apiextensionsv1.ConversionRequest{
		UID: uid, DesiredAPIVersion: to.String(), Objects: []runtime.RawExtension{{Raw: raw}},
	}}
	review.APIVersion, review.Kind = "apiextensions.k8s.io/"+version, "ConversionReview"
	body, err := json.Marshal(&review)
	if err != nil {
		return nil, failed(err)
	}
	rc, err := c.client(admissionClientConfig(conv.ClientConfig))
	if err != nil {
		return nil, failed(err)
	}
	out, _, err := post(ctx, rc, conversionTimeout, body)
	if err != nil {
		return nil, failed(err)
	}
	var got apiextensionsv1.ConversionReview
	if err := json.Unmarshal(out, &got); err != nil {
		return nil, failed(err)
	}
	resp := got.Response
	switch {
	case version == "v1" && (got.APIVersion != "apiextensions.k8s.io/v1" || got.Kind != "ConversionReview"):
		return nil, failed(fmt.Errorf("expected webhook response of %v, got %v", apiextensionsv1.SchemeGroupVersion.WithKind("ConversionReview"), schema.FromAPIVersionAndKind(got.APIVersion, got.Kind)))
	case resp == nil:
		return nil, failed(fmt.Errorf("no response provided"))
	case version == "v1" && resp.UID != uid:
		return nil, failed(fmt.Errorf("expected response.uid=%q, got %q", uid, resp.UID))
	case resp.Result.Status != metav1.StatusSuccess:
		return nil, failed(fmt.Errorf("response.result.status was '%s', not 'Success'", resp.Result.Status))
	case len(resp.ConvertedObjects) != 1:
		return nil, fmt.Errorf("conversion webhook for %v returned %d objects, expected 1", gvk, len(resp.ConvertedObjects))
	}
	converted := &unstructured.Unstructured{}
	if err := json.Unmarshal(resp.ConvertedObjects[0].Raw, &converted.Object); err != nil {
		return nil, fmt.Errorf("conversion webhook for %v returned invalid converted object at index 0: %v", gvk, err)
	}
	if got := converted.GroupVersionKind(); got.GroupVersion() != to {
		return nil, fmt.Errorf("conversion webhook for %v returned invalid converted object at index 0: invalid groupVersion (expected %v, received %v)", gvk, to, got.GroupVersion())
	} else if got.Kind != gvk.Kind {
		return nil, fmt.Errorf("conversion webhook for %v returned invalid converted object at index 0: invalid kind (expected %v, received %v)", gvk, gvk.Kind, got.Kind)
	}
	// the webhook may change labels and annotations; the rest of the metadata is the server's
	md, _ := obj.Object["metadata"].(map[string]any)
	restored := runtime.DeepCopyJSONValue(md).(map[string]any)
	if cmd, ok := converted.Object["metadata"].(map[string]any); ok {
		for _, f := range []string{"labels", "annotations"} {
			if v, ok := cmd[f]; ok {
				restored[f] = v
			} else {
				delete(restored, f)
			}
		}
	}
	converted.Object["metadata"] = restored
	return converted, nil
}

// admissionClientConfig is a CustomResourceDefinition's webhook client config in the
// admission webhooks' type, which says the same.
func admissionClientConfig(cc *apiextensionsv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
	if cc == nil {
		return admissionregistrationv1.WebhookClientConfig{}
	}
	out := admissionregistrationv1.WebhookClientConfig{URL: cc.URL, CABundle: cc.CABundle}
	if s := cc.Service; s != nil {
		out.Service = &admissionregistrationv1.ServiceReference{Namespace: s.Namespace, Name: s.Name, Path: s.Path, Port: s.Port}
	}
	return out
}
