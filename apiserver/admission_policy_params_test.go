package apiserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// deploymentPolicy limits the replicas of deployments to what its params say.
func deploymentPolicy(name string, paramKind *admissionregistrationv1.ParamKind, expression, messageExpression string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: paramKind,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{{Expression: expression, MessageExpression: messageExpression}},
		},
	}
}

// namespaceBinding binds a policy in the namespaces labelled policy=<policy>.
func namespaceBinding(name, policy string, ref *admissionregistrationv1.ParamRef) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	b := policyBinding(name, policy, admissionregistrationv1.Deny)
	b.Spec.ParamRef = ref
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy": policy}},
	}
	return b
}

func labelledNamespace(t *testing.T, s *apiservertest.Server, name, policy string) {
	t.Helper()
	if _, err := s.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"policy": policy}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

var replicaLimits = schema.GroupVersionResource{Group: "rules.example.com", Version: "v1", Resource: "replicalimits"}

// replicaLimitCRD is the ReplicaLimit param kind of upstream's documentation.
func replicaLimitCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "replicalimits.rules.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "rules.example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "replicalimits", Singular: "replicalimit", Kind: "ReplicaLimit"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"maxReplicas": {Type: "integer"},
					},
				}},
			}},
		},
	}
}

func replicaLimit(name string, max int64, labels map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rules.example.com/v1", "kind": "ReplicaLimit",
		"metadata":    map[string]any{"name": name, "labels": labels},
		"maxReplicas": max,
	}}
}

func TestValidatingAdmissionPolicyParams(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cs := s.Client
	deployments := func(ns string) func(name string, replicas int32) error {
		return func(name string, replicas int32) error {
			_, err := cs.AppsV1().Deployments(ns).Create(ctx, policyDeployment(name, replicas), metav1.CreateOptions{})
			return err
		}
	}

	t.Run("a ConfigMap named by the binding", func(t *testing.T) {
		labelledNamespace(t, s, "cm-params", "cm-policy")
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "replica-limit"},
			Data: map[string]string{"maxReplicas": "3"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := deploymentPolicy("cm-policy", &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			"object.spec.replicas <= int(params.data.maxReplicas)",
			"'object.spec.replicas must be no greater than ' + params.data.maxReplicas + ' (' + params.kind + ' ' + params.metadata.name + ')'")
		create := deployments("cm-params")
		bindPolicy(t, cs, p, namespaceBinding("cm-binding", "cm-policy", &admissionregistrationv1.ParamRef{
			Name: "replica-limit", Namespace: "default", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}),
			func() error { return create("probe", 4) })
		err := create("four", 4)
		if want := `deployments.apps "four" is forbidden: ValidatingAdmissionPolicy 'cm-policy' with binding 'cm-binding' denied request: object.spec.replicas must be no greater than 3 (ConfigMap replica-limit)`; err == nil || err.Error() != want {
			t.Errorf("four replicas: %v", err)
		}
		if err := create("three", 3); err != nil {
			t.Errorf("three replicas: %v", err)
		}
		// the param is read at each request: a new limit applies at once
		cm, _ := cs.CoreV1().ConfigMaps("default").Get(ctx, "replica-limit", metav1.GetOptions{})
		cm.Data["maxReplicas"] = "5"
		if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the new limit", func() error { return create("four", 4) })
		// a missing param denies, as parameterNotFoundAction Deny says
		if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "replica-limit", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// params come from a watch, so the deletion reaches admission a moment later
		eventually(t, "the deletion seen", func() error {
			_, err := cs.AppsV1().Deployments("cm-params").Create(ctx, policyDeployment("one", 1), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil {
				return fmt.Errorf("still allowed")
			}
			return nil
		})
		err = create("one", 1)
		if want := `deployments.apps "one" is forbidden: ValidatingAdmissionPolicy 'cm-policy' with binding 'cm-binding' denied request: failed to configure binding: no params found for policy binding with ` + "`Deny`" + ` parameterNotFoundAction`; err == nil || err.Error() != want {
			t.Errorf("missing param: %v", err)
		}
	})

	t.Run("custom resources chosen by a selector, in the request's namespace", func(t *testing.T) {
		establish(t, s, replicaLimitCRD())
		labelledNamespace(t, s, "cr-params", "cr-policy")
		dyn := dynamic.NewForConfigOrDie(s.Config)
		for _, rl := range []*unstructured.Unstructured{
			replicaLimit("small", 2, map[string]any{"tier": "limits"}),
			replicaLimit("large", 8, map[string]any{"tier": "limits"}),
			replicaLimit("unrelated", 1, nil),
		} {
			if _, err := dyn.Resource(replicaLimits).Namespace("cr-params").Create(ctx, rl, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		p := deploymentPolicy("cr-policy", &admissionregistrationv1.ParamKind{APIVersion: "rules.example.com/v1", Kind: "ReplicaLimit"},
			"object.spec.replicas <= params.maxReplicas", "'at most ' + string(params.maxReplicas) + ' replicas (' + params.metadata.name + ')'")
		create := deployments("cr-params")
		bindPolicy(t, cs, p, namespaceBinding("cr-binding", "cr-policy", &admissionregistrationv1.ParamRef{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "limits"}}, ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)}),
			func() error { return create("probe", 3) })
		// every selected param judges: the smallest limit wins
		err := create("three", 3)
		if want := `deployments.apps "three" is forbidden: ValidatingAdmissionPolicy 'cr-policy' with binding 'cr-binding' denied request: at most 2 replicas (small)`; err == nil || err.Error() != want {
			t.Errorf("three replicas: %v", err)
		}
		if err := create("two", 2); err != nil {
			t.Errorf("two replicas: %v", err)
		}
		// in a namespace with no params, parameterNotFoundAction Allow lets everything pass
		labelledNamespace(t, s, "cr-empty", "cr-policy")
		if err := deployments("cr-empty")("nine", 9); err != nil {
			t.Errorf("no params, Allow: %v", err)
		}
	})

	t.Run("a paramKind nothing serves fails the policy", func(t *testing.T) {
		labelledNamespace(t, s, "no-kind", "nokind-policy")
		p := deploymentPolicy("nokind-policy", &admissionregistrationv1.ParamKind{APIVersion: "example.com/v1", Kind: "Missing"}, "true", "")
		// a policy's configuration error fails every request the policy matches, whatever
		// its bindings select: this one matches its namespace only
		p.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"policy": "nokind-policy"}}
		create := deployments("no-kind")
		bindPolicy(t, cs, p, namespaceBinding("nokind-binding", "nokind-policy", &admissionregistrationv1.ParamRef{
			Name: "x", ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)}), func() error { return create("probe", 1) })
		err := create("one", 1)
		if want := `deployments.apps "one" is forbidden: ValidatingAdmissionPolicy 'nokind-policy' denied request: failed to configure policy: failed to find resource referenced by paramKind: 'example.com/v1, Kind=Missing'`; err == nil || err.Error() != want {
			t.Errorf("unknown paramKind: %v", err)
		}
	})

	t.Run("authorizer", func(t *testing.T) {
		labelledNamespace(t, s, "authz", "authz-policy")
		p := deploymentPolicy("authz-policy", nil,
			"authorizer.group('').resource('secrets').namespace(request.namespace).check('list').allowed()",
			"request.userInfo.username + ' may not list secrets in ' + request.namespace")
		bindPolicy(t, cs, p, namespaceBinding("authz-binding", "authz-policy", nil), nil)
		alice, _ := userClient(t, s, "alice")
		grant(t, cs, "authz", "deployer", "alice", rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create"}})
		eventually(t, "alice denied by the policy", func() error {
			_, err := alice.AppsV1().Deployments("authz").Create(ctx, policyDeployment("a", 1), metav1.CreateOptions{})
			if err == nil {
				return fmt.Errorf("allowed")
			}
			if !strings.HasSuffix(err.Error(), "denied request: alice may not list secrets in authz") {
				return err
			}
			return nil
		})
		// the admin may list secrets
		if _, err := cs.AppsV1().Deployments("authz").Create(ctx, policyDeployment("b", 1), metav1.CreateOptions{}); err != nil {
			t.Errorf("admin: %v", err)
		}
	})

	t.Run("an object selector and deletes", func(t *testing.T) {
		labelledNamespace(t, s, "deletes", "delete-policy")
		p := deploymentPolicy("delete-policy", nil, "!has(oldObject.metadata.labels) || !('protected' in oldObject.metadata.labels)", "")
		p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}
		p.Spec.Validations[0].Message = "protected deployments cannot be deleted"
		b := namespaceBinding("delete-binding", "delete-policy", nil)
		b.Spec.MatchResources.ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "protected", Operator: metav1.LabelSelectorOpExists}}}
		protected := policyDeployment("protected", 1)
		protected.Labels = map[string]string{"protected": "yes"}
		if _, err := cs.AppsV1().Deployments("deletes").Create(ctx, protected, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := deployments("deletes")("plain", 1); err != nil {
			t.Fatal(err)
		}
		bindPolicy(t, cs, p, b, func() error {
			return cs.AppsV1().Deployments("deletes").Delete(ctx, "protected", metav1.DeleteOptions{DryRun: []string{"All"}})
		})
		err := cs.AppsV1().Deployments("deletes").Delete(ctx, "protected", metav1.DeleteOptions{})
		if want := `deployments.apps "protected" is forbidden: ValidatingAdmissionPolicy 'delete-policy' with binding 'delete-binding' denied request: protected deployments cannot be deleted`; err == nil || err.Error() != want {
			t.Errorf("delete protected: %v", err)
		}
		if err := cs.AppsV1().Deployments("deletes").Delete(ctx, "plain", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete plain: %v", err)
		}
		// a collection's deletes are judged one by one
		if err := cs.AppsV1().Deployments("deletes").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err == nil ||
			!strings.HasSuffix(err.Error(), "denied request: protected deployments cannot be deleted") {
			t.Errorf("delete collection: %v", err)
		}
		if _, err := cs.AppsV1().Deployments("deletes").Get(ctx, "protected", metav1.GetOptions{}); apierrors.IsNotFound(err) {
			t.Errorf("protected deployment deleted")
		}
	})
}

func TestValidatingAdmissionPolicyJudgesAScaleWriteAsTheScale(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	cs := s.Client
	labelledNamespace(t, s, "scaled", "scale-policy")
	p := deploymentPolicy("scale-policy", nil, "object.kind == 'Scale' && object.spec.replicas <= 5", "'at most 5 replicas, asked ' + string(object.spec.replicas)")
	p.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"deployments/scale"}
	p.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
	if _, err := cs.AppsV1().Deployments("scaled").Create(ctx, policyDeployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	scale := func(n int32) error {
		sc, err := cs.AppsV1().Deployments("scaled").GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = n
		_, err = cs.AppsV1().Deployments("scaled").UpdateScale(ctx, "web", sc, metav1.UpdateOptions{})
		return err
	}
	bindPolicy(t, cs, p, namespaceBinding("scale-binding", "scale-policy", nil), func() error { return scale(6) })
	err := scale(7)
	if want := `deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'scale-policy' with binding 'scale-binding' denied request: at most 5 replicas, asked 7`; err == nil || err.Error() != want {
		t.Errorf("scale to 7: %v", err)
	}
	if err := scale(4); err != nil {
		t.Errorf("scale to 4: %v", err)
	}
	// the policy matches the subresource only: the deployment itself may say 9
	d, err := cs.AppsV1().Deployments("scaled").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptr.To[int32](9)
	if _, err := cs.AppsV1().Deployments("scaled").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update of the deployment: %v", err)
	}
}
