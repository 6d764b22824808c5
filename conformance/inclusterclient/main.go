// Command inclusterclient is the program of the conformance suite's in-cluster client image:
// run in a pod, it talks to the API server the way any in-cluster client-go program does
// (rest.InClusterConfig: KUBERNETES_SERVICE_HOST and _PORT, the projected service-account
// token and ca.crt) and prints what the server answered to each request its arguments ask
// for, one line each, to stdout and to the termination message.
//
// An argument is VERB/RESOURCE[/NAME][@NAMESPACE], for core (v1) resources only: list or get,
// in the pod's own namespace unless @NAMESPACE says otherwise, e.g. list/configmaps,
// get/configmaps/app, list/secrets@default; and "whoami", a SelfSubjectReview. A request the
// server answers, allowed or not, is a line of output; the program fails (exit 1) only when it
// cannot ask: no in-cluster configuration, or a server it cannot reach.
//
// It must never retry or wait: what the server answered first is what the test checks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// namespaceFile is where the service-account volume gives a pod its namespace.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// terminationLog is the default terminationMessagePath.
const terminationLog = "/dev/termination-log"

func main() {
	out, err := run(os.Args[1:])
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	text := strings.Join(out, "\n") + "\n"
	fmt.Print(text)
	if werr := os.WriteFile(terminationLog, []byte(text), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "writing the termination message:", werr)
	}
	if err != nil {
		os.Exit(1)
	}
}

// run asks what args say. It uses client-go's REST client on the core group, not the typed
// clientset: the program is built for each test run, and without k8s.io/api and the clientset
// it compiles in half the time.
func run(args []string) ([]string, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 30 * time.Second
	// the server's refusals decode into metav1.Status, and so become status errors
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	cfg.APIPath, cfg.GroupVersion = "/api", &schema.GroupVersion{Version: "v1"}
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	client, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := os.ReadFile(namespaceFile)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var out []string
	for _, arg := range args {
		answer, err := ask(ctx, client, strings.TrimSpace(string(ns)), arg)
		if err != nil {
			return out, fmt.Errorf("%s: %w", arg, err)
		}
		out = append(out, arg+": "+answer)
	}
	return out, nil
}

// object is what the program reads of an answer: a list's item names, an object's name, a
// SelfSubjectReview's user.
type object struct {
	Metadata struct{ Name string }
	Items    []struct{ Metadata struct{ Name string } }
	Status   struct {
		UserInfo struct{ Username string } `json:"userInfo"`
	}
}

// ask makes the request arg names and words the answer: "allowed: " and the names of what came
// back (sorted, comma-separated), or the refusal's code, reason and message. err is a request
// the server did not answer.
func ask(ctx context.Context, client *rest.RESTClient, ownNamespace, arg string) (string, error) {
	var req *rest.Request
	if arg == "whoami" {
		req = client.Post().AbsPath("/apis/authentication.k8s.io/v1/selfsubjectreviews").
			SetHeader("Content-Type", "application/json").
			Body([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	} else {
		target, namespace, hasNamespace := strings.Cut(arg, "@")
		if !hasNamespace {
			namespace = ownNamespace
		}
		parts := strings.Split(target, "/")
		if len(parts) < 2 || len(parts) > 3 || (parts[0] == "list") != (len(parts) == 2) || (parts[0] != "list" && parts[0] != "get") {
			return "", errors.New("want list/RESOURCE[@NAMESPACE], get/RESOURCE/NAME[@NAMESPACE] or whoami")
		}
		req = client.Get().Namespace(namespace).Resource(parts[1])
		if len(parts) == 3 {
			req = req.Name(parts[2])
		}
	}
	result := req.Do(ctx)
	raw, err := result.Raw()
	if err != nil {
		// Raw's error is only the status code; Error decodes the server's Status
		err = result.Error()
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Code != 0 {
			s := status.Status()
			return fmt.Sprintf("%d %s: %s", s.Code, s.Reason, s.Message), nil
		}
		return "", err
	}
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", fmt.Errorf("decoding %d bytes: %w", len(raw), err)
	}
	switch {
	case arg == "whoami":
		return "allowed: " + o.Status.UserInfo.Username, nil
	case strings.HasPrefix(arg, "list/"):
		names := []string{}
		for _, item := range o.Items {
			names = append(names, item.Metadata.Name)
		}
		slices.Sort(names)
		return "allowed: " + strings.Join(names, ","), nil
	}
	return "allowed: " + o.Metadata.Name, nil
}
