package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/apis"
	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

var configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func TestMetadataInformerSyncsAndSeesAnUpdate(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cms := s.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before", Labels: map[string]string{"v": "1"}},
		Data: map[string]string{"big": strings.Repeat("x", 1000)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	client, err := metadata.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	factory := metadatainformer.NewSharedInformerFactory(client, 0)
	informer := factory.ForResource(configMapsGVR).Informer()
	updates := make(chan *metav1.PartialObjectMetadata, 10)
	informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj interface{}) { updates <- obj.(*metav1.PartialObjectMetadata) },
	})
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("metadata informer did not sync")
	}
	obj, ok, err := informer.GetStore().GetByKey("default/before")
	if err != nil || !ok {
		t.Fatalf("synced store lacks default/before: %v", err)
	}
	m := obj.(*metav1.PartialObjectMetadata)
	if m.UID == "" || m.ResourceVersion == "" || m.Labels["v"] != "1" {
		t.Errorf("synced metadata %+v", m.ObjectMeta)
	}

	cm, err := cms.Get(ctx, "before", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Labels["v"] = "2"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-updates:
		if m.Name != "before" || m.Labels["v"] != "2" || m.ResourceVersion == cm.ResourceVersion {
			t.Errorf("update seen: %+v", m.ObjectMeta)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the metadata informer saw no update")
	}
}

func TestMetadataClientGetListWatch(t *testing.T) {
	s := apiservertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := metadata.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	pods := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace("default")
	created, err := s.Client.CoreV1().Pods("default").Create(ctx, testPod("p1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "p1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != created.UID || got.Labels["app"] != "web" || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("get: %+v", got.ObjectMeta)
	}
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "p1" || list.ResourceVersion == "" {
		t.Errorf("list: %+v", list)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, testPod("p2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, w)
	if m, ok := ev.Object.(*metav1.PartialObjectMetadata); ev.Type != watch.Added || !ok || m.Name != "p2" || m.UID == "" {
		t.Errorf("watch event %s %#v", ev.Type, ev.Object)
	}
}

func TestPartialObjectMetadataListInProtobufAndJSON(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"name": name}, Annotations: map[string]string{"note": "n-" + name}},
			Data:       map[string]string{"payload": "secret-ish"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	path := "/api/v1/namespaces/default/configmaps"

	r := rawGet(t, s, path+"?limit=2", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
	if r.code != http.StatusOK || r.contentType != "application/vnd.kubernetes.protobuf" {
		t.Fatalf("%d %s: %q", r.code, r.contentType, r.body)
	}
	obj, gvk, err := apis.Codecs.UniversalDeserializer().Decode(r.body, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, ok := obj.(*metav1.PartialObjectMetadataList)
	if !ok || gvk.String() != "meta.k8s.io/v1, Kind=PartialObjectMetadataList" {
		t.Fatalf("decoded %s %T", gvk, obj)
	}
	if len(list.Items) != 2 || list.Items[0].Name != "a" || list.Items[1].Labels["name"] != "b" ||
		list.Items[1].Annotations["note"] != "n-b" || list.Items[0].UID == "" || list.Items[0].ResourceVersion == "" {
		t.Errorf("items %+v", list.Items)
	}
	if list.ResourceVersion == "" || list.Continue == "" || list.RemainingItemCount == nil || *list.RemainingItemCount != 1 {
		t.Errorf("list meta %+v", list.ListMeta)
	}

	r = rawGet(t, s, path, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1")
	var betaList metav1beta1.PartialObjectMetadataList
	json.Unmarshal(r.body, &betaList)
	if betaList.APIVersion != "meta.k8s.io/v1beta1" || len(betaList.Items) != 3 || betaList.Items[0].APIVersion != "meta.k8s.io/v1beta1" {
		t.Errorf("v1beta1 JSON list: %s", r.body)
	}

	r = rawGet(t, s, path, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
	if r.code != http.StatusOK || r.contentType != "application/json" || strings.Contains(string(r.body), "secret-ish") {
		t.Fatalf("%d %s: %s", r.code, r.contentType, r.body)
	}
	var jsonList metav1.PartialObjectMetadataList
	json.Unmarshal(r.body, &jsonList)
	if jsonList.Kind != "PartialObjectMetadataList" || jsonList.APIVersion != "meta.k8s.io/v1" || len(jsonList.Items) != 3 ||
		jsonList.Items[2].Kind != "PartialObjectMetadata" || jsonList.Items[2].APIVersion != "meta.k8s.io/v1" {
		t.Errorf("JSON list: %s", r.body)
	}

	r = rawGet(t, s, path+"/b", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1")
	var one metav1.PartialObjectMetadata
	json.Unmarshal(r.body, &one)
	if one.Kind != "PartialObjectMetadata" || one.APIVersion != "meta.k8s.io/v1beta1" || one.Name != "b" || strings.Contains(string(r.body), "secret-ish") {
		t.Errorf("one object: %s", r.body)
	}
}

func TestPartialObjectMetadataListV1beta1InProtobuf(t *testing.T) {
	// v1beta1.PartialObjectMetadataList numbers its fields the other way round (items 1,
	// metadata 2) from other lists; the protobuf list writer reads them from the tags.
	s := apiservertest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r := rawGet(t, s, "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1")
	obj, gvk, err := apis.Codecs.UniversalDeserializer().Decode(r.body, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, ok := obj.(*metav1beta1.PartialObjectMetadataList)
	if !ok || gvk.Version != "v1beta1" || len(list.Items) != 2 || list.Items[1].Name != "b" || list.ResourceVersion == "" {
		t.Errorf("v1beta1: %s %+v", gvk, obj)
	}
}
